/**
 * What the alertsCheck timer looks at: the free space of the storage root and the staging folder,
 * and each destination's C-ECHO. Each check that fails to run is a log line; the others still run.
 */
import type { ModalityDefinition } from '../config';
import type { OrthancClient } from '../orthanc/client';
import type { Logger } from '../vocabulary';
import type { Alerts } from './alerts';
import { destinationDownAlert, diskFree, diskNearlyFullAlert, type DiskFree } from './events';

export interface AlertChecksDeps {
  alerts: Pick<Alerts, 'notify'>;
  log: Logger;
  folders: Record<string, string>;
  diskFreePercent: number;
  orthanc: Pick<OrthancClient, 'echo'>;
  modalities: Record<string, ModalityDefinition>;
  /** Overridable for tests (a real nearly-full filesystem is hard to come by). */
  diskFree?: (folder: string) => Promise<DiskFree>;
}

export interface CheckReport {
  disks: Record<string, number | 'unknown'>;
  destinationsDown: string[];
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
  return report;
}
