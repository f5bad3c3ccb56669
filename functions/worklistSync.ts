/**
 * Timer, every five minutes by default (WORKLIST_SCHEDULE): the bookings of today and the next
 * WORKLIST_DAYS_AHEAD days become worklist files in WORKLIST_FOLDER, served by Orthanc's worklist
 * plugin. Does nothing when WORKLIST_SOURCE is not set. `POST /admin/functions/worklistSync` runs it at once.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { loggerFor } from '../shared/azure-functions/logging';
import { getServices } from '../shared/composition/services';
import { syncFromSettings } from '../shared/worklist/from-settings';

export async function worklistSync(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const settings = services.config.worklist;
  if (!settings) return;
  await syncFromSettings(settings, {
    store: services.bookings,
    log: loggerFor(context, services.redaction.anywhere),
    retentionDays: services.config.ledgerRetentionDays,
  });
}

// WORKLIST_SCHEDULE is read when the app loads (app settings are the worker's environment); a
// `%WORKLIST_SCHEDULE%` binding would make the setting mandatory for every deployment.
app.timer('worklistSync', {
  schedule: process.env.WORKLIST_SCHEDULE?.trim() || '0 */5 * * * *',
  handler: worklistSync,
});
