/** Queue `step-publish`: `<name>.WORKING` renamed to `<name>` atomically, chowned to UID:GID, then the zip to Blob storage when the rule says. */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { publishStep } from '../shared/pipeline/steps/publish';
import { blobUploader } from '../shared/blob/publish';

app.storageQueue('stepPublish', {
  queueName: 'step-publish',
  ...stepFunction('publish', (services) =>
    publishStep({
      owner: services.config.owner,
      uploadZip: blobUploader(services.config.publishBlobConnectionString),
      replaceQuietSeconds: services.config.replaceQuietSeconds,
      cursors: services.cursors,
    }),
  ),
});
app.storageQueue('stepPublishPoison', { queueName: 'step-publish-poison', ...stepPoisonFunction('publish') });
