/**
 * Queue `step-download`: the job's instances, streamed from Orthanc into `<name>.WORKING` (into private
 * staging for pipelines that anonymise).
 */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { downloadStep } from '../shared/pipeline/steps/download';

app.storageQueue('stepDownload', {
  queueName: 'step-download',
  ...stepFunction('download', (services) =>
    downloadStep({
      orthanc: services.orthanc,
      outputLocks: services.outputLocks,
      cursors: services.cursors,
      naming: services.naming,
      storagePath: services.config.storagePath,
      stagingPath: services.config.stagingPath,
      files: services.instanceFiles,
    }),
  ),
});
app.storageQueue('stepDownloadPoison', { queueName: 'step-download-poison', ...stepPoisonFunction('download') });
