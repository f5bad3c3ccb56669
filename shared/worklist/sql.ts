/**
 * Bookings from the site's booking database: WORKLIST_SQL run against PostgreSQL with `pg`. Its
 * columns name the values (PatientID, ScheduledStationAETitle, Start, ...; or a mapping file maps
 * them); `$1` and `$2`, when the query uses them, are the window's start and end. The query runs
 * in a read-only transaction with a statement timeout, so a slow database delays one sync only.
 */
import pg from 'pg';
import type { SourceRecord } from './mapping';
import { SourceError, redactUrl, withoutQuotes, type BookingSource } from './source';

export function createSqlSource(connectionString: string, sql: string, timeoutMs = 30_000): BookingSource {
  const describe = `database ${redactUrl(connectionString)}`;
  return {
    kind: 'table',
    describe,
    async read(window) {
      if (sql.trim() === '')
        throw new SourceError(`${describe}: WORKLIST_SQL is empty; set the query that lists bookings`);
      const client = new pg.Client({
        connectionString,
        connectionTimeoutMillis: timeoutMs,
        statement_timeout: timeoutMs,
        query_timeout: timeoutMs,
      });
      // pg emits 'error' on a connection lost while idle; without a listener that would end the process.
      client.on('error', () => undefined);
      const parameters = [window.from, window.to].slice(0, sql.includes('$2') ? 2 : sql.includes('$1') ? 1 : 0);
      let rows: Record<string, unknown>[];
      let columns: string[];
      try {
        await client.connect();
        await client.query('BEGIN READ ONLY');
        const result = await client.query<Record<string, unknown>>(sql, parameters);
        await client.query('COMMIT');
        rows = result.rows;
        columns = result.fields.map((f) => f.name);
      } catch (error) {
        // A value PostgreSQL quotes (a bad cast, say) could be a patient's: quoted text is left out.
        throw new SourceError(`${describe}: the query failed: ${withoutQuotes((error as Error).message)}`, {
          cause: error,
        });
      } finally {
        await client.end().catch(() => undefined);
      }
      const records: SourceRecord[] = rows.map((row, i) => ({
        where: `row ${i + 1} of the query`,
        fields: Object.fromEntries(columns.map((c) => [c, cell(row[c])])),
      }));
      return { records, problems: [] };
    },
  };
}

function cell(value: unknown): string | Date | undefined {
  if (value === null || value === undefined) return undefined;
  if (value instanceof Date) return value;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}
