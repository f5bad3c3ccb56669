/** Queue `step-publish`: `<name>.WORKING` renamed to `<name>` atomically, then chowned to UID:GID. */
import { registerStep } from '../shared/app/steps';
import { publishStep } from '../shared/pipeline/steps/publish';

registerStep('publish', (services) => publishStep({ owner: services.config.owner }));
