/**
 * The patient's own identifiers (name parts, IDs, accession, birth date in common spellings), cut out
 * of the short descriptors a rule keeps under Clean Descriptors. Values are searched as plain text:
 * nothing from a file becomes a RegExp.
 */
import type { DicomDataset } from 'dcmjs';
import { firstText, valueText } from './values';

/** Identifiers cut out of descriptors under Clean Descriptors: at most this many, each at most this long. */
const MAX_IDENTIFIERS = 64;
const MAX_IDENTIFIER_LENGTH = 64;

/** Every occurrence of `needle` in `text`, compared in lower case, replaced by `by`. */
export function replaceInsensitive(text: string, needle: string, by: string): string {
  const haystack = text.toLowerCase();
  const target = needle.toLowerCase();
  // Lower-casing can change a string's length (e.g. U+0130): then positions would not line up, and
  // an exact-case search is the safe fallback.
  const exact = haystack.length !== text.length || target.length !== needle.length;
  const [inText, find] = exact ? [text, needle] : [haystack, target];
  if (find === '') return text;
  let out = '';
  let from = 0;
  for (let at = inText.indexOf(find); at !== -1; at = inText.indexOf(find, from)) {
    out += text.slice(from, at) + by;
    from = at + find.length;
  }
  return out + text.slice(from);
}

/** Identifier strings of this patient, removed from free text kept under Clean Descriptors. */
export function identifiersOf(dataset: DicomDataset): string[] {
  const values = [
    '00100010', // PatientName
    '00100020', // PatientID
    '00101000',
    '00101001',
    '00101060',
    '00100030',
    '00080050',
    '00080090',
    '00200010',
  ]
    .flatMap((t) => (dataset[t]?.Value ?? []).map(valueText))
    .filter((v) => v.trim() !== '');
  const birth = /^(\d{4})(\d{2})(\d{2})$/.exec(firstText(dataset['00100030']).trim());
  if (birth)
    values.push(
      `${birth[1]}-${birth[2]}-${birth[3]}`,
      `${birth[3]}.${birth[2]}.${birth[1]}`,
      `${birth[3]}/${birth[2]}/${birth[1]}`,
      `${birth[2]}/${birth[3]}/${birth[1]}`,
    );
  const parts = values
    .flatMap((v) => [v, ...v.split(/[\^\s=,]+/)])
    .map((p) => p.trim())
    .filter((p) => p.length >= 2 && p.length <= MAX_IDENTIFIER_LENGTH);
  // Longest first, so a whole name goes before its parts; bounded, so a 16 KB name of 4,000
  // components costs 64 searches per descriptor, not 4,000.
  return [...new Set(parts)].sort((a, b) => b.length - a.length).slice(0, MAX_IDENTIFIERS);
}

/**
 * The value with every identifier replaced by `X`, case-insensitively, by plain search: a value
 * from the file never becomes a RegExp (a long one made RegExp compilation overflow the stack).
 */
export function clean(value: string, identifiers: string[]): string {
  let out = value;
  for (const id of identifiers) out = replaceInsensitive(out, id, 'X');
  return out;
}
