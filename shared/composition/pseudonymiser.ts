/**
 * Pseudonymous names for anonymising pipelines, from the same keyed functions the anonymiser applies
 * inside the files (with the same project key), so folder and file names match the anonymised content.
 */
import path from 'node:path';
import type { Config } from '../config';
import { loadIdentityMapping } from '../dicom/mapping';
import { anonymisationProject } from '../dicom/options';
import { anonymisedUid, opaqueToken, patientPseudonym, projectKey } from '../dicom/pseudonyms';
import { resolveInside } from '../output/sanitize';
import { anonymiseSettingsOf, type Job } from '../pipeline/job';
import type { Pseudonymiser } from '../pipeline/naming';
import { PermanentError } from '../vocabulary';

export function createPseudonymiser(
  config: Pick<Config, 'anonymisationSecret' | 'rulesPath'>,
): Pseudonymiser | undefined {
  const secret = config.anonymisationSecret;
  if (!secret) return undefined;
  // The download names every instance; a job's rule snapshot is the same object for all of them,
  // so its project key is derived once per step.
  const keys = new WeakMap<object, string>();
  const settingsOf = (job: Job) => anonymiseSettingsOf(job.rule);
  const keyOf = (job: Job) => {
    let key = keys.get(job.rule);
    if (key === undefined) {
      key = projectKey(secret, anonymisationProject(settingsOf(job), job.ruleId));
      keys.set(job.rule, key);
    }
    return key;
  };
  return {
    async patientPseudonym(job, patientId) {
      const settings = settingsOf(job);
      if (settings.Identity !== 'mapping') return patientPseudonym(keyOf(job), patientId, settings.PseudonymPrefix);
      const file = resolveInside(config.rulesPath, settings.MappingFile ?? '');
      try {
        return (await loadIdentityMapping(file)).pseudonymFor(patientId);
      } catch (error) {
        throw new PermanentError(`identity mapping ${path.basename(file)}: ${(error as Error).message}`);
      }
    },
    uid: (job, uid) => anonymisedUid(keyOf(job), uid),
    token: (job, value) => opaqueToken(keyOf(job), value),
  };
}
