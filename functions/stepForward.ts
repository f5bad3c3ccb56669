/** Queue `step-forward`: C-STORE or STOW-RS to every destination of the rule, each tracked and retried on its own. */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { forwardStep } from '../shared/pipeline/steps/forward';

app.storageQueue('stepForward', {
  queueName: 'step-forward',
  ...stepFunction('forward', (services) =>
    forwardStep({
      orthanc: services.orthanc,
      modalities: services.config.modalities,
      dicomweb: services.dicomweb,
      concurrency: services.config.stepConcurrency,
      pollSeconds: services.config.forwardPollSeconds,
      maxAttempts: services.config.forwardMaxAttempts,
    }),
  ),
});
app.storageQueue('stepForwardPoison', { queueName: 'step-forward-poison', ...stepPoisonFunction('forward') });
