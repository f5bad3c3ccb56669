/**
 * Where bookings come from, behind one small interface: an iCalendar feed (file or HTTP(S) URL), a
 * SQL query against PostgreSQL, or a folder of CSV files. A source that cannot be read throws a
 * SourceError (the sync then leaves every worklist file as it is); a record it can read but not use
 * is a problem for that record alone.
 */
import type { SourceKind, SourceRecord } from './mapping';

export interface Window {
  from: Date;
  to: Date;
}

export interface BookingSource {
  kind: SourceKind;
  /** What is read, for messages: a path, a URL, a database without its password. */
  describe: string;
  read(
    window: Window,
  ): Promise<{ records: SourceRecord[]; problems: { where: string; id?: string; message: string }[] }>;
}

export class SourceError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SourceError';
  }
}

/** A postgres:// URL with its password replaced, fit for a message. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    parsed.search = '';
    return parsed.toString();
  } catch {
    return '(an unparseable URL)';
  }
}

export type SourceType = 'ics' | 'postgres' | 'csv';

/** Which kind of source WORKLIST_SOURCE names: a postgres URL, an .ics path or URL, else a folder of CSV files. */
export function sourceTypeOf(source: string): SourceType {
  if (/^postgres(ql)?:\/\//i.test(source)) return 'postgres';
  if (/^https?:\/\//i.test(source) || /^webcals?:\/\//i.test(source) || /\.ics$/i.test(source)) return 'ics';
  return 'csv';
}

/**
 * A parser's or database's message without the text it quotes: ical.js, csv-parse and PostgreSQL
 * quote the offending line or value, which may be a patient's name.
 */
export function withoutQuotes(message: string): string {
  return message.replace(/"[^"]*"|'[^']*'|`[^`]*`/g, '"…"');
}
