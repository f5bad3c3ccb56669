/**
 * Each destination of a forward has its own record on the forward step (`detail.destinations`), changed
 * only by the pure transitions below (the ledger stores the result, through the JobStore's optimistic
 * concurrency): queued by the fan-out, claimed by one message per attempt, then sent, retried later,
 * or failed. "Stuck" is a destination still waiting for delivery longer than
 * AUTOMATION_DESTINATION_STUCK_MINUTES after it was queued.
 */
import { decideStep, failStep, finishStep, stepRecord, type Job } from './job';
import type { PipelineStep } from '../vocabulary';

export type DestinationStatus = 'pending' | 'sending' | 'sent' | 'failed' | 'stuck';

export interface DestinationRecord {
  status: DestinationStatus;
  /** Attempts started; a destination message names the attempt it is to make. */
  attempts: number;
  /** When the fan-out queued it: "stuck" and the duration count from here. */
  queuedAt?: string;
  /** When the first attempt started. */
  startedAt?: string;
  /** While a worker sends: refreshed, and cleared when it lets go (an old one means that worker died). */
  heartbeatAt?: string;
  /** When the next attempt is due, after a failed one. */
  nextRetryAt?: string;
  sentAt?: string;
  /** From queued to sent. */
  durationMs?: number;
  /** The last attempt's reason (redacted as every step error). */
  error?: string;
  /** When it was first found stuck (its alert went then). */
  stuckAt?: string;
  /** What the transfer knows: instances sent of total, the Orthanc job it polls, STOW-RS ranges still to send. */
  sent?: number;
  total?: number;
  orthancJob?: string;
  retry?: string;
  failed?: number;
}

export type DestinationRecords = Record<string, DestinationRecord>;

/** The fields a transfer writes (the rest belongs to the transitions here). */
export type TransferState = Pick<DestinationRecord, 'sent' | 'total' | 'orthancJob' | 'retry' | 'failed'>;

/** Records written before per-destination messages said 'done' and 'retrying'. */
function normalise(record: DestinationRecord): DestinationRecord {
  const status = record.status as string;
  if (status === 'done') return { ...record, status: 'sent' };
  if (status === 'retrying') return { ...record, status: 'pending' };
  return record;
}

/** The destination records of a job's step, as stored (none before the fan-out). */
export function destinationsOf(job: Job, step: PipelineStep = 'forward'): DestinationRecords {
  const record = job.steps.find((s) => s.name === step);
  const stored = (record?.detail?.destinations ?? {}) as DestinationRecords;
  return Object.fromEntries(Object.entries(stored).map(([name, r]) => [name, normalise(r)]));
}

/** Whether a destination received the job's instances. */
export function isSent(record: Pick<DestinationRecord, 'status'> | undefined): boolean {
  return record?.status === 'sent' || (record?.status as string) === 'done';
}

function writeBack(job: Job, step: PipelineStep, records: DestinationRecords, now: Date): void {
  const record = stepRecord(job, step);
  record.detail = { ...record.detail, destinations: records };
  const names = Object.keys(records);
  record.progress = { done: names.filter((n) => isSent(records[n])).length, total: names.length };
  job.updatedAt = now.toISOString();
}

/** Waiting for delivery (queued or between attempts) longer than `stuckAfterMs`. */
export function isStuck(record: DestinationRecord, now: Date, stuckAfterMs: number): boolean {
  if (record.status !== 'pending' && record.status !== 'stuck') return false;
  return now.getTime() - Date.parse(record.queuedAt ?? '') >= stuckAfterMs;
}

/** What the API and the dashboard show: a destination waiting too long reads 'stuck', whoever looked last. */
export function destinationView(record: DestinationRecord, now: Date, stuckAfterMs: number): DestinationRecord {
  const normal = normalise(record);
  return isStuck(normal, now, stuckAfterMs) ? { ...normal, status: 'stuck' } : normal;
}

/** A copy of the job whose forward records say 'stuck' where they are. */
export function withDestinationViews(job: Job, now: Date, stuckAfterMs: number): Job {
  const forward = job.steps.find((s) => s.name === 'forward');
  if (!forward?.detail?.destinations) return job;
  const records = destinationsOf(job);
  const viewed = Object.fromEntries(
    Object.entries(records).map(([name, r]) => [name, destinationView(r, now, stuckAfterMs)]),
  );
  return {
    ...job,
    steps: job.steps.map((s) => (s === forward ? { ...s, detail: { ...s.detail, destinations: viewed } } : s)),
  };
}

/** A destination message to send: the attempt it is to make, after `delaySeconds`. */
export interface PlannedAttempt {
  destination: string;
  attempt: number;
  delaySeconds: number;
}

