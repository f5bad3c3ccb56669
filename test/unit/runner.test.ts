/**
 * The step runner (shared/pipeline/runner.ts) against the in-memory job store and queues with a clock the
 * test moves: the cases the SIGKILL runs cover end to end (takeover after a crash, re-sending a lost
 * follow-up, a busy step, duplicate messages, permanent and transient failures, poison), each alone;
 * and what the runner records on the way (progress, heartbeats, skipped steps, telemetry, redaction).
 */
import assert from 'node:assert/strict';
import { after, beforeEach, describe, it, mock } from 'node:test';
import { failJob, finishStep, jobIdFor, newJob, startStep, stepRecord, type Job } from '../../shared/pipeline/job';
import {
  STALE_HEARTBEAT_MS,
  failPoisonedStep,
  runStep,
  type RunnerDeps,
  type StepHandler,
} from '../../shared/pipeline/runner';
import type { StepTelemetry } from '../../shared/telemetry';
import { PermanentError, type PipelineStep } from '../../shared/vocabulary';
import { createMemoryJobStore, type MemoryJobStore } from '../support/memory-storage';
import { createMemoryQueues, type MemoryQueues } from '../support/memory-queues';

// The runner's private bounds (shared/pipeline/runner.ts), which these tests pin down.
const RESEND_AFTER_MS = 30_000;
const BUSY_RECHECK_SECONDS = 15;
const MAX_STARTS_AFTER_CRASHES = 10;

const STUDY = '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';
const started = Date.now();
after(() => console.log(`runner unit tests: ${Date.now() - started} ms`));

interface Harness {
  deps: RunnerDeps;
  jobs: MemoryJobStore;
  queues: MemoryQueues;
  ended: Job[];
  logs: string[];
  job: Job;
  clock: { at: number; advance(ms: number): void };
}

let h: Harness;

async function harness(): Promise<Harness> {
  const clock = {
    at: Date.parse('2026-03-02T10:00:00.000Z'),
    advance(ms: number) {
      clock.at += ms;
    },
  };
  const now = () => new Date(clock.at);
  const jobs = createMemoryJobStore({ now });
  const queues = createMemoryQueues({ now });
  const ended: Job[] = [];
  const logs: string[] = [];
  const input = {
    rule: { id: 'to-zip', checkOn: 'Study' as const, steps: ['download', 'zip'] as PipelineStep[], destinations: [] },
    level: 'Study' as const,
    resourceId: STUDY,
    lastUpdate: '20260302T095500',
    source: 'webhook' as const,
    forced: false,
  };
  const { job } = await jobs.create(newJob(input, jobIdFor(input), now()));
  const deps: RunnerDeps = {
    jobs,
    queues,
    now,
    log: {
      info: (m) => logs.push(`info ${m}`),
      warn: (m) => logs.push(`warn ${m}`),
      error: (m) => logs.push(`error ${m}`),
    },
    onJobEnded: async (j) => void ended.push(j),
  };
  return { deps, jobs, queues, ended, logs, job, clock };
}

const message = (step: PipelineStep) => ({ jobId: h.job.id, step });
const stored = async () => (await h.jobs.get(h.job.id))!;
const succeeds =
  (instances = 3): StepHandler =>
  async () => ({ instances, bytes: 1000 });
const mustNotRun: StepHandler = async () => assert.fail('the handler must not run');
const orthancDown: StepHandler = async () => {
  throw new Error('Orthanc did not answer');
};

/** What a host that died mid-step leaves in the ledger: the step running, its last heartbeat `agoMs` old. */
async function crashedWhileRunning(step: PipelineStep, agoMs: number): Promise<void> {
  await h.jobs.update(h.job.id, (j) => startStep(j, step, new Date(h.clock.at - agoMs)));
}

beforeEach(async () => {
  h = await harness();
});

