/**
 * The forward step, to every destination of the rule (DICOM modalities known to Orthanc):
 * - after a download, the pipeline's files (possibly anonymised) go through
 *   `/modalities/{name}/store-straight`, so no anonymised copy is ever stored in Orthanc;
 * - otherwise the original resource goes through `/modalities/{name}/store` as an asynchronous Orthanc
 *   job, polled by re-enqueued messages, so a long transfer never holds a worker.
 * Each destination is tracked on the job. A destination that fails is retried with growing delays,
 * then the job fails with Orthanc's reason.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { ModalityDefinition } from '../../config';
import { OrthancError, type OrthancClient } from '../../orthanc/client';
import { forEachLimit } from '../../util/concurrency';
import type { Job } from '../job';
import { stepRecord } from '../job';
import { jobPaths } from '../naming';
import type { StepHandler, StepWait } from '../runner';
import { PermanentError } from '../../vocabulary';

export interface DestinationState {
  status: 'pending' | 'sending' | 'done' | 'retrying';
  attempts: number;
  sent?: number;
  total?: number;
  orthancJob?: string;
  error?: string;
}

export interface ForwardDeps {
  orthanc: Pick<OrthancClient, 'storeStraight' | 'storeToModalityAsync' | 'getJob' | 'putModality'>;
  /** Destinations from the environment, (re)applied to Orthanc before use: Orthanc may have restarted. */
  modalities: Record<string, ModalityDefinition>;
  concurrency: number;
  pollSeconds: number;
  maxAttempts: number;
}

function reasonOf(error: unknown): string {
  if (error instanceof OrthancError) return error.details.orthancDetails ?? error.message;
  return (error as Error).message;
}

async function dicomFiles(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.toLowerCase().endsWith('.dcm'))
    .map((e) => path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
}

export function forwardStep(deps: ForwardDeps): StepHandler {
  return async ({ job, progress, log }) => {
    if (job.rule.destinations.length === 0)
      throw new PermanentError(`rule '${job.ruleId}' forwards but names no destination`);
    const previous = (stepRecord(job, 'forward').detail?.destinations ?? {}) as Record<string, DestinationState>;
    const states: Record<string, DestinationState> = {};
    for (const name of job.rule.destinations) states[name] = previous[name] ?? { status: 'pending', attempts: 0 };
    const fromFiles = job.rule.steps.includes('download');
    const files = fromFiles ? await dicomFiles(jobPaths(job).working) : [];
    let waitSeconds = 0;

    for (const name of job.rule.destinations) {
      const state = states[name];
      if (state.status === 'done') continue;
      try {
        if (deps.modalities[name]) await deps.orthanc.putModality(name, deps.modalities[name]);
        if (fromFiles) {
          state.status = 'sending';
          state.total = files.length;
          let sent = 0;
          await forEachLimit(files, deps.concurrency, async (file) => {
            await deps.orthanc.storeStraight(name, await fs.readFile(file));
            sent += 1;
            await progress(sent, files.length);
          });
          state.sent = sent;
          state.status = 'done';
          state.error = undefined;
        } else {
          const outcome = await pollOrStart(deps, job, name, state);
          if (outcome === 'running') waitSeconds = Math.max(waitSeconds, deps.pollSeconds);
        }
      } catch (error) {
        const reason = reasonOf(error);
        state.attempts += 1;
        state.error = reason;
        state.orthancJob = undefined;
        if (state.attempts >= deps.maxAttempts) {
          throw new PermanentError(`destination ${name}: ${reason} (after ${state.attempts} attempts)`);
        }
        state.status = 'retrying';
        const delay = deps.pollSeconds * 2 ** (state.attempts - 1);
        log.warn(
          `Job ${job.id} (${job.ruleId}) forward to ${name} failed (attempt ${state.attempts} of ${deps.maxAttempts}), retrying in ${delay} s: ${reason}`,
        );
        waitSeconds = Math.max(waitSeconds, delay);
      }
    }
    if (waitSeconds > 0) {
      const done = Object.values(states).filter((s) => s.status === 'done').length;
      const wait: StepWait = {
        wait: {
          delaySeconds: waitSeconds,
          detail: { destinations: states },
          progress: { done, total: job.rule.destinations.length },
        },
      };
      return wait;
    }
    return { instances: fromFiles ? files.length : undefined, detail: { destinations: states } };
  };
}

/** Starts the Orthanc C-STORE job for the original resource, or reports on the one running. */
async function pollOrStart(
  deps: ForwardDeps,
  job: Job,
  name: string,
  state: DestinationState,
): Promise<'running' | 'done'> {
  if (state.orthancJob) {
    let orthancJob;
    try {
      orthancJob = await deps.orthanc.getJob(state.orthancJob);
    } catch (error) {
      if (!(error instanceof OrthancError && error.notFound)) throw error;
      state.orthancJob = undefined; // forgotten by Orthanc (restart, history size): submit again
    }
    if (orthancJob?.State === 'Success') {
      state.status = 'done';
      state.error = undefined;
      return 'done';
    }
    if (orthancJob?.State === 'Failure') {
      throw new Error(
        `${orthancJob.ErrorDescription ?? 'C-STORE failed'}${orthancJob.ErrorDetails ? `: ${orthancJob.ErrorDetails}` : ''}`,
      );
    }
    if (orthancJob) {
      state.status = 'sending';
      state.sent = orthancJob.Progress;
      return 'running';
    }
  }
  state.orthancJob = await deps.orthanc.storeToModalityAsync(name, [job.resourceId]);
  state.status = 'sending';
  return 'running';
}
