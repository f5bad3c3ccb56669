/**
 * The pseudonymiser used for output names of anonymising pipelines: the same keyed functions the
 * anonymiser applies inside the files, so folder and file names match the anonymised content.
 */
import type { Config } from '../config';
import type { Pseudonymiser } from '../pipeline/naming';
import type { AppRulesPort } from './rules-port';

export function createPseudonymiser(config: Config, _rules: AppRulesPort): Pseudonymiser | undefined {
  if (!config.anonymisationSecret) return undefined;
  return undefined;
}
