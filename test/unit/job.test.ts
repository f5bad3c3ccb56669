import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addWarning,
  decideStep,
  failJob,
  failPoisoned,
  failStep,
  finishStep,
  heartbeat,
  jobIdFor,
  newJob,
  pipelineOf,
  recordAttemptFailure,
  recordHostStopped,
  recordProgress,
  resetForRetry,
  startStep,
  stepRecord,
  waitStep,
  type RuleSnapshot,
} from '../../shared/pipeline/job';
import { evaluateMessageSchema, orthancEventSchema, parseMessage } from '../../shared/pipeline/messages';

const rule: RuleSnapshot = { id: 'mri', checkOn: 'Study', steps: ['download'], destinations: [] };
const draft = {
  rule,
  level: 'Study' as const,
  resourceId: 'a',
  lastUpdate: '20240101T000000',
  source: 'webhook' as const,
  forced: false,
};

describe('job model', () => {
  it('derives the same id for the same rule, resource and LastUpdate', () => {
    assert.equal(jobIdFor(draft), jobIdFor({ ...draft }));
    assert.notEqual(jobIdFor(draft), jobIdFor({ ...draft, lastUpdate: '20240101T000001' }));
    assert.notEqual(jobIdFor(draft), jobIdFor({ ...draft, rule: { ...rule, id: 'other' } }));
  });

  it('gives forced runs a new id each time', () => {
    assert.notEqual(jobIdFor({ ...draft, forced: true }), jobIdFor({ ...draft, forced: true }));
  });

  it('appends publish to pipelines that write files, not to forward-only ones', () => {
    assert.deepEqual(pipelineOf({ steps: ['download', 'anonymise', 'zip', 'forward'] }), [
      'download',
      'anonymise',
      'zip',
      'forward',
      'publish',
    ]);
    assert.deepEqual(pipelineOf({ steps: ['forward'] }), ['forward']);
  });

  it('walks the steps and succeeds after the last', () => {
    const job = newJob(draft, 'j1');
    assert.deepEqual(decideStep(job, 'download'), { kind: 'run' });
    assert.equal(decideStep(job, 'publish').kind, 'ignore');
    startStep(job, 'download');
    assert.equal(finishStep(job, 'download', { instances: 3, bytes: 30, outputPath: '/x' }), 'publish');
    assert.equal(job.outputPath, '/x');
    assert.deepEqual(decideStep(job, 'download'), { kind: 'resend-next', next: 'publish' });
    startStep(job, 'publish');
    assert.equal(finishStep(job, 'publish', {}), undefined);
    assert.equal(job.status, 'succeeded');
    assert.equal(decideStep(job, 'publish').kind, 'ignore');
  });

  it('fails with the step reason and retries from the failed step', () => {
    const job = newJob(draft, 'j2');
    startStep(job, 'download');
    finishStep(job, 'download', {});
    startStep(job, 'publish');
    recordAttemptFailure(job, 'publish', 'disk full');
    failJob(job, 'publish: disk full');
    assert.equal(job.status, 'failed');
    assert.equal(job.error, 'publish: disk full');
    assert.equal(resetForRetry(job), 'publish');
    assert.equal(job.status, 'queued');
    assert.equal(job.steps[0].status, 'succeeded');
    assert.equal(job.steps[1].attempts, 0);
    assert.throws(() => resetForRetry(job), /only failed jobs/);
  });
});