describe('runStep on a fresh job', () => {
  it('runs the step once, records it, and only then hands on the next step', async () => {
    let seen: Job | undefined;
    const outcome = await runStep(
      h.deps,
      'download',
      async ({ job }) => {
        seen = job;
        assert.deepEqual(h.queues.sent, [], 'nothing is sent before the step is recorded');
        return { instances: 3, bytes: 1000 };
      },
      message('download'),
    );
    assert.equal(outcome, 'done');
    assert.equal(seen?.status, 'running');
    assert.equal(
      stepRecord(seen, 'download').heartbeatAt,
      new Date(h.clock.at).toISOString(),
      'the heartbeat starts with the step',
    );
    const job = await stored();
    assert.deepEqual({ status: job.status, currentStep: job.currentStep }, { status: 'queued', currentStep: 'zip' });
    assert.deepEqual(pick(stepRecord(job, 'download'), ['status', 'attempts', 'instances', 'bytes']), {
      status: 'succeeded',
      attempts: 1,
      instances: 3,
      bytes: 1000,
    });
    assert.deepEqual(
      h.queues.sent.map(({ queue, message: m, delaySeconds }) => ({ queue, m, delaySeconds })),
      [{ queue: 'step-zip', m: message('zip'), delaySeconds: 0 }],
    );
    assert.deepEqual(h.ended, []);
  });

  it('hands on through the output binding when there is one, and ends the job after its last step', async () => {
    const handed: Array<[string, unknown]> = [];
    const deps: RunnerDeps = { ...h.deps, handOn: (queue, m) => void handed.push([queue, m]) };
    assert.equal(await runStep(deps, 'download', succeeds(), message('download')), 'done');
    assert.equal(await runStep(deps, 'zip', succeeds(), message('zip')), 'done');
    assert.equal(await runStep(deps, 'publish', succeeds(), message('publish')), 'done');
    assert.deepEqual(handed, [
      ['step-zip', message('zip')],
      ['step-publish', message('publish')],
    ]);
    assert.deepEqual(h.queues.sent, []);
    assert.equal((await stored()).status, 'succeeded');
    assert.deepEqual(
      h.ended.map((j) => j.status),
      ['succeeded'],
      'onJobEnded once, with the ended job',
    );
  });

  it('drops a message for a job the ledger does not know, ignores a stale one, and refuses one on the wrong queue', async () => {
    assert.equal(
      await runStep(h.deps, 'download', mustNotRun, { jobId: 'f'.repeat(32), step: 'download' }),
      'unknown-job',
    );
    assert.equal(await runStep(h.deps, 'zip', mustNotRun, message('zip')), 'ignored', 'the job is not at zip yet');
    await assert.rejects(
      runStep(h.deps, 'zip', mustNotRun, message('download')),
      /Message for step 'download' arrived on queue 'step-zip'/,
    );
    await assert.rejects(
      runStep(h.deps, 'download', mustNotRun, { jobId: h.job.id }),
      /Malformed message on queue 'step-download'/,
    );
    assert.deepEqual(h.queues.sent, []);
  });
});

