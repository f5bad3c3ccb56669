/**
 * Where a job's files go. Plain pipelines use autorthanc's names; pipelines that anonymise use a
 * pseudonymiser so that no PHI appears in any path, not even while the folder is `.WORKING`, and
 * download into private staging (shared/pipeline/staging.ts) rather than under the storage root.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { OrthancStudy } from '../orthanc/schemas';
import {
  WORKING_SUFFIX,
  instanceFileName,
  outputName,
  outputPaths as layoutPaths,
  pseudonymousOutputName,
  seriesFolderName,
  type OutputPaths,
} from '../output/layout';
import { sanitizeComponent } from '../output/sanitize';
import type { Job } from './job';
import { PermanentError } from '../vocabulary';

/** Derives pseudonymous identifiers with the site's secret (shared/dicom provides it). */
export interface Pseudonymiser {
  /** The pseudonym that replaces PatientID for this job's rule settings. */
  patientPseudonym(job: Job, patientId: string): Promise<string>;
  /** The replacement of a DICOM UID (same function and project key as inside the anonymised files). */
  uid(job: Job, uid: string): string;
  /** A short opaque token for the study, for folder names. */
  token(job: Job, value: string): string;
}

export interface OutputNaming {
  outputName(job: Job, study: OrthancStudy, seriesTags?: Record<string, string>): Promise<string>;
  seriesFolder(job: Job, seriesTags: Record<string, string>): Promise<string>;
  instanceFile(job: Job, sopInstanceUid: string): Promise<string>;
}

/** Whether a job's pipeline de-identifies: then no original may ever sit under the storage root. */
export function anonymises(job: Pick<Job, 'rule'>): boolean {
  return job.rule.steps.includes('anonymise');
}

export function createOutputNaming(pseudonymiser: Pseudonymiser | undefined): OutputNaming {
  function requirePseudonymiser(job: Job): Pseudonymiser {
    if (!pseudonymiser)
      throw new PermanentError(`rule '${job.ruleId}' anonymises but AUTOMATION_ANONYMISATION_SECRET is not set`);
    return pseudonymiser;
  }
  return {
    async outputName(job, study, seriesTags) {
      if (!anonymises(job)) {
        return outputName(
          { level: job.level, ...study.PatientMainDicomTags, ...study.MainDicomTags, ...(seriesTags ?? {}) },
          job.rule.outputName,
        );
      }
      const p = requirePseudonymiser(job);
      const pseudonym = await p.patientPseudonym(job, study.PatientMainDicomTags.PatientID ?? '');
      return pseudonymousOutputName(
        pseudonym,
        p.token(job, study.MainDicomTags.StudyInstanceUID ?? study.ID),
        job.level === 'Series' ? seriesTags?.SeriesNumber : undefined,
      );
    },
    async seriesFolder(job, tags) {
      if (!anonymises(job))
        return seriesFolderName({
          SeriesNumber: tags.SeriesNumber,
          SeriesDate: tags.SeriesDate,
          SeriesInstanceUID: tags.SeriesInstanceUID ?? 'NOUID',
        });
      const p = requirePseudonymiser(job);
      return `SE${sanitizeComponent(tags.SeriesNumber, '', 16)}-${p.uid(job, tags.SeriesInstanceUID ?? '')}`;
    },
    async instanceFile(job, sop) {
      return instanceFileName(anonymises(job) ? requirePseudonymiser(job).uid(job, sop) : sop);
    },
  };
}

export function outputPaths(storagePath: string, job: Job, name: string): OutputPaths {
  return layoutPaths(storagePath, job.ruleId, name);
}

/**
 * The paths of a job whose download already chose its output. The zip is built outside the rule
 * folder, as `.<job id>.zip.WORKING` in the storage root (same filesystem, no PHI in the name, one
 * file per job and no shared folder to race over), so that its rename into the rule folder is a file
 * *created* there for a watcher.
 */
export function jobPaths(job: Job): OutputPaths & { zip: string; zipWorking: string } {
  if (!job.outputPath) throw new Error(`Job ${job.id} has no output yet (download has not completed)`);
  const final = job.outputPath;
  const ruleFolder = final.slice(0, final.lastIndexOf('/'));
  const storageRoot = ruleFolder.slice(0, ruleFolder.lastIndexOf('/'));
  return {
    ruleFolder,
    final,
    working: `${final}${WORKING_SUFFIX}`,
    zip: `${final}.zip`,
    zipWorking: path.join(storageRoot, `.${job.id}.zip${WORKING_SUFFIX}`),
  };
}

/** Creates the rule folder, with the real reason (EROFS, EACCES, ENOSPC) when it cannot. */
async function ensureRuleFolder(paths: OutputPaths): Promise<void> {
  await fs.mkdir(paths.ruleFolder, { recursive: true }).catch(async (error: NodeJS.ErrnoException) => {
    // Node's recursive mkdir reports ENOENT for some failures, a read-only filesystem among them;
    // a plain mkdir of the folder gives the real reason for the job's error.
    if (error.code !== 'ENOENT') throw error;
    await fs.mkdir(paths.ruleFolder);
  });
}

/** An empty working folder (an earlier job's leftovers removed). */
export async function prepareWorkingFor(paths: OutputPaths): Promise<void> {
  await ensureRuleFolder(paths);
  await fs.rm(paths.working, { recursive: true, force: true });
  await fs.mkdir(paths.working, { recursive: true });
}

/** The working folder, created if missing and kept if present (a step resumed after a crash). */
export async function ensureWorkingFor(paths: OutputPaths): Promise<void> {
  await ensureRuleFolder(paths);
  await fs.mkdir(paths.working, { recursive: true });
}
