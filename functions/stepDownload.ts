/**
 * Queue `step-download`: the job's instances, streamed from Orthanc into `<name>.WORKING` (into private
 * staging for pipelines that anonymise); at start-up, the staging of ended or unknown jobs is deleted.
 */
import { app } from '@azure/functions';
import { getServices } from '../shared/app/services';
import { registerStep } from '../shared/app/steps';
import { checkStagingLocation, sweepStaging } from '../shared/pipeline/staging';
import { downloadStep } from '../shared/pipeline/steps/download';

registerStep('download', (services) =>
  downloadStep({
    orthanc: services.orthanc,
    ledger: services.ledger,
    naming: services.naming,
    storagePath: services.config.storagePath,
    stagingPath: services.config.stagingPath,
    concurrency: services.config.downloadConcurrency,
  }),
);

app.hook.appStart(async () => {
  try {
    const { config, ledger } = await getServices();
    const warning = await checkStagingLocation(config.stagingPath, config.storagePath);
    if (warning) console.warn(warning);
    const swept = await sweepStaging(config.stagingPath, ledger);
    console.log(`Staging ${config.stagingPath}: ${swept.removed} folder(s) of ended or unknown jobs deleted, ${swept.kept} of running jobs kept`);
  } catch (error) {
    // The app still starts; the download clears a job's staging before use and the next start sweeps again.
    console.error(`Staging not checked at start-up: ${(error as Error).message}`);
  }
});
