/**
 * Private staging for anonymising pipelines. Their originals (names, IDs, dates, UIDs) are downloaded
 * into `<staging>/<jobId>/`, a folder no share or watcher sees; only de-identified files ever reach
 * the storage root (moved into `<name>.WORKING` by the anonymise step). A job's staging lives no
 * longer than the job: it is deleted when the job ends, when it is retried, and at start-up for every
 * job that has ended or that the ledger does not know.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { isTerminal, type Job } from './job';
import type { JobStore, OutputLocks } from './ports';
import { anonymises, jobPaths } from './naming';

const JOB_ID = /^[0-9a-f]{32}$/;

/** The staging folder of one job (the id is a hex digest, never PHI, so it is safe as a name). */
export function stagingFolder(stagingPath: string, jobId: string): string {
  if (!JOB_ID.test(jobId)) throw new Error(`not a job id: ${JSON.stringify(jobId.slice(0, 40))}`);
  return path.join(stagingPath, jobId);
}

/** An empty staging folder for a job's download (what an earlier attempt left is discarded). */
export async function prepareStaging(stagingPath: string, jobId: string): Promise<string> {
  const folder = stagingFolder(stagingPath, jobId);
  await fs.mkdir(stagingPath, { recursive: true, mode: 0o700 });
  await fs.rm(folder, { recursive: true, force: true });
  await fs.mkdir(folder, { mode: 0o700 });
  return folder;
}

export async function discardStaging(stagingPath: string, jobId: string): Promise<void> {
  await fs.rm(stagingFolder(stagingPath, jobId), { recursive: true, force: true });
}

export interface JobFilesDeps {
  stagingPath: string;
  outputLocks: Pick<OutputLocks, 'acquire'>;
}

/**
 * When an anonymising job ends: its staging goes; and if it failed, its `.WORKING` folders too (they
 * hold only de-identified files, but a failed job must leave nothing a recipient could take for a
 * result), then the rule folder if that leaves it empty. The working folders are removed only while
 * this job still holds the output claim, never under a later job that took the same output over.
 * Pipelines that do not anonymise keep autorthanc's behaviour: nothing is removed.
 */
export async function cleanUpEndedJob(deps: JobFilesDeps, job: Job): Promise<void> {
  if (!anonymises(job)) return;
  await discardStaging(deps.stagingPath, job.id);
  if (job.status !== 'failed' || !job.outputPath) return;
  if (!(await deps.outputLocks.acquire(job.outputPath, job.id)).acquired) return;
  const paths = jobPaths(job);
  await fs.rm(paths.working, { recursive: true, force: true });
  await fs.rm(paths.zipWorking, { force: true });
  await fs.rmdir(paths.ruleFolder).catch(() => undefined); // only succeeds when empty
}

export interface StagingSweep {
  kept: number;
  removed: number;
}

/**
 * Start-up: deletes every staging folder whose job has ended or is unknown (and anything else found
 * there, which the app did not put). Jobs still running keep theirs, so a step resumed after a crash
 * finds its files.
 */
export async function sweepStaging(stagingPath: string, jobs: Pick<JobStore, 'get'>): Promise<StagingSweep> {
  const result: StagingSweep = { kept: 0, removed: 0 };
  let entries: string[];
  try {
    entries = await fs.readdir(stagingPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return result;
    throw error;
  }
  for (const name of entries) {
    const job = JOB_ID.test(name) ? await jobs.get(name) : undefined;
    if (job && !isTerminal(job)) {
      result.kept += 1;
      continue;
    }
    await fs.rm(path.join(stagingPath, name), { recursive: true, force: true });
    result.removed += 1;
  }
  return result;
}

/**
 * Creates the staging folder (owner only) and checks that it shares the storage root's filesystem.
 * Returns a warning when it does not: the anonymise step then copies each file into `.WORKING`
 * instead of renaming it, so a partly written (de-identified) temporary file can show there.
 */
export async function checkStagingLocation(stagingPath: string, storagePath: string): Promise<string | undefined> {
  await fs.mkdir(stagingPath, { recursive: true, mode: 0o700 });
  await fs.chmod(stagingPath, 0o700);
  await fs.mkdir(storagePath, { recursive: true });
  const [staging, storage] = await Promise.all([fs.stat(stagingPath), fs.stat(storagePath)]);
  if (staging.dev === storage.dev) return undefined;
  return (
    `AUTOMATION_STAGING_PATH (${stagingPath}) is not on the filesystem of ORTHANC_AUTOMATION_STORAGE_PATH (${storagePath}): ` +
    'de-identified files are copied, not renamed, into .WORKING; put the staging folder on the same filesystem, outside the storage root'
  );
}
