/** Queue `step-publish`: `<name>.WORKING` renamed to `<name>` atomically, then chowned to UID:GID. */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { publishStep } from '../shared/pipeline/steps/publish';

app.storageQueue('stepPublish', {
  queueName: 'step-publish',
  ...stepFunction('publish', (services) => publishStep({ owner: services.config.owner })),
});
app.storageQueue('stepPublishPoison', { queueName: 'step-publish-poison', ...stepPoisonFunction('publish') });