describe('runStep taking over a step whose host died', () => {
  it('records the crash on the step and re-sends the message; the re-sent message runs it', async () => {
    await crashedWhileRunning('download', STALE_HEARTBEAT_MS + 1);
    assert.equal(await runStep(h.deps, 'download', mustNotRun, message('download')), 'taken-over');
    const job = await stored();
    assert.deepEqual(pick(stepRecord(job, 'download'), ['status', 'attempts', 'error']), {
      status: 'failed',
      attempts: 1,
      error: 'the host stopped while this step ran (attempt 1)',
    });
    assert.equal(job.status, 'running', 'the job stays open');
    assert.deepEqual(
      h.queues.sent.map((s) => [s.queue, s.message, s.delaySeconds]),
      [['step-download', message('download'), 0]],
    );

    assert.equal(await runStep(h.deps, 'download', succeeds(), h.queues.sent[0].message), 'done');
    assert.deepEqual(pick(stepRecord(await stored(), 'download'), ['status', 'attempts']), {
      status: 'succeeded',
      attempts: 2,
    });
  });

  it('honours a shorter stale threshold (AUTOMATION_STALE_HEARTBEAT_SECONDS)', async () => {
    await crashedWhileRunning('download', 5_000);
    assert.equal(
      await runStep(h.deps, 'download', mustNotRun, message('download')),
      'busy',
      'five seconds is fresh by default',
    );
    assert.equal(
      await runStep({ ...h.deps, staleHeartbeatMs: 4_000 }, 'download', mustNotRun, message('download')),
      'taken-over',
    );
  });

  it(`fails the job once the host died ${MAX_STARTS_AFTER_CRASHES} times running the step`, async () => {
    for (let start = 1; start <= MAX_STARTS_AFTER_CRASHES; start += 1) {
      await crashedWhileRunning('download', STALE_HEARTBEAT_MS + 1);
      const outcome = await runStep(h.deps, 'download', mustNotRun, message('download'));
      assert.equal(outcome, start < MAX_STARTS_AFTER_CRASHES ? 'taken-over' : 'failed', `start ${start}`);
      h.clock.advance(60_000);
    }
    const job = await stored();
    assert.equal(job.status, 'failed');
    assert.equal(job.error, `download: the host stopped ${MAX_STARTS_AFTER_CRASHES} times while this step ran`);
    assert.equal(h.queues.on('step-download').length, MAX_STARTS_AFTER_CRASHES - 1, 'no message after the last crash');
    assert.deepEqual(
      h.ended.map((j) => j.status),
      ['failed'],
    );
  });
});

describe('runStep re-sending a follow-up that never started', () => {
  /** The download step recorded as done at the current time, but its step-zip message lost. */
  async function downloadDoneFollowUpLost(): Promise<void> {
    await h.jobs.update(h.job.id, (j) => {
      startStep(j, 'download', new Date(h.clock.at - 5_000));
      finishStep(j, 'download', { instances: 3 }, new Date(h.clock.at));
    });
  }

  it(`rechecks while the follow-up may be on its way, then re-sends it once ${RESEND_AFTER_MS / 1000} s have passed`, async () => {
    await downloadDoneFollowUpLost();
    h.clock.advance(10_000);
    assert.equal(await runStep(h.deps, 'download', mustNotRun, message('download')), 'recheck');
    assert.deepEqual(
      h.queues.sent.map((s) => [s.queue, s.message, s.delaySeconds]),
      [['step-download', message('download'), (RESEND_AFTER_MS - 10_000) / 1000]],
      'the redelivery comes back when the follow-up is overdue',
    );

    h.clock.advance(RESEND_AFTER_MS - 10_000);
    assert.equal(await runStep(h.deps, 'download', mustNotRun, h.queues.sent[0].message), 'resent-next');
    assert.deepEqual(
      h.queues.on('step-zip').map((s) => [s.message, s.delaySeconds]),
      [[message('zip'), 0]],
    );
    const job = await stored();
    assert.deepEqual(
      { currentStep: job.currentStep, download: stepRecord(job, 'download').attempts },
      { currentStep: 'zip', download: 1 },
      'the step did not run again',
    );
  });

  it('re-sends through the output binding when there is one', async () => {
    await downloadDoneFollowUpLost();
    h.clock.advance(RESEND_AFTER_MS);
    const handed: Array<[string, unknown]> = [];
    assert.equal(
      await runStep(
        { ...h.deps, handOn: (q, m) => void handed.push([q, m]) },
        'download',
        mustNotRun,
        message('download'),
      ),
      'resent-next',
    );
    assert.deepEqual(handed, [['step-zip', message('zip')]]);
  });

  it('ignores the old message once the follow-up has started', async () => {
    await downloadDoneFollowUpLost();
    await h.jobs.update(h.job.id, (j) => startStep(j, 'zip', new Date(h.clock.at)));
    h.clock.advance(RESEND_AFTER_MS);
    assert.equal(await runStep(h.deps, 'download', mustNotRun, message('download')), 'ignored');
    assert.deepEqual(h.queues.sent, []);
  });
});

