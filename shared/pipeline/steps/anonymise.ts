/**
 * The anonymise step: every instance in the job's working folder is de-identified in place with the
 * rule's Anonymise settings (PS3.15 Annex E, keyed pseudonyms and UIDs). Files that cannot be parsed
 * fail the job with their (pseudonymous) name.
 *
 * Safe to run again after a crash: the download names each file after its future SOP Instance UID
 * (the keyed replacement of the original), so a file whose content already carries that UID is
 * done; an original never does (its UID would have to be its own keyed hash).
 */
import { anonymiseSettingsSchema } from '../../dicom/options';
import { createAnonymiser } from '../../dicom/anonymiser';
import path from 'node:path';
import { anonymiseFolder, metaSopInstanceUid } from '../../dicom/folder';
import { loadIdentityMapping } from '../../dicom/mapping';
import { resolveInside } from '../../output/sanitize';
import { jobPaths } from '../naming';
import { PermanentError, type StepHandler } from '../runner';

export interface AnonymiseDeps {
  secret?: string;
  rulesPath: string;
  concurrency: number;
}

export function alreadyAnonymised(file: string, input: Buffer): boolean {
  const sop = metaSopInstanceUid(input);
  return sop !== undefined && sop === path.basename(file, '.dcm');
}

export function anonymiseStep(deps: AnonymiseDeps): StepHandler {
  return async ({ job, progress }) => {
    if (!deps.secret) throw new PermanentError('AUTOMATION_ANONYMISATION_SECRET is not set; anonymising rules need it');
    const parsed = anonymiseSettingsSchema.safeParse(job.rule.anonymise ?? {});
    if (!parsed.success) throw new PermanentError(`the rule's Anonymise settings are invalid: ${parsed.error.issues[0]?.message}`);
    const settings = parsed.data;
    const mapping = settings.Identity === 'mapping' ? await loadIdentityMapping(resolveInside(deps.rulesPath, settings.MappingFile!)).catch((e: Error) => {
      throw new PermanentError(`identity mapping file: ${e.message}`);
    }) : undefined;
    const anonymiser = createAnonymiser({ secret: deps.secret, settings, mapping });
    let result;
    try {
      result = await anonymiseFolder(jobPaths(job).working, anonymiser, { concurrency: deps.concurrency, progress, isDone: alreadyAnonymised });
    } catch (error) {
      throw new PermanentError((error as Error).message);
    }
    if (result.instances === 0) throw new PermanentError(`no instance left to publish: ${result.excluded.length} excluded by the BurnedInAnnotation policy`);
    return {
      instances: result.instances,
      bytes: result.bytesOut,
      warnings: [...result.warnings, ...result.excluded.map((e) => `excluded ${e}`)],
      detail: { excluded: result.excluded.length, profile: 'PS3.15 E.1-1', options: settings },
    };
  };
}
