/**
 * The forward step (shared/pipeline/steps/forward.ts) run through the step runner against the in-memory
 * job store and queues, with a clock the test moves: `deliver` plays the messages on `step-forward`
 * that are visible by then, as the host would, so a test sees the fan-out, each destination's
 * attempts and retries, and how the job ends. For unit tests only.
 */
import { jobIdFor, newJob, type Job, type RuleSnapshot } from '../../shared/pipeline/job';
import { QUEUES, type StepMessage } from '../../shared/pipeline/messages';
import { runStep, type FanOutStep, type RunnerDeps } from '../../shared/pipeline/runner';
import { forwardStep, type ForwardDeps } from '../../shared/pipeline/steps/forward';
import type { PipelineStep } from '../../shared/vocabulary';
import { createMemoryJobStore, type MemoryJobStore } from './memory-storage';
import { createMemoryQueues, type MemoryQueues } from './memory-queues';

export const FORWARD_STUDY = '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';

export interface ForwardHarness {
  jobs: MemoryJobStore;
  queues: MemoryQueues;
  deps: RunnerDeps;
  step: FanOutStep;
  job: Job;
  ended: Job[];
  /** Messages handed on through the output binding (delivered at once), in order. */
  handedOn: Array<{ queue: string; message: unknown }>;
  logs: string[];
  clock: { at: number; advance(ms: number): void };
  stored(): Promise<Job>;
  /** Runs one message through the runner as the forward function does. */
  run(message: StepMessage): Promise<string>;
  /** Plays every forward message visible now (and those they send at once); returns the outcomes. */
  deliver(): Promise<string[]>;
  /** Moves the clock to the next forward message's visibility and plays what is visible then. */
  deliverNext(): Promise<string[]>;
  /** Forward messages not yet played. */
  waiting(): Array<{ message: StepMessage; visibleAt: number }>;
}

export async function forwardHarness(options: {
  destinations: string[];
  steps?: PipelineStep[];
  /** A publish step after forward (as a pipeline with files has), to see the hand-on. */
  thenPublish?: boolean;
  forward: Partial<ForwardDeps> & Pick<ForwardDeps, 'orthanc'>;
}): Promise<ForwardHarness> {
  const clock = {
    at: Date.parse('2026-03-02T10:00:00.000Z'),
    advance(ms: number) {
      clock.at += ms;
    },
  };
  const now = () => new Date(clock.at);
  const jobs = createMemoryJobStore({ now });
  const queues = createMemoryQueues({ now });
  const rule: RuleSnapshot = {
    id: 'to-peers',
    checkOn: 'Study',
    steps: options.steps ?? ['forward'],
    destinations: options.destinations,
  };
  const input = {
    rule,
    level: 'Study' as const,
    resourceId: FORWARD_STUDY,
    lastUpdate: '20260302T095500',
    source: 'webhook' as const,
    forced: false,
  };
  const created = newJob(input, jobIdFor(input), now());
  // Forward first (the steps before it are not under test).
  created.currentStep = 'forward';
  for (const s of created.steps) if (s.name !== 'forward' && s.name !== 'publish') s.status = 'succeeded';
  if (options.thenPublish) created.steps.push({ name: 'publish', status: 'pending', attempts: 0 });
  const { job } = await jobs.create(created);
  const ended: Job[] = [];
  const logs: string[] = [];
  const handedOn: ForwardHarness['handedOn'] = [];
  const deps: RunnerDeps = {
    jobs,
    queues,
    now,
    log: {
      info: (m) => logs.push(`info ${m}`),
      warn: (m) => logs.push(`warn ${m}`),
      error: (m) => logs.push(`error ${m}`),
    },
    handOn: (queue, message) => void handedOn.push({ queue, message }),
    onJobEnded: async (j) => void ended.push(j),
  };
  const step = forwardStep({
    modalities: async () => ({}),
    concurrency: 2,
    pollSeconds: 1,
    maxAttempts: 5,
    stuckAfterMs: 60_000,
    ...options.forward,
  });
  const forwardQueue = QUEUES.step('forward');
  let playedSent = 0;
  let playedHanded = 0;
  const pending: Array<{ message: StepMessage; visibleAt: number }> = [];
  const collect = () => {
    for (; playedSent < queues.sent.length; playedSent += 1) {
      const m = queues.sent[playedSent];
      if (m.queue === forwardQueue) pending.push({ message: m.message as StepMessage, visibleAt: m.visibleAt });
    }
    for (; playedHanded < handedOn.length; playedHanded += 1) {
      const m = handedOn[playedHanded];
      if (m.queue === forwardQueue) pending.push({ message: m.message as StepMessage, visibleAt: clock.at });
    }
  };
  const run = (message: StepMessage) => runStep(deps, 'forward', step, message);
  const harness: ForwardHarness = {
    jobs,
    queues,
    deps,
    step,
    job,
    ended,
    handedOn,
    logs,
    clock,
    stored: async () => (await jobs.get(job.id))!,
    run,
    async deliver() {
      const outcomes: string[] = [];
      for (;;) {
        collect();
        const visible = pending.filter((p) => p.visibleAt <= clock.at);
        if (visible.length === 0) return outcomes;
        for (const p of visible) pending.splice(pending.indexOf(p), 1);
        // Visible together: run at once, as several host workers would.
        outcomes.push(...(await Promise.all(visible.map((p) => run(p.message)))));
      }
    },
    async deliverNext() {
      collect();
      if (pending.length === 0) return [];
      clock.at = Math.max(clock.at, Math.min(...pending.map((p) => p.visibleAt)));
      return harness.deliver();
    },
    waiting() {
      collect();
      return [...pending];
    },
  };
  return harness;
}
