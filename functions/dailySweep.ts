/**
 * Timer, hourly: in master.json's DailyCheckHour (when the sweep is enabled) every study is
 * evaluated again, e.g. for rules added after it arrived.
 */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { loggerFor } from '../shared/app/logging';
import { getServices } from '../shared/app/services';
import { runSweep, sweepDue } from '../shared/pipeline/sweep';

export async function dailySweep(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  const master = await services.rules.master();
  if (!sweepDue(master, new Date())) return;
  await runSweep({ ...services, log: loggerFor(context), pageSize: services.config.sweepPageSize });
}

app.timer('dailySweep', { schedule: '0 0 * * * *', handler: dailySweep });
