/** Queue `step-anonymise`: the working folder de-identified in place (PS3.15 Annex E). */
import { registerStep } from '../shared/app/steps';
import { anonymiseStep } from '../shared/pipeline/steps/anonymise';

registerStep('anonymise', (services) =>
  anonymiseStep({ secret: services.config.anonymisationSecret, rulesPath: services.config.rulesPath, concurrency: services.config.stepConcurrency }),
);
