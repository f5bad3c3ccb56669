/**
 * Telemetry to Azure Monitor (Application Insights) when APPLICATIONINSIGHTS_CONNECTION_STRING is
 * set, and nothing at all otherwise (the SDK is not even loaded). Each pipeline step becomes a
 * custom event `PipelineStep` with its outcome and duration (events are never sampled away, unlike
 * traces), custom metrics carry the instances, bytes and throughput of the step, and failures are
 * sent as exceptions; every item has the job id, rule id, step and outcome as custom dimensions, so
 * one job's story is one query away:
 * `union customEvents, customMetrics, exceptions | where customDimensions.jobId == "<id>"`.
 * No patient attribute is ever sent: jobs are named by their ids only, and a failure's error arrives
 * here already redacted by the runner (shared/pipeline/redact.ts; AUTOMATION_LOG_PHI=true lifts it).
 */
import type { TelemetryClient } from 'applicationinsights';

export interface StepTelemetry {
  jobId: string;
  ruleId: string;
  step: string;
  /** succeeded; failed (the job gave up); retrying (the host will try again); waiting (checks back later). */
  outcome: 'succeeded' | 'failed' | 'retrying' | 'waiting';
  durationMs: number;
  instances?: number;
  bytes?: number;
  error?: Error;
}

/** A job's end, for the QI figures as metrics (shared/operator/qi.ts jobTelemetryOf builds it). */
export interface JobTelemetry {
  jobId: string;
  ruleId: string;
  outcome: 'succeeded' | 'failed';
  /** The step the job ended in (for a failure: the step that failed). */
  step: string;
  /** Job created to finished. */
  turnaroundMs: number;
  /** Each destination the job forwards to, and whether it was delivered. */
  destinations: Record<string, boolean>;
  /** Job created to each delivered destination's send, where the job recorded it (else turnaroundMs). */
  destinationTurnaroundMs?: Record<string, number>;
}

export interface Telemetry {
  readonly enabled: boolean;
  stepEnded(step: StepTelemetry): void;
  /** Optional, so a test's telemetry need not have it. */
  jobEnded?(job: JobTelemetry): void;
  flush(): Promise<void>;
}

export const noTelemetry: Telemetry = {
  enabled: false,
  stepEnded: () => undefined,
  jobEnded: () => undefined,
  flush: async () => undefined,
};

export const STEP_EVENT = 'PipelineStep';

/** Exported so tests can check what would be sent without a network. */
export function stepItems(step: StepTelemetry) {
  const properties = { jobId: step.jobId, ruleId: step.ruleId, step: step.step, outcome: step.outcome };
  const seconds = step.durationMs / 1000;
  const metrics: Array<{ name: string; value: number }> = [
    { name: 'pipeline.step.duration_ms', value: step.durationMs },
  ];
  if (step.instances !== undefined) metrics.push({ name: 'pipeline.step.instances', value: step.instances });
  if (step.bytes !== undefined) metrics.push({ name: 'pipeline.step.bytes', value: step.bytes });
  if (step.bytes !== undefined && seconds > 0)
    metrics.push({ name: 'pipeline.step.throughput_mb_per_s', value: step.bytes / 1_000_000 / seconds });
  if (step.instances !== undefined && seconds > 0)
    metrics.push({ name: 'pipeline.step.instances_per_s', value: step.instances / seconds });
  return {
    event: {
      name: STEP_EVENT,
      properties,
      measurements: Object.fromEntries(metrics.map((m) => [m.name.replace('pipeline.step.', ''), m.value])),
    },
    metrics: metrics.map((m) => ({ ...m, properties })),
    exception: step.error && step.outcome !== 'succeeded' ? { exception: step.error, properties } : undefined,
  };
}

export const JOB_EVENT = 'PipelineJob';

/**
 * The QI figures as Application Insights items: per job its turnaround by rule and outcome, and per
 * destination its delivery and turnaround, so a workbook can chart what GET /api/qi shows.
 */
export function jobItems(job: JobTelemetry) {
  const properties = { jobId: job.jobId, ruleId: job.ruleId, step: job.step, outcome: job.outcome };
  return {
    event: { name: JOB_EVENT, properties, measurements: { turnaround_ms: job.turnaroundMs } },
    metrics: [
      { name: 'pipeline.job.turnaround_ms', value: job.turnaroundMs, properties },
      ...Object.entries(job.destinations).map(([destination, delivered]) => ({
        name: delivered ? 'pipeline.destination.turnaround_ms' : 'pipeline.destination.failed',
        value: delivered ? (job.destinationTurnaroundMs?.[destination] ?? job.turnaroundMs) : 1,
        properties: { ...properties, destination },
      })),
    ],
  };
}

/**
 * The Application Insights client, set up once per process. Console capture and live metrics are
 * off: logs already reach Azure Monitor through the Functions host, and live metrics would open a
 * second connection that few sites allow.
 */
export async function createTelemetry(connectionString: string | undefined): Promise<Telemetry> {
  if (!connectionString) return noTelemetry;
  // The CommonJS module itself (`default`): its `defaultClient` is set by start(), after import.
  const appInsights = (await import('applicationinsights')).default;
  appInsights
    .setup(connectionString)
    .setAutoCollectConsole(false)
    .setSendLiveMetrics(false)
    // The SDK's http instrumentation would wrap every Orthanc download stream and Azurite call of
    // the steps; the host already records invocations, and the steps report their own work.
    .setAutoCollectRequests(false)
    .setAutoCollectDependencies(false)
    .setAutoCollectPerformance(false, false)
    .start();
  const client: TelemetryClient = appInsights.defaultClient;
  return {
    enabled: true,
    stepEnded(step) {
      const items = stepItems(step);
      client.trackEvent(items.event);
      for (const metric of items.metrics) client.trackMetric(metric);
      if (items.exception) client.trackException(items.exception);
      // Metrics are otherwise exported once a minute; a step is rare enough to send at once.
      void client.flush();
    },
    jobEnded(job) {
      const items = jobItems(job);
      client.trackEvent(items.event);
      for (const metric of items.metrics) client.trackMetric(metric);
    },
    async flush() {
      await client.flush();
    },
  };
}