describe('job transitions', () => {
  const t0 = new Date('2026-03-02T10:00:00.000Z');
  const later = (ms: number) => new Date(t0.getTime() + ms);
  const zipRule: RuleSnapshot = { ...rule, steps: ['download', 'zip'] };
  const fresh = () => newJob({ ...draft, rule: zipRule }, 'j3', t0);

  it('starts a step: a new attempt, its heartbeat starting with it, what an earlier attempt left cleared', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    recordProgress(job, 'download', 1, 4, later(1));
    recordAttemptFailure(job, 'download', 'timeout', later(2));
    startStep(job, 'download', later(3));
    const r = stepRecord(job, 'download');
    assert.deepEqual(
      {
        status: r.status,
        attempts: r.attempts,
        startedAt: r.startedAt,
        heartbeatAt: r.heartbeatAt,
        endedAt: r.endedAt,
        error: r.error,
        progress: r.progress,
      },
      {
        status: 'running',
        attempts: 2,
        startedAt: later(3).toISOString(),
        heartbeatAt: later(3).toISOString(),
        endedAt: undefined,
        error: undefined,
        progress: undefined,
      },
    );
    assert.deepEqual(
      { status: job.status, attempts: job.attempts, error: job.error },
      {
        status: 'running',
        attempts: 2,
        error: undefined,
      },
    );
  });

  it('beats the heartbeat of a running step only; progress is a heartbeat too', () => {
    const job = fresh();
    heartbeat(job, 'download', later(1));
    assert.equal(stepRecord(job, 'download').heartbeatAt, undefined, 'a pending step has no heartbeat');
    startStep(job, 'download', t0);
    heartbeat(job, 'download', later(5));
    assert.equal(stepRecord(job, 'download').heartbeatAt, later(5).toISOString());
    recordProgress(job, 'download', 2, 4, later(9));
    assert.deepEqual(stepRecord(job, 'download').progress, { done: 2, total: 4 });
    assert.equal(stepRecord(job, 'download').heartbeatAt, later(9).toISOString());
    finishStep(job, 'download', {}, later(10));
    heartbeat(job, 'download', later(11));
    assert.equal(stepRecord(job, 'download').heartbeatAt, later(9).toISOString(), 'an ended step is left as it is');
    assert.equal(stepRecord(job, 'download').progress, undefined);
  });

  it('finishes a step with its counts and prefixed warnings, and moves the job on', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    const next = finishStep(job, 'download', { instances: 3, bytes: 30, detail: { a: 1 }, warnings: ['w'] }, later(40));
    assert.equal(next, 'zip');
    const r = stepRecord(job, 'download');
    assert.deepEqual(
      [r.status, r.instances, r.bytes, r.detail, r.endedAt, r.durationMs],
      ['succeeded', 3, 30, { a: 1 }, later(40).toISOString(), 40],
    );
    assert.deepEqual([job.status, job.currentStep, job.warnings], ['queued', 'zip', ['download: w']]);
  });

  it('ends the job at a step that says the rest has nothing to do (skipRest)', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    assert.equal(finishStep(job, 'download', { instances: 0, skipRest: true }, later(7)), undefined);
    assert.equal(job.status, 'succeeded');
    assert.equal(job.finishedAt, later(7).toISOString());
    assert.deepEqual(
      job.steps.map((s) => s.status),
      ['succeeded', 'skipped', 'skipped'],
    );
    const last = newJob(draft, 'j4', t0);
    startStep(last, 'download', t0);
    finishStep(last, 'download', {}, t0);
    startStep(last, 'publish', t0);
    assert.equal(finishStep(last, 'publish', { skipRest: true }, later(1)), undefined, 'skipRest on the last step');
    assert.deepEqual(
      last.steps.map((s) => s.status),
      ['succeeded', 'succeeded'],
    );
  });

  it('puts a step to wait with what it waits for', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    waitStep(job, 'download', { orthancJob: 'x' }, { done: 1, total: 2 }, later(3));
    const r = stepRecord(job, 'download');
    assert.deepEqual([r.status, r.detail, r.progress], ['waiting', { orthancJob: 'x' }, { done: 1, total: 2 }]);
    assert.deepEqual([job.status, job.updatedAt], ['running', later(3).toISOString()]);
  });

  it('records a failed attempt with the job still open, and a permanent failure that ends it', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    recordAttemptFailure(job, 'download', 'timeout', later(1));
    assert.deepEqual(
      [job.status, job.error, stepRecord(job, 'download').status],
      ['running', 'download: timeout', 'failed'],
    );
    startStep(job, 'download', later(2));
    failStep(job, 'download', 'no such study', later(3));
    assert.deepEqual(
      [job.status, job.error, job.finishedAt],
      ['failed', 'download: no such study', later(3).toISOString()],
    );
    assert.deepEqual(
      [stepRecord(job, 'download').status, stepRecord(job, 'download').error],
      ['failed', 'no such study'],
    );
  });

  it('records a host that stopped while a step ran, and fails the job once that happened maxStarts times', () => {
    const job = fresh();
    recordHostStopped(job, 'download', 3, t0);
    assert.equal(stepRecord(job, 'download').status, 'pending', 'a step not running is left as it is');
    for (let start = 1; start <= 3; start += 1) {
      startStep(job, 'download', later(start));
      recordHostStopped(job, 'download', 3, later(start + 0.5));
      if (start < 3) {
        assert.equal(job.status, 'running', `start ${start}: the job stays open`);
        assert.equal(stepRecord(job, 'download').error, `the host stopped while this step ran (attempt ${start})`);
      }
    }
    assert.deepEqual([job.status, job.error], ['failed', 'download: the host stopped 3 times while this step ran']);
  });

  it('fails a poisoned job with its last recorded reason, once', () => {
    const job = fresh();
    startStep(job, 'download', t0);
    recordAttemptFailure(job, 'download', 'timeout', later(1));
    failPoisoned(job, 'step-download', later(2));
    assert.deepEqual(
      [job.status, job.error, job.finishedAt],
      ['failed', 'download: timeout (moved to step-download-poison)', later(2).toISOString()],
    );
    failPoisoned(job, 'step-download', later(9));
    assert.equal(job.finishedAt, later(2).toISOString(), 'an ended job is left as it is');
    const quiet = fresh();
    failPoisoned(quiet, 'step-download', t0);
    assert.equal(quiet.error, 'download: gave up after repeated failures (moved to step-download-poison)');
  });

  it('adds warnings, and marks a retried job as such', () => {
    const job = fresh();
    addWarning(job, 'a malformed message');
    assert.deepEqual(job.warnings, ['a malformed message']);
    failJob(job, 'download: x', t0);
    assert.equal(resetForRetry(job, later(1)), 'download');
    assert.deepEqual([job.status, job.source, job.finishedAt], ['queued', 'retry', undefined]);
  });
});

describe('messages', () => {
  it('accepts the Lua hook body and rejects anything else', () => {
    const id = '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';
    assert.deepEqual(parseMessage(orthancEventSchema, 'x', { changeType: 'StableStudy', resourceId: id }), {
      changeType: 'StableStudy',
      resourceId: id,
    });
    for (const bad of [
      {},
      { changeType: 'NewInstance', resourceId: id },
      { changeType: 'StableStudy', resourceId: '../etc' },
      { changeType: 'StableStudy', resourceId: id, extra: 1 },
      'text',
      42,
      null,
    ]) {
      assert.throws(() => parseMessage(orthancEventSchema, 'evaluate', bad), /Malformed message on queue 'evaluate'/);
    }
  });
  it('fills evaluate defaults', () => {
    const parsed = evaluateMessageSchema.parse({
      level: 'Study',
      resourceId: '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d',
      source: 'sweep',
    });
    assert.equal(parsed.force, false);
    assert.equal(parsed.includeSeries, false);
  });
});