describe('runStep with the step already running', () => {
  it('re-queues the message with a delay while the heartbeat is fresh, and changes nothing', async () => {
    await crashedWhileRunning('download', 1_000);
    const before = await stored();
    assert.equal(await runStep(h.deps, 'download', mustNotRun, message('download')), 'busy');
    assert.deepEqual(
      h.queues.sent.map((s) => [s.queue, s.message, s.delaySeconds]),
      [['step-download', message('download'), BUSY_RECHECK_SECONDS]],
    );
    assert.deepEqual(await stored(), before);
  });

  it('runs the step once when duplicate messages race to start it; the loser is re-queued', async () => {
    let runs = 0;
    const handler: StepHandler = async () => {
      runs += 1;
      return { instances: 3 };
    };
    // Both read the job before either starts the step: the loser's start meets an ETag conflict, and its
    // retry sees the step running.
    const outcomes = await Promise.all([
      runStep(h.deps, 'download', handler, message('download')),
      runStep(h.deps, 'download', handler, message('download')),
    ]);
    assert.deepEqual(outcomes.sort(), ['busy', 'done']);
    assert.equal(runs, 1);
    assert.ok(h.jobs.conflicts >= 1, `the race went through the ETag retry (${h.jobs.conflicts} conflicts)`);
    assert.equal(stepRecord(await stored(), 'download').attempts, 1);
    assert.deepEqual(
      h.queues.on('step-download').map((s) => s.delaySeconds),
      [BUSY_RECHECK_SECONDS],
    );
    assert.equal(h.queues.on('step-zip').length, 1);
  });
});

describe('runStep failures', () => {
  it('fails the job at once on a permanent error, with its reason', async () => {
    const outcome = await runStep(
      h.deps,
      'download',
      async () => {
        throw new PermanentError('the rule names no destination');
      },
      message('download'),
    );
    assert.equal(outcome, 'failed');
    const job = await stored();
    assert.deepEqual(
      { status: job.status, error: job.error },
      { status: 'failed', error: 'download: the rule names no destination' },
    );
    assert.deepEqual(pick(stepRecord(job, 'download'), ['status', 'attempts', 'error']), {
      status: 'failed',
      attempts: 1,
      error: 'the rule names no destination',
    });
    assert.deepEqual(
      h.ended.map((j) => j.status),
      ['failed'],
    );
    assert.deepEqual(h.queues.sent, []);
  });

  it('records a transient error and rethrows it, so the host retries; a retry that succeeds carries on', async () => {
    await assert.rejects(
      runStep(h.deps, 'download', orthancDown, message('download')),
      /^Error: Orthanc did not answer$/,
    );
    let job = await stored();
    assert.equal(job.status, 'running', 'the job stays open');
    assert.equal(job.error, 'download: Orthanc did not answer');
    assert.deepEqual(pick(stepRecord(job, 'download'), ['status', 'attempts', 'error']), {
      status: 'failed',
      attempts: 1,
      error: 'Orthanc did not answer',
    });
    assert.deepEqual(h.ended, []);
    assert.deepEqual(h.queues.sent, []);

    assert.equal(await runStep(h.deps, 'download', succeeds(), message('download')), 'done');
    job = await stored();
    assert.deepEqual(pick(stepRecord(job, 'download'), ['status', 'attempts', 'error']), {
      status: 'succeeded',
      attempts: 2,
      error: undefined,
    });
  });

  it('puts a waiting step back on its queue with the delay it asked for', async () => {
    const outcome = await runStep(
      h.deps,
      'download',
      async () => ({ wait: { delaySeconds: 7, detail: { orthancJob: 'abc' }, progress: { done: 1, total: 4 } } }),
      message('download'),
    );
    assert.equal(outcome, 'waiting');
    const record = stepRecord(await stored(), 'download');
    assert.deepEqual(pick(record, ['status', 'detail', 'progress']), {
      status: 'waiting',
      detail: { orthancJob: 'abc' },
      progress: { done: 1, total: 4 },
    });
    assert.deepEqual(
      h.queues.sent.map((s) => [s.queue, s.delaySeconds]),
      [['step-download', 7]],
    );
  });
});

