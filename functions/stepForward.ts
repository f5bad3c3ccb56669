/**
 * Queue `step-forward`: the step's message fans out one message per destination of the rule (on this
 * queue too); each destination is sent (C-STORE or STOW-RS), tracked and retried on its own.
 */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { destinationStuckAlert } from '../shared/alerts/events';
import { forwardStep } from '../shared/pipeline/steps/forward';

app.storageQueue('stepForward', {
  queueName: 'step-forward',
  ...stepFunction('forward', (services) =>
    forwardStep({
      orthanc: services.orthanc,
      // Read per send: a destination added in the dashboard on any instance is used at once.
      modalities: () => services.destinations.all(),
      dicomweb: () => services.destinations.dicomweb(),
      concurrency: services.config.stepConcurrency,
      pollSeconds: services.config.forwardPollSeconds,
      maxAttempts: services.config.forwardMaxAttempts,
      stuckAfterMs: services.config.destinationStuckMs,
      onStuck: async (job, name, record) => {
        const modality = (await services.destinations.all())[name];
        await services.alerts.notify(
          destinationStuckAlert(job, name, {
            aet: modality?.AET,
            host: modality?.Host,
            port: modality?.Port,
            attempts: record.attempts,
            waitedMinutes: Math.round((Date.now() - Date.parse(record.queuedAt ?? '')) / 60_000),
            reason: record.error,
          }),
        );
      },
    }),
  ),
});
app.storageQueue('stepForwardPoison', { queueName: 'step-forward-poison', ...stepPoisonFunction('forward') });
