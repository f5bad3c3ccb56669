/**
 * The anonymise step: every instance the download put in the job's private staging folder is
 * de-identified with the rule's Anonymise settings (PS3.15 Annex E, pseudonyms and UIDs keyed per
 * project) and moved into the job's `<name>.WORKING`; the staging folder is then deleted. Files that
 * cannot be parsed fail the job with their (pseudonymous) name, and the job's end deletes staging and
 * `.WORKING` alike, so a failure leaves no file under the storage root.
 *
 * Safe to run again after a crash: originals stay in staging until their anonymised file is in
 * `.WORKING`, so a second run picks up exactly the files not yet done and counts the rest.
 */
import { anonymisationProject } from '../../dicom/options';
import { createAnonymiser } from '../../dicom/anonymiser';
import { promises as fs } from 'node:fs';
import { anonymiseFolder } from '../../dicom/folder';
import { jobRecord } from '../../dicom/record';
import { loadIdentityMapping } from '../../dicom/mapping';
import { projectKey } from '../../dicom/pseudonyms';
import { resolveInside } from '../../output/sanitize';
import { anonymiseSettingsOf } from '../job';
import { ensureWorkingFor, jobPaths } from '../naming';
import { discardStaging, stagingFolder } from '../staging';
import type { StepHandler } from '../runner';
import { PermanentError } from '../../vocabulary';

export interface AnonymiseDeps {
  secret?: string;
  rulesPath: string;
  stagingPath: string;
  concurrency: number;
}

export function anonymiseStep(deps: AnonymiseDeps): StepHandler {
  return async ({ job, progress }) => {
    if (!deps.secret) throw new PermanentError('AUTOMATION_ANONYMISATION_SECRET is not set; anonymising rules need it');
    const settings = anonymiseSettingsOf(job.rule);
    const mapping =
      settings.Identity === 'mapping'
        ? await loadIdentityMapping(resolveInside(deps.rulesPath, settings.MappingFile!)).catch((e: Error) => {
            throw new PermanentError(`identity mapping file: ${e.message}`);
          })
        : undefined;
    const secret = projectKey(deps.secret, anonymisationProject(settings, job.ruleId));
    const anonymiser = createAnonymiser({ secret, settings, mapping });
    const paths = jobPaths(job);
    const ruleFolderExisted = await fs.stat(paths.ruleFolder).then(
      () => true,
      () => false,
    );
    await ensureWorkingFor(paths);
    // A failure here fails the job: its files go before the failure is recorded, so nobody who sees
    // the job failed (a watcher, the API) ever finds a half-filled `.WORKING` beside it.
    const failWith = async (reason: string): Promise<never> => {
      await fs.rm(paths.working, { recursive: true, force: true });
      // A rule folder this step made goes too (when empty); one that existed may be a watcher's.
      if (!ruleFolderExisted) await fs.rmdir(paths.ruleFolder).catch(() => undefined);
      await discardStaging(deps.stagingPath, job.id);
      throw new PermanentError(reason);
    };
    let result;
    try {
      result = await anonymiseFolder(stagingFolder(deps.stagingPath, job.id), anonymiser, {
        concurrency: deps.concurrency,
        progress,
        output: paths.working,
      });
    } catch (error) {
      return failWith((error as Error).message);
    }
    if (result.instances === 0)
      return failWith(
        `no instance left to publish: ${result.excluded.length} excluded by the BurnedInAnnotation policy`,
      );
    await discardStaging(deps.stagingPath, job.id);
    return {
      instances: result.instances,
      bytes: result.bytesOut,
      warnings: [...result.warnings, ...result.excluded.map((e) => `excluded ${e}`)],
      // The de-identification record (counts per basis of decision, no original value): on the job for
      // the API and dashboard, and written into a zip as DEIDENTIFICATION.json by the zip step.
      detail: {
        excluded: result.excluded.length,
        profile: anonymiser.profile.table,
        options: settings,
        deidentification: jobRecord(result.record),
      },
    };
  };
}