describe('failPoisonedStep', () => {
  it('fails the job with the last error its step recorded, once', async () => {
    await assert.rejects(runStep(h.deps, 'download', orthancDown, message('download')));
    assert.equal(await failPoisonedStep(h.deps, 'step-download', message('download')), 'failed');
    const job = await stored();
    assert.deepEqual(
      { status: job.status, error: job.error },
      { status: 'failed', error: 'download: Orthanc did not answer (moved to step-download-poison)' },
    );
    assert.deepEqual(
      h.ended.map((j) => j.error),
      [job.error],
    );
    assert.equal(
      await failPoisonedStep(h.deps, 'step-download', message('download')),
      'nothing-to-do',
      'a second poisoned copy changes nothing',
    );
    assert.equal(h.ended.length, 1);
  });

  it('says the step gave up when it recorded no error', async () => {
    assert.equal(await failPoisonedStep(h.deps, 'step-download', message('download')), 'failed');
    assert.equal((await stored()).error, 'download: gave up after repeated failures (moved to step-download-poison)');
  });

  it('notes a malformed message on the job it names, without failing the job; one naming no job is only logged', async () => {
    assert.equal(
      await failPoisonedStep(h.deps, 'step-download', { jobId: h.job.id, step: 'download', extra: true }),
      'marked',
    );
    const job = await stored();
    assert.equal(job.status, 'queued', "the job's own messages decide its state");
    assert.equal(job.warnings.length, 1);
    assert.match(job.warnings[0], /^a malformed message for this job was moved to step-download-poison \(.+\)$/);
    assert.deepEqual(h.ended, []);

    assert.equal(await failPoisonedStep(h.deps, 'step-download', { nonsense: 1 }), 'unlinked');
    assert.equal(await failPoisonedStep(h.deps, 'step-download', 'not json'), 'unlinked');
    assert.equal(
      await failPoisonedStep(h.deps, 'step-download', { jobId: 'e'.repeat(32), step: 'download' }),
      'nothing-to-do',
      'a well-formed message for an unknown job',
    );
    assert.ok(h.logs.some((line) => line.startsWith('error Undecodable or malformed message moved to')));
  });
});

describe('runStep between reading the job and starting the step', () => {
  it('ignores the message when the job changed in the meantime (here: failed by someone else)', async () => {
    const deps: RunnerDeps = {
      ...h.deps,
      jobs: {
        // Reads the job as it was, then another writer fails it before this message starts the step.
        get: async (id) => {
          const read = await h.jobs.get(id);
          await h.jobs.update(id, (j) => failJob(j, 'download: cancelled'));
          return read;
        },
        update: (id, change) => h.jobs.update(id, change),
      },
    };
    assert.equal(await runStep(deps, 'download', mustNotRun, message('download')), 'ignored');
    assert.equal(stepRecord(await stored(), 'download').attempts, 0);
    assert.deepEqual(h.queues.sent, []);
  });

  it('runs a waiting step again when its message comes back', async () => {
    const waits: StepHandler = async () => ({ wait: { delaySeconds: 5, detail: { orthancJob: 'abc' } } });
    assert.equal(await runStep(h.deps, 'download', waits, message('download')), 'waiting');
    h.clock.advance(5_000);
    assert.equal(await runStep(h.deps, 'download', succeeds(), h.queues.sent[0].message), 'done');
    assert.deepEqual(pick(stepRecord(await stored(), 'download'), ['status', 'attempts']), {
      status: 'succeeded',
      attempts: 2,
    });
  });
});

