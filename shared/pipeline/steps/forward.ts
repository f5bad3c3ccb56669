/**
 * The forward step, to every destination of the rule: DICOM modalities known to Orthanc (C-STORE) and
 * DICOMweb servers from DICOMWEB_<NAME> (STOW-RS).
 * - C-STORE after a download: the pipeline's files (possibly anonymised) go through
 *   `/modalities/{name}/store-straight`, so no anonymised copy is ever stored in Orthanc;
 * - C-STORE otherwise: the original resource goes through `/modalities/{name}/store` as an asynchronous
 *   Orthanc job, polled by re-enqueued messages, so a long transfer never holds a worker;
 * - STOW-RS: the pipeline's files (after a download) or Orthanc's originals, in batches; the instances
 *   the server refused are remembered on the job (as index ranges) and only they are sent again.
 * Each destination is tracked on the job. A destination that fails is retried with growing delays,
 * then the job fails with the destination's reason.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { buffer } from 'node:stream/consumers';
import type { ModalityDefinition } from '../../config';
import { sopInstanceUidOf, type StowClient } from '../../dicomweb/stow';
import { OrthancError, type OrthancClient } from '../../orthanc/client';
import { forEachLimit } from '../../util/concurrency';
import { filesUnder } from '../../util/files';
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
  /** STOW-RS: the instances still to send (index ranges into the sorted instance list, e.g. `3,7-9`), of `total`. */
  retry?: string;
  failed?: number;
}

export interface ForwardDeps {
  orthanc: Pick<
    OrthancClient,
    'storeStraight' | 'storeToModalityAsync' | 'getJob' | 'putModality' | 'listInstances' | 'instanceFile'
  >;
  /** Destinations from the environment, (re)applied to Orthanc before use: Orthanc may have restarted. */
  modalities: Record<string, ModalityDefinition>;
  /** DICOMweb destinations (DICOMWEB_<NAME>), by name. */
  dicomweb?: Record<string, Pick<StowClient, 'store'>>;
  concurrency: number;
  pollSeconds: number;
  maxAttempts: number;
}

function reasonOf(error: unknown): string {
  if (error instanceof OrthancError) return error.details.orthancDetails ?? error.message;
  return (error as Error).message;
}

async function dicomFiles(root: string): Promise<string[]> {
  return (await filesUnder(root)).filter((f) => path.basename(f).toLowerCase().endsWith('.dcm')).sort();
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
    let items: Promise<StowItem[]> | undefined;
    let waitSeconds = 0;

    for (const name of job.rule.destinations) {
      const state = states[name];
      if (state.status === 'done') continue;
      try {
        const stow = deps.dicomweb?.[name];
        if (stow) {
          items ??= fromFiles ? filesAsItems(files) : orthancItems(deps, job);
          await sendStow(stow, await items, state, deps.concurrency, progress);
          continue;
        }
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

/** One instance to send by STOW-RS: the bytes are read only when its batch goes. */
interface StowItem {
  size: number;
  /** Known up front for Orthanc's instances; read from the file's header otherwise. */
  sopInstanceUid?: string;
  read(): Promise<Buffer>;
}

async function filesAsItems(files: string[]): Promise<StowItem[]> {
  return Promise.all(files.map(async (file) => ({ size: (await fs.stat(file)).size, read: () => fs.readFile(file) })));
}

async function orthancItems(deps: ForwardDeps, job: Job): Promise<StowItem[]> {
  const instances = await deps.orthanc.listInstances(job.level === 'Study' ? 'studies' : 'series', job.resourceId);
  return instances
    .sort((a, b) => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0))
    .map((instance) => ({
      size: instance.FileSize,
      sopInstanceUid:
        typeof instance.MainDicomTags?.SOPInstanceUID === 'string' ? instance.MainDicomTags.SOPInstanceUID : undefined,
      read: async () => buffer(await deps.orthanc.instanceFile(instance.ID)),
    }));
}

/**
 * Batches of at most 50 instances or 16 MiB (a single larger instance goes alone), 3 requests at once:
 * one request per instance pays an HTTP exchange and a server transaction for each small file, while
 * bounded batches keep memory flat (about 3 x 2 x 16 MiB with the multipart copy), make a failed
 * request cheap to repeat, and a few in flight keep the server busy without swamping it.
 */
export const STOW_BATCH_INSTANCES = 50;
export const STOW_BATCH_BYTES = 16 * 1024 * 1024;
export const STOW_PARALLEL_REQUESTS = 3;

/** `[0,1,2,5,7,8]` → `0-2,5,7-8`: a compact record, small on the job even when a whole batch failed. */
export function encodeRanges(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < sorted.length;) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j += 1;
    out.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

export function decodeRanges(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',').filter(Boolean)) {
    const [from, to] = part.split('-').map(Number);
    for (let i = from; i <= (to ?? from); i += 1) out.push(i);
  }
  return out;
}

/** Groups item indices into batches by count and bytes, in order. */
export function stowBatches(indices: readonly number[], sizeOf: (index: number) => number): number[][] {
  const batches: number[][] = [];
  let current: number[] = [];
  let bytes = 0;
  for (const index of indices) {
    const size = sizeOf(index);
    if (current.length > 0 && (current.length >= STOW_BATCH_INSTANCES || bytes + size > STOW_BATCH_BYTES)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(index);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Sends what is still to send; throws (to retry later) with the first reason when some were refused. */
async function sendStow(
  stow: Pick<StowClient, 'store'>,
  items: StowItem[],
  state: DestinationState,
  concurrency: number,
  progress: (done: number, total: number) => Promise<void>,
): Promise<void> {
  const all = items.map((_, i) => i);
  // A retry list is only meaningful against the same instance list; otherwise everything goes again.
  const pending = state.retry !== undefined && state.total === items.length ? decodeRanges(state.retry) : all;
  state.status = 'sending';
  state.total = items.length;
  const failed: number[] = [];
  let firstReason: string | undefined;
  let stored = items.length - pending.length;
  await forEachLimit(
    stowBatches(pending, (i) => items[i].size),
    Math.min(STOW_PARALLEL_REQUESTS, Math.max(1, concurrency)),
    async (batch) => {
      const parts = await Promise.all(
        batch.map(async (i) => {
          const bytes = await items[i].read();
          return { index: i, sopInstanceUid: items[i].sopInstanceUid ?? sopInstanceUidOf(bytes), bytes };
        }),
      );
      const outcome = await stow.store(parts);
      for (const part of parts) {
        const reason = outcome.failed.get(part.sopInstanceUid);
        if (reason === undefined) stored += 1;
        else {
          failed.push(part.index);
          firstReason ??= reason;
        }
      }
      await progress(stored, items.length);
    },
  );
  state.sent = stored;
  if (failed.length > 0) {
    state.retry = encodeRanges(failed);
    state.failed = failed.length;
    throw new Error(`${failed.length} of ${items.length} instances not stored: ${firstReason ?? 'refused'}`);
  }
  state.status = 'done';
  state.error = undefined;
  state.retry = undefined;
  state.failed = undefined;
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
