/** Queue `step-download`: the job's instances, streamed from Orthanc into `<name>.WORKING`. */
import { registerStep } from '../shared/app/steps';
import { downloadStep } from '../shared/pipeline/steps/download';

registerStep('download', (services) =>
  downloadStep({
    orthanc: services.orthanc,
    ledger: services.ledger,
    naming: services.naming,
    storagePath: services.config.storagePath,
    concurrency: services.config.downloadConcurrency,
  }),
);
