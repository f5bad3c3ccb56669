/**
 * Bookings from CSV files dropped in a folder (`*.csv`, a header row naming the columns as for the
 * SQL source; comma or semicolon separated, UTF-8 with or without BOM), parsed with csv-parse. A
 * file that is not valid CSV makes the whole source unreadable: dropping its bookings would remove
 * their worklist entries, so nothing changes until it is fixed.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import type { SourceRecord } from './mapping';
import { SourceError, withoutQuotes, type BookingSource } from './source';

export function parseCsv(text: string, file: string): SourceRecord[] {
  const header = text.replace(/^\uFEFF/, '').split(/\r?\n/, 1)[0] ?? '';
  const delimiter = (header.match(/;/g) ?? []).length > (header.match(/,/g) ?? []).length ? ';' : ',';
  let rows: { record: Record<string, string>; info: { lines: number } }[];
  try {
    rows = parse(text, { columns: true, bom: true, trim: true, skip_empty_lines: true, delimiter, info: true });
  } catch (error) {
    throw new SourceError(`${file} is not valid CSV: ${withoutQuotes((error as Error).message)}`, { cause: error });
  }
  return rows.map(({ record, info }) => ({
    where: `${file} line ${info.lines}`,
    fields: Object.fromEntries(Object.entries(record).map(([k, v]) => [k, v === '' ? undefined : v])),
  }));
}

export function createCsvSource(folder: string): BookingSource {
  return {
    kind: 'table',
    describe: `CSV folder ${folder}`,
    async read() {
      let names: string[];
      try {
        names = (await readdir(folder)).filter((n) => n.toLowerCase().endsWith('.csv')).sort();
      } catch (error) {
        throw new SourceError(`CSV folder ${folder} cannot be read: ${(error as Error).message}`, { cause: error });
      }
      const records: SourceRecord[] = [];
      for (const name of names) {
        let text: string;
        try {
          text = await readFile(path.join(folder, name), 'utf8');
        } catch (error) {
          throw new SourceError(`${name} in ${folder} cannot be read: ${(error as Error).message}`, { cause: error });
        }
        records.push(...parseCsv(text, name));
      }
      return { records, problems: [] };
    },
  };
}
