/**
 * What the alertsCheck timer looks at: the free space of the storage root and the staging folder,
 * each destination's C-ECHO and the jobs whose results (ExpectResults) are overdue. Each check that
 * fails to run is a log line; the others still run.
 */
import type { ModalityDefinition } from '../config';
import type { OrthancClient } from '../orthanc/client';
import type { Logger } from '../vocabulary';
import type { Alerts } from './alerts';
import { destinationDownAlert, diskFree, diskNearlyFullAlert, resultsOverdueAlert, type DiskFree } from './events';
import type { AwaitedResults, JobStore } from '../pipeline/ports';
import { awaitedJobs, resultsView } from '../pipeline/roundTrip';

export interface AlertChecksDeps {
  alerts: Pick<Alerts, 'notify'>;
  log: Logger;
  folders: Record<string, string>;
  diskFreePercent: number;
  orthanc: Pick<OrthancClient, 'echo'>;
  modalities: Record<string, ModalityDefinition>;
  /** Overridable for tests (a real nearly-full filesystem is hard to come by). */
  diskFree?: (folder: string) => Promise<DiskFree>;
  /** Jobs waiting for results; without them overdue results are not checked. */
  roundTrips?: { awaited: AwaitedResults; jobs: Pick<JobStore, 'get' | 'update'> };
  now?: () => Date;
}

export interface CheckReport {
  disks: Record<string, number | 'unknown'>;
  destinationsDown: string[];
  /** Jobs whose results are overdue (alerted now or before), when round trips were checked. */
  resultsOverdue?: string[];
}

export async function runAlertChecks(deps: AlertChecksDeps): Promise<CheckReport> {
  const report: CheckReport = { disks: {}, destinationsDown: [] };
  const measure = deps.diskFree ?? diskFree;
  if (deps.diskFreePercent > 0) {
    for (const [role, folder] of Object.entries(deps.folders)) {
      try {
        const free = await measure(folder);
        report.disks[role] = free.freePercent;
        if (free.freePercent < deps.diskFreePercent)
          await deps.alerts.notify(diskNearlyFullAlert(role, free, deps.diskFreePercent));
      } catch (error) {
        // The staging folder exists only once an anonymising job ran; a missing one is not full.
        report.disks[role] = 'unknown';
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
          deps.log.warn(`Free space of the ${role} folder not checked: ${(error as Error).message}`);
      }
    }
  }
  for (const [name, modality] of Object.entries(deps.modalities)) {
    try {
      const echo = await deps.orthanc.echo(name);
      if (echo.ok) continue;
      report.destinationsDown.push(name);
      await deps.alerts.notify(
        destinationDownAlert(name, {
          aet: modality.AET,
          host: modality.Host,
          port: modality.Port,
          configured: true,
          reason: echo.reason,
        }),
      );
    } catch (error) {
      // Orthanc itself not answering is the health report's concern, not a destination's.
      deps.log.warn(`Destination ${name} not checked: ${(error as Error).message}`);
    }
  }
  if (deps.roundTrips) {
    try {
      report.resultsOverdue = await alertOverdueResults(deps, deps.roundTrips, deps.now?.() ?? new Date());
    } catch (error) {
      deps.log.warn(`Overdue results not checked: ${(error as Error).message}`);
    }
  }
  return report;
}

/** Each overdue job is alerted once: the job records when, and is skipped after that. */
async function alertOverdueResults(
  deps: AlertChecksDeps,
  roundTrips: NonNullable<AlertChecksDeps['roundTrips']>,
  now: Date,
): Promise<string[]> {
  const { overdue } = await awaitedJobs(roundTrips, now);
  for (const job of overdue) {
    if (job.roundTrip?.overdueAlertedAt) continue;
    const outcome = await deps.alerts.notify(resultsOverdueAlert(job, resultsView(job, now)!));
    // A webhook that failed gets the alert at the next check; one sent (or already sent) is done.
    if (outcome !== 'sent' && outcome !== 'rate-limited') continue;
    await roundTrips.jobs.update(job.id, (j) => {
      const trip = (j.roundTrip ??= { from: j.rule.expectResults?.from ?? '', withinSeconds: 0, results: [] });
      trip.expectedBy ??= resultsView(j, now)?.expectedBy;
      trip.overdueAlertedAt ??= now.toISOString();
    });
  }
  return overdue.map((j) => j.id);
}
