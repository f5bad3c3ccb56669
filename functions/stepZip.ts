/** Queue `step-zip`: the working folder streamed into `<name>.zip.WORKING` with a manifest. */
import { registerStep } from '../shared/app/steps';
import { zipStep } from '../shared/pipeline/steps/zip';

registerStep('zip', () => zipStep());
