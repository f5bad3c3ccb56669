/** Builds the source WORKLIST_SOURCE names (one place that knows every kind). */
import { createCsvSource } from './csv';
import { createIcsSource } from './ics';
import type { BookingSource } from './source';
import { sourceTypeOf } from './source';
import { createSqlSource } from './sql';

export interface SourceSettings {
  source: string;
  sql?: string;
  timeoutMs?: number;
}

export function createSource(settings: SourceSettings): BookingSource {
  switch (sourceTypeOf(settings.source)) {
    case 'postgres':
      return createSqlSource(settings.source, settings.sql ?? '', settings.timeoutMs);
    case 'ics':
      return createIcsSource(settings.source, settings.timeoutMs);
    default:
      return createCsvSource(settings.source);
  }
}