/**
 * The fan-out: every destination gets a record (kept as it is when one exists: a redelivered step
 * message must not resend what was sent), the step waits for them, and each one still waiting gets
 * a message for its next attempt. Returns those messages, and whether the step is already complete.
 */
export function planFanOut(
  job: Job,
  step: PipelineStep,
  names: readonly string[],
  now: Date,
): { attempts: PlannedAttempt[]; complete: boolean } {
  const stored = destinationsOf(job, step);
  const records: DestinationRecords = {};
  const attempts: PlannedAttempt[] = [];
  for (const name of names) {
    const record = (records[name] = stored[name] ?? { status: 'pending', attempts: 0, queuedAt: now.toISOString() });
    // A sending destination has its message (or its worker) already; a sent or failed one is done.
    if (record.status !== 'pending' && record.status !== 'stuck') continue;
    const due = Date.parse(record.nextRetryAt ?? '') - now.getTime();
    attempts.push({
      destination: name,
      attempt: record.attempts + 1,
      delaySeconds: due > 0 ? Math.ceil(due / 1000) : 0,
    });
  }
  const record = stepRecord(job, step);
  record.status = 'waiting';
  job.status = 'running';
  writeBack(job, step, records, now);
  return { attempts, complete: names.every((n) => isSent(records[n])) };
}

export type Claim =
  | { kind: 'run'; record: DestinationRecord; takenOver: boolean }
  | { kind: 'ignore'; reason: string }
  /** Another worker sends it now (fresh heartbeat): that worker's own message covers it. */
  | { kind: 'busy' }
  /** The message of an attempt that failed came back before its follow-up was due: it looks again later. */
  | { kind: 'later'; delaySeconds: number };

/** How long after its due time a follow-up counts as lost (the host died before sending it). */
export const FOLLOW_UP_LOST_AFTER_MS = 30_000;

/**
 * One message claims one attempt. The message of attempt n runs when the record has started n-1
 * attempts (or n, to poll an Orthanc job or take over from a worker that died); anything else is
 * a stale duplicate and does nothing. So a redelivered message never resends a destination that
 * is sent, and two messages never send one destination at once.
 */
export function claimDestination(
  job: Job,
  step: PipelineStep,
  name: string,
  attempt: number,
  now: Date,
  staleMs: number,
): Claim {
  if (decideStep(job, step).kind !== 'run')
    return { kind: 'ignore', reason: `job is ${job.status} at '${job.currentStep}'` };
  const records = destinationsOf(job, step);
  const record = records[name];
  if (!record) return { kind: 'ignore', reason: `'${name}' is not a destination of this run` };
  if (record.status === 'sent' || record.status === 'failed')
    return { kind: 'ignore', reason: `already ${record.status}` };
  let takenOver = false;
  if (record.status === 'sending') {
    if (attempt !== record.attempts) return { kind: 'ignore', reason: `attempt ${attempt} superseded` };
    if (record.heartbeatAt) {
      if (now.getTime() - Date.parse(record.heartbeatAt) < staleMs) return { kind: 'busy' };
      takenOver = true; // the worker died mid-transfer; this attempt is made again
    }
  } else if (attempt === record.attempts) {
    // This attempt failed and scheduled its follow-up; if the host died before sending it, this
    // message (redelivered) is the only one left, so it makes the next attempt once that is overdue.
    const lostAt = Date.parse(record.nextRetryAt ?? '') + FOLLOW_UP_LOST_AFTER_MS;
    if (lostAt > now.getTime()) return { kind: 'later', delaySeconds: Math.ceil((lostAt - now.getTime()) / 1000) };
    record.attempts += 1;
  } else if (attempt === record.attempts + 1) {
    record.attempts += 1;
  } else {
    return { kind: 'ignore', reason: `attempt ${attempt} superseded (${record.attempts} made)` };
  }
  record.status = 'sending';
  record.heartbeatAt = now.toISOString();
  record.startedAt ??= now.toISOString();
  record.nextRetryAt = undefined;
  writeBack(job, step, records, now);
  return { kind: 'run', record, takenOver };
}

/** The worker still sends: its heartbeat, and how far it got. */
export function destinationProgress(
  job: Job,
  step: PipelineStep,
  name: string,
  transfer: TransferState,
  now: Date,
): void {
  const records = destinationsOf(job, step);
  const record = records[name];
  if (record?.status !== 'sending' || !record.heartbeatAt) return;
  Object.assign(record, transfer);
  record.heartbeatAt = now.toISOString();
  writeBack(job, step, records, now);
}

/** The worker lets go while an Orthanc job carries the transfer; a later message polls it. */
export function destinationPolling(
  job: Job,
  step: PipelineStep,
  name: string,
  transfer: TransferState,
  now: Date,
): void {
  const records = destinationsOf(job, step);
  const record = records[name];
  if (record?.status !== 'sending') return;
  Object.assign(record, transfer);
  record.heartbeatAt = undefined;
  writeBack(job, step, records, now);
}

