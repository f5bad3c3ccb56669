/** Timer: reads Orthanc's /changes from the stored cursor and enqueues what the webhook missed. */
import { app, type InvocationContext, type Timer } from '@azure/functions';
import { loggerFor } from '../shared/azure-functions/logging';
import { getServices } from '../shared/composition/services';
import { pollChangeFeed } from '../shared/pipeline/changeFeed';

export async function changeFeed(_timer: Timer, context: InvocationContext): Promise<void> {
  const services = await getServices();
  await pollChangeFeed({
    ...services,
    log: loggerFor(context, services.redaction.anywhere),
    batchSize: services.config.changeFeedBatch,
  });
}

app.timer('changeFeed', { schedule: '*/10 * * * * *', handler: changeFeed });
