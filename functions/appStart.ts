/**
 * What the app does once when it starts, before it takes messages. Neither hook may stop the start:
 * each step repeats what it needs before use, so a failure here is logged and the next start tries again.
 */
import { app } from '@azure/functions';
import { applyDestinations } from '../shared/orthanc/destinations';
import { getServices } from '../shared/composition/services';
import { checkStagingLocation, sweepStaging } from '../shared/pipeline/staging';
import { destinationDownAlert } from '../shared/alerts/events';
import { applyStoredDestinations } from '../shared/destinations/admin';

/** The staging of ended or unknown jobs deleted (a crash or a restart leaves it behind). */
export async function sweepStagingAtStart(): Promise<void> {
  try {
    const { config, jobs } = await getServices();
    const warning = await checkStagingLocation(config.stagingPath, config.storagePath);
    if (warning) console.warn(warning);
    const swept = await sweepStaging(config.stagingPath, jobs);
    console.log(
      `Staging ${config.stagingPath}: ${swept.removed} folder(s) of ended or unknown jobs deleted, ${swept.kept} of running jobs kept`,
    );
  } catch (error) {
    // The app still starts; the download clears a job's staging before use and the next start sweeps again.
    console.error(`Staging not checked at start-up: ${(error as Error).message}`);
  }
}

/** The destinations and allowed senders from the environment, then those added in the dashboard, put into Orthanc. */
export async function applyDestinationsAtStart(): Promise<void> {
  try {
    const services = await getServices();
    const states = await applyDestinations(
      services.orthanc,
      services.config.modalities,
      (line) => console.log(line),
      services.config.allowedSenders,
      services.destinationEchoes,
    );
    for (const state of Object.values(states)) state.source = 'env';
    Object.assign(
      states,
      await applyStoredDestinations({
        catalog: services.destinations,
        orthanc: services.orthanc,
        echoes: services.destinationEchoes,
        log: (line) => console.log(line),
      }),
    );
    for (const [name, state] of Object.entries(states))
      if (state.echo !== 'ok') await services.alerts.notify(destinationDownAlert(name, state));
  } catch (error) {
    // Start-up must not fail on a destination; the forward step applies them again before use.
    console.error(`Destinations not applied at start-up: ${(error as Error).message}`);
  }
}

app.hook.appStart(sweepStagingAtStart);
app.hook.appStart(applyDestinationsAtStart);
