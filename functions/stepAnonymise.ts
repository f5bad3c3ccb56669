/** Queue `step-anonymise`: the staged originals de-identified (PS3.15 Annex E) into the working folder. */
import { app } from '@azure/functions';
import { stepFunction, stepPoisonFunction } from '../shared/azure-functions/steps';
import { anonymiseStep } from '../shared/pipeline/steps/anonymise';

app.storageQueue('stepAnonymise', {
  queueName: 'step-anonymise',
  ...stepFunction('anonymise', (services) =>
    anonymiseStep({
      secret: services.config.anonymisationSecret,
      rulesPath: services.config.rulesPath,
      stagingPath: services.config.stagingPath,
      concurrency: services.config.stepConcurrency,
    }),
  ),
});
app.storageQueue('stepAnonymisePoison', { queueName: 'step-anonymise-poison', ...stepPoisonFunction('anonymise') });
