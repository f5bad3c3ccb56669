/**
 * The alerts the app raises, built from what is safe to send: job and rule ids, the step, the
 * queue, a destination's name, a folder's role and free space, and reasons that were redacted when
 * they were recorded (shared/pipeline/redact.ts). Never a patient attribute, a study description
 * or a path below the storage root.
 */
import { statfs } from 'node:fs/promises';
import type { Job } from '../pipeline/job';
import type { EchoState } from '../orthanc/destinations';
import type { Redact } from '../pipeline/redact';
import type { Alert } from './format';
import type { ResultsView } from '../pipeline/roundTrip';

type NewAlert = Omit<Alert, 'at'>;

/**
 * A failed job. The subject is the rule and step, so a storm (Orthanc down, fifty jobs failing at
 * download) is one alert per interval, not fifty; every failure stays on the dashboard.
 * `poisonQueue` is set when the job failed because its message exhausted its attempts.
 */
export function jobFailedAlert(job: Job, options: { poisonQueue?: string; redact?: Redact } = {}): NewAlert {
  // The reason was redacted when it was recorded; the job's output name is taken out once more.
  const redact = options.redact ?? ((text: string) => text);
  const step = job.steps.find((s) => s.status === 'failed')?.name ?? job.currentStep;
  const fields: Record<string, string> = { jobId: job.id, ruleId: job.ruleId, step, resourceId: job.resourceId };
  if (options.poisonQueue) fields.queue = `${options.poisonQueue}-poison`;
  return {
    kind: options.poisonQueue ? 'message-poisoned' : 'job-failed',
    subject: `${job.ruleId}/${step}`,
    title: options.poisonQueue
      ? `Job ${job.id} (rule ${job.ruleId}) failed: its ${step} message was moved to ${options.poisonQueue}-poison`
      : `Job ${job.id} (rule ${job.ruleId}) failed at ${step}`,
    text: redact(job.error ?? 'no reason recorded'),
    fields,
  };
}

/**
 * Results an AI node should have sent back (ExpectResults) did not come in time. One alert per job
 * (the subject is its id; the check records that it went), naming only ids, the AE title and times.
 */
export function resultsOverdueAlert(job: Job, view: Pick<ResultsView, 'from' | 'expectedBy'>): NewAlert {
  return {
    kind: 'results-overdue',
    subject: job.id,
    title: `Results overdue for job ${job.id} (rule ${job.ruleId}): nothing back from ${view.from}`,
    text: `Results from ${view.from} were expected by ${view.expectedBy ?? 'unknown'} (ExpectResults.Within after the forward ended) and have not arrived. A result arriving later is still linked to the job.`,
    fields: {
      jobId: job.id,
      ruleId: job.ruleId,
      from: view.from,
      expectedBy: view.expectedBy ?? '',
      resourceId: job.resourceId,
    },
  };
}

/** A message that could not be read (and so names no job) was moved to a poison queue. */
export function malformedMessageAlert(queue: string): NewAlert {
  return {
    kind: 'message-poisoned',
    subject: queue,
    title: `A malformed message was moved to ${queue}-poison`,
    text: `A message on ${queue} could not be read as a step message; no job could be marked. The message stays on ${queue}-poison for inspection.`,
    fields: { queue: `${queue}-poison` },
  };
}

/** A destination that did not answer C-ECHO (or could not be put into Orthanc). */
export function destinationDownAlert(
  name: string,
  state: Pick<EchoState, 'aet' | 'host' | 'port' | 'reason' | 'configured'>,
): NewAlert {
  return {
    kind: 'destination-down',
    subject: name,
    title: `Destination ${name} (${state.aet}@${state.host}:${state.port}) is down`,
    text: state.configured
      ? `C-ECHO failed${state.reason ? `: ${state.reason}` : ''}. Forwards to it wait and are retried.`
      : `It could not be put into Orthanc${state.reason ? `: ${state.reason}` : ''}.`,
    fields: { destination: name, aet: state.aet },
  };
}

export interface DiskFree {
  freeBytes: number;
  totalBytes: number;
  freePercent: number;
}

/** Free space of the filesystem holding `folder`, as an unprivileged process may use it. */
export async function diskFree(folder: string): Promise<DiskFree> {
  const s = await statfs(folder);
  const totalBytes = s.blocks * s.bsize;
  const freeBytes = s.bavail * s.bsize;
  return { freeBytes, totalBytes, freePercent: totalBytes > 0 ? (freeBytes / totalBytes) * 100 : 100 };
}

/** A folder the pipeline writes into (`storage` root, `staging`) below the free-space threshold. */
export function diskNearlyFullAlert(role: string, free: DiskFree, thresholdPercent: number): NewAlert {
  const percent = Math.round(free.freePercent * 10) / 10;
  return {
    kind: 'disk-nearly-full',
    subject: role,
    title: `Disk nearly full: the ${role} folder has ${percent}% free`,
    text: `${(free.freeBytes / 2 ** 30).toFixed(1)} GiB of ${(free.totalBytes / 2 ** 30).toFixed(1)} GiB free, below AUTOMATION_ALERT_DISK_FREE_PERCENT=${thresholdPercent}%. Steps fail with ENOSPC when it runs out.`,
    fields: { folder: role, freePercent: percent, freeBytes: free.freeBytes, thresholdPercent },
  };
}

/**
 * A destination of a forward still not sent after AUTOMATION_DESTINATION_STUCK_MINUTES: a destination
 * down, as the C-ECHO alert says, seen from a job (one alert per destination and interval).
 */
export function destinationStuckAlert(
  job: Pick<Job, 'id' | 'ruleId'>,
  name: string,
  state: { aet?: string; host?: string; port?: number; attempts: number; waitedMinutes: number; reason?: string },
): NewAlert {
  const down = destinationDownAlert(name, {
    aet: state.aet ?? name,
    host: state.host ?? 'DICOMweb',
    port: state.port ?? 0,
    reason: state.reason,
    configured: true,
  });
  return {
    ...down,
    // Its own subject: the C-ECHO check's alert for the same destination does not hold this one back.
    subject: `${name} (stuck)`,
    title: `Destination ${name} is stuck: job ${job.id} (rule ${job.ruleId}) has waited ${state.waitedMinutes} min`,
    text: `Not sent after ${state.attempts} attempt(s)${state.reason ? `: ${state.reason}` : ''}. It is retried until it is sent or its attempts are used up (AUTOMATION_FORWARD_MAX_ATTEMPTS).`,
    fields: { ...down.fields, jobId: job.id, ruleId: job.ruleId, attempts: state.attempts },
  };
}
