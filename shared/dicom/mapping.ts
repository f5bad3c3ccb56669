/**
 * The operator's identity mapping: a CSV of `original PatientID,pseudonym` (UTF-8, optional header,
 * `#` comments). Errors name the line, never the original identifier.
 */
import { readFile } from 'node:fs/promises';

export class IdentityMapping {
  constructor(
    private readonly entries: Map<string, string>,
    readonly source: string,
  ) {}

  pseudonymFor(patientId: string): string {
    const found = this.entries.get(patientId.trim());
    if (found === undefined)
      throw new Error(`the patient of this study is not in the mapping file ${this.source} (add a row for it)`);
    return found;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The rows, for a worker thread to rebuild the same mapping (anonymise-pool.ts); never logged. */
  rows(): Array<[string, string]> {
    return [...this.entries];
  }
}

export function parseIdentityMapping(text: string, source: string): IdentityMapping {
  const entries = new Map<string, string>();
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const cells = line.split(/[,;\t]/).map((c) => c.trim().replace(/^"(.*)"$/, '$1'));
    if (index === 0 && /^(original|patientid|patient_id|id)$/i.test(cells[0] ?? '')) return;
    if (cells.length < 2 || cells[0] === '' || cells[1] === '')
      throw new Error(`${source} line ${index + 1}: expected "original id,pseudonym"`);
    if (!/^[\x20-\x7e]{1,64}$/.test(cells[1]) || /[\\^]/.test(cells[1]))
      throw new Error(
        `${source} line ${index + 1}: the pseudonym must be 1-64 printable ASCII characters without \\ or ^`,
      );
    if (entries.has(cells[0])) throw new Error(`${source} line ${index + 1}: this original id appears twice`);
    entries.set(cells[0], cells[1]);
  });
  return new IdentityMapping(entries, source);
}

export async function loadIdentityMapping(file: string): Promise<IdentityMapping> {
  return parseIdentityMapping(await readFile(file, 'utf8'), file);
}