/**
 * A destination was sent. The last one to be sent completes the step (the records as they stand in
 * this read decide, so of two destinations sent at once exactly one completes it): returns true then.
 */
export function destinationSent(
  job: Job,
  step: PipelineStep,
  name: string,
  transfer: TransferState,
  now: Date,
  stepInstances?: (records: DestinationRecords) => number | undefined,
): boolean {
  const records = destinationsOf(job, step);
  const record = records[name];
  if (!record || record.status === 'sent') return false;
  Object.assign(record, transfer, { orthancJob: undefined, retry: undefined, failed: undefined });
  record.status = 'sent';
  record.sentAt = now.toISOString();
  record.durationMs = now.getTime() - Date.parse(record.queuedAt ?? record.startedAt ?? now.toISOString());
  record.heartbeatAt = undefined;
  record.nextRetryAt = undefined;
  record.error = undefined;
  writeBack(job, step, records, now);
  const names = job.rule.destinations;
  if (decideStep(job, step).kind !== 'run' || !names.every((n) => isSent(records[n]))) return false;
  finishStep(
    job,
    step,
    { instances: stepInstances?.(records), detail: { ...stepRecord(job, step).detail, destinations: records } },
    now,
  );
  return true;
}

export type AttemptFailure =
  | { kind: 'retry'; attempt: number; delaySeconds: number; becameStuck: boolean; record: DestinationRecord }
  /** Attempts used up (or a failure retrying cannot fix): the job failed here, or had ended already. */
  | { kind: 'failed'; endedJob: boolean; record: DestinationRecord };

/** An attempt failed: retried after `delaySeconds`, or, attempts used up, the destination and the job fail. */
export function destinationAttemptFailed(
  job: Job,
  step: PipelineStep,
  name: string,
  failure: { reason: string; transfer: TransferState; permanent: boolean },
  policy: { maxAttempts: number; delaySeconds: (attempts: number) => number; stuckAfterMs: number },
  now: Date,
): AttemptFailure | undefined {
  const records = destinationsOf(job, step);
  const record = records[name];
  if (!record || record.status !== 'sending') return undefined;
  Object.assign(record, failure.transfer, { orthancJob: undefined });
  record.error = failure.reason;
  record.heartbeatAt = undefined;
  if (failure.permanent || record.attempts >= policy.maxAttempts) {
    record.status = 'failed';
    writeBack(job, step, records, now);
    const endedJob = decideStep(job, step).kind === 'run';
    const after = failure.permanent ? '' : ` (after ${record.attempts} attempts)`;
    if (endedJob) failStep(job, step, `destination ${name}: ${failure.reason}${after}`, now);
    return { kind: 'failed', endedJob, record };
  }
  const delaySeconds = policy.delaySeconds(record.attempts);
  record.nextRetryAt = new Date(now.getTime() + delaySeconds * 1000).toISOString();
  record.status = 'pending';
  const stuck = isStuck(record, now, policy.stuckAfterMs);
  const becameStuck = stuck && !record.stuckAt;
  if (stuck) {
    record.status = 'stuck';
    record.stuckAt ??= now.toISOString();
  }
  writeBack(job, step, records, now);
  return { kind: 'retry', attempt: record.attempts + 1, delaySeconds, becameStuck, record };
}

/** Counts of the destinations of unfinished jobs, for the status report. */
export interface ForwardingCounts {
  pending: number;
  sending: number;
  stuck: number;
  /** Per destination, those not yet sent. */
  byDestination: Record<string, { pending: number; sending: number; stuck: number }>;
  /** Jobs with a stuck destination (ids only), newest first, at most 20. */
  stuckJobs: string[];
}

export function countForwarding(jobs: readonly Job[], now: Date, stuckAfterMs: number): ForwardingCounts {
  const counts: ForwardingCounts = { pending: 0, sending: 0, stuck: 0, byDestination: {}, stuckJobs: [] };
  for (const job of jobs) {
    if (job.status !== 'running' && job.status !== 'queued') continue;
    let stuckHere = false;
    for (const [name, stored] of Object.entries(destinationsOf(job))) {
      const { status } = destinationView(stored, now, stuckAfterMs);
      if (status !== 'pending' && status !== 'sending' && status !== 'stuck') continue;
      counts[status] += 1;
      (counts.byDestination[name] ??= { pending: 0, sending: 0, stuck: 0 })[status] += 1;
      stuckHere ||= status === 'stuck';
    }
    if (stuckHere && counts.stuckJobs.length < 20) counts.stuckJobs.push(job.id);
  }
  return counts;
}
