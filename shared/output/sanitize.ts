/**
 * Path components built from DICOM values. A value from a scanner is untrusted input: it may hold
 * separators, `..`, NUL and control characters, Windows-reserved names or kilobytes of text.
 * Every component is made safe here, and every joined path is checked to stay under its root.
 */
import path from 'node:path';

const MAX_COMPONENT_BYTES = 80;
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// Separators, characters Windows and SMB shares reject, and whitespace (breaks naive shell scripts).
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f/\\:*?"<>|\s\u2028\u2029\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]+/gu;

/** Truncates to at most `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(value: string, maxBytes: number): string {
  if (Buffer.byteLength(value, 'utf8') <= maxBytes) return value;
  let out = '';
  let bytes = 0;
  for (const char of value) {
    const size = Buffer.byteLength(char, 'utf8');
    if (bytes + size > maxBytes) break;
    out += char;
    bytes += size;
  }
  return out;
}

/** Drops trailing dots, underscores and whitespace by scanning back: a `/[._\s]+$/` regex is quadratic on long runs of them. */
function trimEnd(text: string): string {
  let end = text.length;
  while (end > 0 && /[._\s]/.test(text[end - 1])) end -= 1;
  return text.slice(0, end);
}

/**
 * One readable, safe path component: unsafe runs become `_`, leading/trailing dots, dashes and
 * underscores are trimmed, reserved names are prefixed, length is bounded. Never empty, never `.`/`..`.
 */
export function sanitizeComponent(
  value: string | undefined | null,
  fallback = 'UNKNOWN',
  maxBytes = MAX_COMPONENT_BYTES,
): string {
  let text = (value ?? '').normalize('NFC').replace(UNSAFE, '_');
  text = trimEnd(text.replace(/_+/g, '_').replace(/^[._\-\s]+/, ''));
  text = trimEnd(truncateUtf8(text, maxBytes));
  if (text === '' || text === '.' || text === '..') text = fallback;
  if (WINDOWS_RESERVED.test(text)) text = `_${text}`;
  return text;
}

/** Joins components under `root` and proves the result cannot escape it. */
export function resolveInside(root: string, ...components: string[]): string {
  const base = path.resolve(root);
  const target = path.resolve(base, ...components);
  if (target !== base && !target.startsWith(base + path.sep)) {
    throw new Error(`Refusing a path outside the storage root (${components.length} components; values not shown)`);
  }
  return target;
}
