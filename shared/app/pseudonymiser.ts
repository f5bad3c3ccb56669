/**
 * Pseudonymous names for anonymising pipelines, from the same keyed functions the anonymiser applies
 * inside the files, so folder and file names match the anonymised content.
 */
import path from 'node:path';
import type { Config } from '../config';
import { loadIdentityMapping } from '../dicom/mapping';
import { anonymiseSettingsSchema } from '../dicom/options';
import { anonymisedUid, opaqueToken, patientPseudonym } from '../dicom/pseudonyms';
import { resolveInside } from '../output/sanitize';
import type { Pseudonymiser } from '../pipeline/naming';
import { PermanentError } from '../pipeline/runner';

export function createPseudonymiser(config: Pick<Config, 'anonymisationSecret' | 'rulesPath'>): Pseudonymiser | undefined {
  const secret = config.anonymisationSecret;
  if (!secret) return undefined;
  return {
    async patientPseudonym(job, patientId) {
      const settings = anonymiseSettingsSchema.parse(job.rule.anonymise ?? {});
      if (settings.Identity !== 'mapping') return patientPseudonym(secret, patientId, settings.PseudonymPrefix);
      const file = resolveInside(config.rulesPath, settings.MappingFile ?? '');
      try {
        return (await loadIdentityMapping(file)).pseudonymFor(patientId);
      } catch (error) {
        throw new PermanentError(`identity mapping ${path.basename(file)}: ${(error as Error).message}`);
      }
    },
    uid: (uid) => anonymisedUid(secret, uid),
    token: (value) => opaqueToken(secret, value),
  };
}
