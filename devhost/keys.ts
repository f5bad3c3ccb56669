/**
 * Function keys, kept like the host's file secrets repository (`AzureWebJobsSecretStorageType=files`):
 * one JSON file `{ "masterKey": "...", "functionKeys": { "default": "..." } }`. A missing file is
 * created with random keys (the host generates keys at first start too) and its path is printed, so
 * a developer can find the key to call a `function`-level endpoint.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Keys {
  masterKey: string;
  functionKeys: Record<string, string>;
}

/** The host's key shape: 40+ URL-safe characters. */
function newKey(): string {
  return randomBytes(30).toString('base64url');
}

/** Accepts the host's own secrets shapes too: `masterKey: {value}` and `functionKeys: [{name, value}]`. */
function normalise(raw: unknown, file: string): Keys {
  const json = raw as { masterKey?: unknown; functionKeys?: unknown };
  const value = (v: unknown): string | undefined =>
    typeof v === 'string'
      ? v
      : typeof v === 'object' && v !== null && typeof (v as { value?: unknown }).value === 'string'
        ? (v as { value: string }).value
        : undefined;
  const masterKey = value(json.masterKey);
  if (!masterKey)
    throw new Error(
      `${file}: "masterKey" is missing (expected {"masterKey": "...", "functionKeys": {"default": "..."}})`,
    );
  const functionKeys: Record<string, string> = {};
  if (Array.isArray(json.functionKeys)) {
    for (const k of json.functionKeys as Array<{ name?: string; value?: string }>)
      if (k.name && k.value) functionKeys[k.name] = k.value;
  } else if (json.functionKeys && typeof json.functionKeys === 'object') {
    for (const [name, v] of Object.entries(json.functionKeys)) {
      const key = value(v);
      if (key) functionKeys[name] = key;
    }
  }
  return { masterKey, functionKeys };
}

export function loadKeys(file: string, log: (line: string) => void): Keys {
  if (existsSync(file)) {
    try {
      return normalise(JSON.parse(readFileSync(file, 'utf8')), file);
    } catch (error) {
      if (error instanceof SyntaxError)
        throw new Error(`${file} is not valid JSON: ${error.message}`, { cause: error });
      throw error;
    }
  }
  const keys: Keys = { masterKey: newKey(), functionKeys: { default: newKey() } };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(keys, null, 2)}\n`, { mode: 0o600 });
  log(`Created function keys in ${file}`);
  return keys;
}

/**
 * Compares a presented key with a real one in constant time: `===` stops at the first differing
 * character, so response times would let a caller guess a key character by character. Hashing first
 * gives both sides the same length, which timingSafeEqual needs, without revealing the key's length.
 */
export function sameKey(presented: string | undefined, actual: string | undefined): boolean {
  if (presented === undefined || presented === '' || actual === undefined || actual === '') return false;
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(presented), digest(actual));
}
