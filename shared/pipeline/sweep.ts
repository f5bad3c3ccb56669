/**
 * The daily sweep: every study is evaluated again (rules added later, events missed for any reason).
 * An hourly timer calls it; it acts only in master.json's DailyCheckHour, when the sweep is enabled.
 * Jobs collapse on (rule, resource, LastUpdate), so a study already processed in its current state
 * costs one evaluation, not a second download. In the same hour (sweep enabled or not) job records
 * older than AUTOMATION_LEDGER_RETENTION_DAYS are purged, so the ledger does not grow forever.
 */
import type { OrthancClient } from '../orthanc/client';
import type { JobStore, PurgeResult } from './ports';
import { QUEUES, type EvaluateMessage } from './messages';
import type { Logger } from '../vocabulary';
import type { MasterSettings } from '../rules/model';
import type { QueueSender } from '../storage/queues';
import { forEachLimit } from '../util/concurrency';

export function sweepDue(settings: MasterSettings, now: Date): boolean {
  return settings.DailySweepEnabled && now.getHours() === settings.DailyCheckHour;
}

/** The purge runs once a day, in the sweep's hour, even when the sweep itself is switched off. */
export function retentionDue(
  settings: Pick<MasterSettings, 'DailyCheckHour'>,
  retentionDays: number,
  now: Date,
): boolean {
  return retentionDays > 0 && now.getHours() === settings.DailyCheckHour;
}

export interface RetentionDeps {
  jobs: Pick<JobStore, 'purgeBefore'>;
  log: Logger;
  retentionDays: number;
  now?: Date;
}

export async function purgeOldJobs(deps: RetentionDeps): Promise<PurgeResult & { cutoff: string }> {
  const cutoff = new Date((deps.now ?? new Date()).getTime() - deps.retentionDays * 86_400_000);
  const result = await deps.jobs.purgeBefore(cutoff);
  deps.log.info(
    `Retention: ${result.jobs} job records created before ${cutoff.toISOString()} purged (${result.indexRows} index rows, ${result.blobs} warning blobs; AUTOMATION_LEDGER_RETENTION_DAYS=${deps.retentionDays})`,
  );
  return { ...result, cutoff: cutoff.toISOString() };
}

export interface SweepDeps {
  orthanc: Pick<OrthancClient, 'listStudies'>;
  queues: QueueSender;
  log: Logger;
  pageSize: number;
}

export async function runSweep(deps: SweepDeps): Promise<{ studies: number }> {
  let since = 0;
  let studies = 0;
  for (;;) {
    const page = await deps.orthanc.listStudies({ since, limit: deps.pageSize });
    await forEachLimit(page, 16, async (id) => {
      const message: EvaluateMessage = {
        level: 'Study',
        resourceId: id,
        source: 'sweep',
        force: false,
        includeSeries: true,
      };
      await deps.queues.send(QUEUES.evaluate, message);
    });
    studies += page.length;
    since += page.length;
    if (page.length < deps.pageSize) break;
  }
  deps.log.info(`Sweep: ${studies} studies enqueued for evaluation`);
  return { studies };
}
