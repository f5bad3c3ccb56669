/**
 * The worklist sync as the settings describe it: the source WORKLIST_SOURCE names, the mapping
 * WORKLIST_MAPPING holds (or the defaults), into WORKLIST_FOLDER. A mapping file that is broken
 * stops the sync the way an unreadable source does: nothing changes, and the log says why.
 */
import type { Logger } from '../vocabulary';
import { loadMapping, type Mapping } from './mapping';
import type { BookingSource } from './source';
import { createSource } from './sources';
import type { WorklistSettings } from './settings';
import type { BookingStore } from './store';
import { emptyReport, syncWorklist, syncWindow, type SyncReport } from './sync';

export async function sourceAndMapping(
  settings: Pick<WorklistSettings, 'source' | 'sql' | 'mappingFile'>,
): Promise<{ source: BookingSource; mapping: Mapping }> {
  const source = createSource({ source: settings.source, sql: settings.sql });
  return { source, mapping: await loadMapping(source.kind, settings.mappingFile) };
}

export async function syncFromSettings(
  settings: WorklistSettings,
  deps: { store: BookingStore; log: Logger; retentionDays?: number; now?: () => Date },
): Promise<SyncReport> {
  let prepared: { source: BookingSource; mapping: Mapping };
  try {
    prepared = await sourceAndMapping(settings);
  } catch (error) {
    const reason = (error as Error).message;
    deps.log.error(`Worklist not synced, the current worklist files are kept: ${reason}`);
    const window = syncWindow((deps.now ?? (() => new Date()))(), settings.daysAhead);
    return emptyReport(window, reason);
  }
  return syncWorklist({
    ...prepared,
    folder: settings.folder,
    store: deps.store,
    log: deps.log,
    daysAhead: settings.daysAhead,
    graceHours: settings.graceHours,
    retentionDays: deps.retentionDays,
    now: deps.now,
  });
}
