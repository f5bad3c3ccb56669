import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decideStep,
  failJob,
  finishStep,
  jobIdFor,
  newJob,
  pipelineOf,
  recordAttemptFailure,
  resetForRetry,
  startStep,
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
