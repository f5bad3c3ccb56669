/**
 * Queue `step-forward`: C-STORE to every destination of the rule; also applies the destinations from
 * the environment to Orthanc when the app starts.
 */
import { app } from '@azure/functions';
import { applyDestinations } from '../shared/app/destinations';
import { getServices } from '../shared/app/services';
import { registerStep } from '../shared/app/steps';
import { forwardStep } from '../shared/pipeline/steps/forward';

registerStep('forward', (services) =>
  forwardStep({
    orthanc: services.orthanc,
    modalities: services.config.modalities,
    concurrency: services.config.stepConcurrency,
    pollSeconds: services.config.forwardPollSeconds,
    maxAttempts: services.config.forwardMaxAttempts,
  }),
);

app.hook.appStart(async () => {
  try {
    const services = await getServices();
    await applyDestinations(services.orthanc, services.config.modalities, (line) => console.log(line), services.config.allowedSenders);
  } catch (error) {
    // Start-up must not fail on a destination; the forward step applies them again before use.
    console.error(`Destinations not applied at start-up: ${(error as Error).message}`);
  }
});
