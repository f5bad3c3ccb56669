/**
 * The forward step, to every destination of the rule: DICOM modalities known to Orthanc (C-STORE) and
 * DICOMweb servers from DICOMWEB_<NAME> (STOW-RS).
 * - C-STORE after a download: the pipeline's files (possibly anonymised) go through
 *   `/modalities/{name}/store-straight`, so no anonymised copy is ever stored in Orthanc;
 * - C-STORE otherwise: the original resource goes through `/modalities/{name}/store` as an asynchronous
 *   Orthanc job, polled by re-enqueued messages, so a long transfer never holds a worker;
 * - STOW-RS: the pipeline's files (after a download) or Orthanc's originals, in batches; the instances
 *   the server refused are remembered on the job (as index ranges) and only they are sent again.
 * Each destination is its own message and record (shared/pipeline/destinationRunner.ts): one that is
 * down is retried with growing delays on its own, shows as stuck after AUTOMATION_DESTINATION_STUCK_MINUTES,
 * and fails the job with its reason once its attempts are used up; the others are sent at once.
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
import { jobPaths } from '../naming';
import type { FanOutStep } from '../runner';
import { fanOutStep, type DestinationContext, type DestinationOutcome } from '../destinationRunner';
import type { DestinationRecord, DestinationRecords, TransferState } from '../destinations';
import { PermanentError } from '../../vocabulary';

/** A destination's record on the forward step (shared/pipeline/destinations.ts). */
export type DestinationState = DestinationRecord;

export interface ForwardDeps {
  orthanc: Pick<
    OrthancClient,
    'storeStraight' | 'storeToModalityAsync' | 'getJob' | 'putModality' | 'listInstances' | 'instanceFile'
  >;
  /**
   * The DICOM destinations, (re)applied to Orthanc before use (Orthanc may have restarted); a function,
   * so destinations managed at run time are read as they are now.
   */
  modalities: () => Promise<Record<string, ModalityDefinition>>;
  /**
   * DICOMweb destinations (DICOMWEB_<NAME> and the dashboard's), by name; a function, like `modalities`,
   * so one added at run time is used at once.
   */
  dicomweb?: Record<string, Pick<StowClient, 'store'>> | (() => Promise<Record<string, Pick<StowClient, 'store'>>>);
  concurrency: number;
  pollSeconds: number;
  maxAttempts: number;
  /** AUTOMATION_DESTINATION_STUCK_MINUTES in milliseconds. */
  stuckAfterMs: number;
  /** A destination became stuck (the alert); failing it never fails the forward. */
  onStuck?: (job: Job, destination: string, record: DestinationRecord) => Promise<void>;
}

/** Retries of a destination that is down come at least this often, however many attempts failed. */
export const MAX_RETRY_DELAY_SECONDS = 300;

/** `POLL x 2^(attempts-1)` seconds, at most MAX_RETRY_DELAY_SECONDS. */
export function forwardRetryDelaySeconds(pollSeconds: number, attempts: number): number {
  return Math.min(MAX_RETRY_DELAY_SECONDS, pollSeconds * 2 ** Math.min(30, Math.max(0, attempts - 1)));
}

function reasonOf(error: unknown): string {
  if (error instanceof OrthancError) return error.details.orthancDetails ?? error.message;
  return (error as Error).message;
}

async function dicomFiles(root: string): Promise<string[]> {
  return (await filesUnder(root)).filter((f) => path.basename(f).toLowerCase().endsWith('.dcm')).sort();
}

export function forwardStep(deps: ForwardDeps): FanOutStep {
  return fanOutStep(
    async ({ job }) => {
      if (job.rule.destinations.length === 0)
        throw new PermanentError(`rule '${job.ruleId}' forwards but names no destination`);
      return { fanOut: { destinations: job.rule.destinations } };
    },
    {
      send: (context) => sendToDestination(deps, context),
      maxAttempts: deps.maxAttempts,
      retryDelaySeconds: (attempts) => forwardRetryDelaySeconds(deps.pollSeconds, attempts),
      stuckAfterMs: deps.stuckAfterMs,
      stepInstances: (records: DestinationRecords) => {
        const totals = Object.values(records).map((r) => r.total ?? 0);
        return totals.length ? Math.max(...totals) : undefined;
      },
      onStuck: deps.onStuck,
    },
  );
}

