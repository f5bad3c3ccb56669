/**
 * Timer, hourly: in master.json's DailyCheckHour (when the sweep is enabled) every study is
 * evaluated again, e.g. for rules added after it arrived; in the same hour job records older than
 * AUTOMATION_LEDGER_RETENTION_DAYS are purged.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { loggerFor } from '../shared/azure-functions/logging';
import { getServices } from '../shared/composition/services';
import { purgeOldJobs, retentionDue, runSweep, sweepDue } from '../shared/pipeline/sweep';

export async function dailySweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const master = await services.rules.master();
  const now = new Date();
  const log = loggerFor(context, services.redaction.anywhere);
  if (sweepDue(master, now)) await runSweep({ ...services, log, pageSize: services.config.sweepPageSize });
  if (retentionDue(master, services.config.ledgerRetentionDays, now))
    await purgeOldJobs({ jobs: services.jobs, log, retentionDays: services.config.ledgerRetentionDays, now });
}

app.timer('dailySweep', { schedule: '0 0 * * * *', handler: dailySweep });
