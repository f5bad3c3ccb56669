/** Queue `step-anonymise`: the staged originals de-identified (PS3.15 Annex E) into the working folder. */
import { registerStep } from '../shared/app/steps';
import { anonymiseStep } from '../shared/pipeline/steps/anonymise';

registerStep('anonymise', (services) =>
  anonymiseStep({
    secret: services.config.anonymisationSecret,
    rulesPath: services.config.rulesPath,
    stagingPath: services.config.stagingPath,
    concurrency: services.config.stepConcurrency,
  }),
);
