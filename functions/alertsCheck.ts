/**
 * Timer: the alerts no event raises. Every five minutes the storage root and the staging folder are
 * checked against AUTOMATION_ALERT_DISK_FREE_PERCENT, each destination is C-ECHOed and jobs whose
 * results (ExpectResults) are overdue are found; each sends an alert (rate-limited, shared/alerts/alerts.ts).
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { getServices } from '../shared/composition/services';
import { runAlertChecks } from '../shared/alerts/checks';
import { loggerFor } from '../shared/azure-functions/logging';

export async function alertsCheck(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  if (services.alerts.webhooks === 0) return;
  await runAlertChecks({
    alerts: services.alerts,
    log: loggerFor(context, services.redaction.anywhere),
    folders: { storage: services.config.storagePath, staging: services.config.stagingPath },
    diskFreePercent: services.config.alerts.diskFreePercent,
    orthanc: services.orthanc,
    modalities: await services.destinations.all(), // the dashboard's destinations too
    roundTrips: { awaited: services.awaitedResults, jobs: services.jobs },
  });
}

app.timer('alertsCheck', { schedule: '0 */5 * * * *', handler: alertsCheck });