describe('runStep recording what a step reports', () => {
  it('records progress, at most every two seconds until the last, each report a heartbeat', async () => {
    const seen: Array<[unknown, string | undefined]> = [];
    const look = async () => {
      const r = stepRecord(await stored(), 'download');
      seen.push([r.progress, r.heartbeatAt]);
    };
    const at = (ms: number) => new Date(Date.parse('2026-03-02T10:00:00.000Z') + ms).toISOString();
    await runStep(
      h.deps,
      'download',
      async ({ progress }) => {
        h.clock.advance(100);
        await progress(1, 10);
        await look();
        h.clock.advance(500);
        await progress(2, 10); // too soon: not written
        await look();
        h.clock.advance(2_000);
        await progress(3, 10);
        await look();
        h.clock.advance(10);
        await progress(10, 10); // the last is always written
        await look();
        return { instances: 10 };
      },
      message('download'),
    );
    assert.deepEqual(seen, [
      [{ done: 1, total: 10 }, at(100)],
      [{ done: 1, total: 10 }, at(100)],
      [{ done: 3, total: 10 }, at(2_600)],
      [{ done: 10, total: 10 }, at(2_610)],
    ]);
    assert.equal(stepRecord(await stored(), 'download').progress, undefined, 'a finished step shows no progress');
  });

  it('beats the heartbeat on its own while the step reports nothing, and stops when it ends', async () => {
    mock.timers.enable({ apis: ['setInterval'] });
    try {
      let updates = 0;
      const deps: RunnerDeps = {
        ...h.deps,
        staleHeartbeatMs: 4_000, // beats every second
        jobs: {
          get: (id) => h.jobs.get(id),
          update: (id, change) => ((updates += 1), h.jobs.update(id, change)),
        },
      };
      const beats: Array<string | undefined> = [];
      await runStep(
        deps,
        'download',
        async () => {
          for (let second = 1; second <= 2; second += 1) {
            h.clock.advance(1_000);
            const before = updates;
            mock.timers.tick(1_000);
            while (updates === before) await new Promise((resolve) => setImmediate(resolve));
            await settle();
            beats.push(stepRecord(await stored(), 'download').heartbeatAt);
          }
          return { instances: 1 };
        },
        message('download'),
      );
      assert.deepEqual(beats, [new Date(h.clock.at - 1_000).toISOString(), new Date(h.clock.at).toISOString()]);
      const after = updates;
      mock.timers.tick(10_000);
      await settle();
      assert.equal(updates, after, 'no heartbeat after the step ended');
    } finally {
      mock.timers.reset();
    }
  });

  it('ends the job when the step says the remaining steps have nothing to do', async () => {
    const outcome = await runStep(
      h.deps,
      'download',
      async () => ({ instances: 0, skipRest: true, warnings: ['every instance was excluded'] }),
      message('download'),
    );
    assert.equal(outcome, 'done');
    const job = await stored();
    assert.equal(job.status, 'succeeded');
    assert.equal(job.finishedAt, new Date(h.clock.at).toISOString());
    assert.deepEqual(
      job.steps.map((s) => [s.name, s.status]),
      [
        ['download', 'succeeded'],
        ['zip', 'skipped'],
        ['publish', 'skipped'],
      ],
    );
    assert.deepEqual(job.warnings, ['download: every instance was excluded']);
    assert.deepEqual(h.queues.sent, [], 'no follow-up');
    assert.deepEqual(
      h.ended.map((j) => j.status),
      ['succeeded'],
    );
    assert.ok(h.logs.includes(`info Job ${h.job.id} (to-zip) succeeded`));
  });

  it("passes the step's log lines and warnings through the job's path redaction", async () => {
    const deps: RunnerDeps = { ...h.deps, redaction: fakeRedaction() };
    await runStep(
      deps,
      'download',
      async ({ log }) => {
        log.info('wrote /data/to-zip/Doe^Jane/SE1');
        return { instances: 1, warnings: ['/data/to-zip/Doe^Jane/SE2 left out'] };
      },
      message('download'),
    );
    assert.ok(h.logs.includes('info wrote /data/to-zip/<output>/SE1'), h.logs.join('\n'));
    assert.deepEqual((await stored()).warnings, ['download: /data/to-zip/<output>/SE2 left out']);
  });

  it("redacts a failing step's error before it reaches the job, the log, telemetry or the host", async () => {
    const reported: StepTelemetry[] = [];
    const deps: RunnerDeps = {
      ...h.deps,
      redaction: fakeRedaction(),
      telemetry: { enabled: true, stepEnded: (t) => void reported.push(t), flush: async () => undefined },
    };
    const failing: StepHandler = async () => {
      throw new Error('no answer for Jane Doe at /data/to-zip/Doe^Jane');
    };
    await assert.rejects(runStep(deps, 'download', failing, message('download')), (error: Error) => {
      assert.equal(error.message, 'no answer for <patient> <patient> at /data/to-zip/<output>');
      return true;
    });
    const redacted = 'no answer for <patient> <patient> at /data/to-zip/<output>';
    assert.equal((await stored()).error, `download: ${redacted}`);
    assert.ok(h.logs.includes(`warn Job ${h.job.id} (to-zip) download attempt failed, will retry: ${redacted}`));
    assert.deepEqual(
      reported.map((t) => [t.outcome, t.error?.message]),
      [['retrying', redacted]],
    );
    assert.ok(!JSON.stringify([h.logs, await stored()]).includes('Jane'), 'no patient name anywhere');
  });

  it("reports each attempt's outcome to telemetry; a broken exporter costs a log line, nothing else", async () => {
    const reported: StepTelemetry[] = [];
    const deps: RunnerDeps = {
      ...h.deps,
      telemetry: { enabled: true, stepEnded: (t) => void reported.push(t), flush: async () => undefined },
    };
    await runStep(deps, 'download', async () => ({ wait: { delaySeconds: 1, detail: {} } }), message('download'));
    await runStep(deps, 'download', succeeds(3), message('download'));
    await runStep(
      deps,
      'zip',
      async () => {
        throw new PermanentError('zip refused');
      },
      message('zip'),
    );
    assert.deepEqual(
      reported.map(({ jobId, ruleId, step, outcome, instances, bytes }) => ({
        jobId,
        ruleId,
        step,
        outcome,
        instances,
        bytes,
      })),
      [
        {
          jobId: h.job.id,
          ruleId: 'to-zip',
          step: 'download',
          outcome: 'waiting',
          instances: undefined,
          bytes: undefined,
        },
        { jobId: h.job.id, ruleId: 'to-zip', step: 'download', outcome: 'succeeded', instances: 3, bytes: 1000 },
        { jobId: h.job.id, ruleId: 'to-zip', step: 'zip', outcome: 'failed', instances: undefined, bytes: undefined },
      ],
    );
    assert.ok(reported.every((t) => t.durationMs >= 0));

    h = await harness();
    const broken: RunnerDeps = {
      ...h.deps,
      telemetry: {
        enabled: true,
        stepEnded: () => {
          throw new Error('exporter down');
        },
        flush: async () => undefined,
      },
    };
    assert.equal(await runStep(broken, 'download', succeeds(), message('download')), 'done');
    assert.ok(
      h.logs.includes(`warn Telemetry for job ${h.job.id} download not sent: exporter down`),
      h.logs.join('\n'),
    );
  });
});

