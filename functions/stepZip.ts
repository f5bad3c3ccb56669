/** Queue `step-zip`: the working folder streamed into `.<job id>.zip.WORKING` (storage root) with a manifest. */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { zipStep } from '../shared/pipeline/steps/zip';

app.storageQueue('stepZip', { queueName: 'step-zip', ...stepFunction('zip', () => zipStep()) });
app.storageQueue('stepZipPoison', { queueName: 'step-zip-poison', ...stepPoisonFunction('zip') });