/**
 * One attempt at one destination, outside the pipeline (the benchmark): what it sent is in `transfer`.
 * An error fails the attempt with Orthanc's or the server's reason.
 */
export function forwardOnce(
  deps: ForwardDeps,
  job: Job,
  destination: string,
  transfer: TransferState = {},
): Promise<DestinationOutcome> {
  const log = { info() {}, warn() {}, error() {} };
  return sendToDestination(deps, { job, destination, attempt: 1, transfer, log, progress: async () => undefined });
}

async function sendToDestination(deps: ForwardDeps, context: DestinationContext): Promise<DestinationOutcome> {
  try {
    return await attempt(deps, context);
  } catch (error) {
    if (error instanceof PermanentError) throw error;
    throw new Error(reasonOf(error), { cause: error });
  }
}

async function attempt(deps: ForwardDeps, { job, destination: name, transfer, progress }: DestinationContext) {
  const fromFiles = job.rule.steps.includes('download');
  const dicomweb = typeof deps.dicomweb === 'function' ? await deps.dicomweb() : deps.dicomweb;
  const stow = dicomweb && Object.hasOwn(dicomweb, name) ? dicomweb[name] : undefined;
  if (stow) {
    const items = fromFiles
      ? await filesAsItems(await dicomFiles(jobPaths(job).working))
      : await orthancItems(deps, job);
    await sendStow(stow, items, transfer, deps.concurrency, progress);
    return { sent: true } as const;
  }
  const modality = (await deps.modalities())[name];
  if (modality) await deps.orthanc.putModality(name, modality);
  if (fromFiles) {
    const files = await dicomFiles(jobPaths(job).working);
    transfer.total = files.length;
    let sent = 0;
    await forEachLimit(files, deps.concurrency, async (file) => {
      await deps.orthanc.storeStraight(name, await fs.readFile(file));
      sent += 1;
      await progress(sent, files.length);
    });
    transfer.sent = sent;
    return { sent: true } as const;
  }
  return (await pollOrStart(deps, job, name, transfer)) === 'done'
    ? ({ sent: true } as const)
    : { pollSeconds: deps.pollSeconds };
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
  state: TransferState,
  concurrency: number,
  progress: (done: number, total: number) => Promise<void>,
): Promise<void> {
  const all = items.map((_, i) => i);
  // A retry list is only meaningful against the same instance list; otherwise everything goes again.
  const pending = state.retry !== undefined && state.total === items.length ? decodeRanges(state.retry) : all;
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
  state.retry = undefined;
  state.failed = undefined;
}

/** Starts the Orthanc C-STORE job for the original resource, or reports on the one running. */
async function pollOrStart(
  deps: ForwardDeps,
  job: Job,
  name: string,
  state: TransferState,
): Promise<'running' | 'done'> {
  if (state.orthancJob) {
    let orthancJob;
    try {
      orthancJob = await deps.orthanc.getJob(state.orthancJob);
    } catch (error) {
      if (!(error instanceof OrthancError && error.notFound)) throw error;
      state.orthancJob = undefined; // forgotten by Orthanc (restart, history size): submit again
    }
    if (orthancJob?.State === 'Success') return 'done';
    if (orthancJob?.State === 'Failure') {
      state.orthancJob = undefined;
      throw new Error(
        `${orthancJob.ErrorDescription ?? 'C-STORE failed'}${orthancJob.ErrorDetails ? `: ${orthancJob.ErrorDetails}` : ''}`,
      );
    }
    if (orthancJob) {
      state.sent = orthancJob.Progress;
      return 'running';
    }
  }
  state.orthancJob = await deps.orthanc.storeToModalityAsync(name, [job.resourceId]);
  return 'running';
}