describe('failPoisonedStep telemetry', () => {
  it('reports the poisoned step as failed, with the reason the job records', async () => {
    const reported: StepTelemetry[] = [];
    const deps: RunnerDeps = {
      ...h.deps,
      telemetry: { enabled: true, stepEnded: (t) => void reported.push(t), flush: async () => undefined },
    };
    assert.equal(await failPoisonedStep(deps, 'step-download', message('download')), 'failed');
    assert.deepEqual(
      reported.map((t) => [t.step, t.outcome, t.durationMs, t.error?.message]),
      [['download', 'failed', 0, (await stored()).error]],
    );
  });
});

/** Lets pending storage round trips (setImmediate turns) finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** As AUTOMATION_LOG_PHI=false would rewrite: output names in paths, and the patient's name with the job. */
function fakeRedaction(): NonNullable<RunnerDeps['redaction']> {
  const paths = (text: string) => text.replace(/\/data\/to-zip\/[^/\s]+/g, '/data/to-zip/<output>');
  return {
    enabled: true,
    paths: () => paths,
    forJob: async () => (text) => paths(text).replace(/\b(Jane|Doe)\b/g, '<patient>'),
    anywhere: paths,
  };
}

function pick<T extends object, K extends keyof T>(value: T, keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, value[k]])) as Pick<T, K>;
}
