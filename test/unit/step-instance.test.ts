/**
 * Scaled out, the steps of one job may run on different instances: the runner records on each step
 * the instance that started it (shared/azure-functions/instance.ts names it), and a takeover after a
 * crash names the instance that took over.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { hostInstanceName } from '../../shared/azure-functions/instance';
import { jobIdFor, newJob, startStep, stepRecord } from '../../shared/pipeline/job';
import { runStep, type RunnerDeps } from '../../shared/pipeline/runner';
import type { PipelineStep } from '../../shared/vocabulary';
import { createMemoryJobStore } from '../support/memory-storage';
import { createMemoryQueues } from '../support/memory-queues';

async function twoStepJob() {
  const jobs = createMemoryJobStore();
  const input = {
    rule: { id: 'scaled', checkOn: 'Study' as const, steps: ['download', 'zip'] as PipelineStep[], destinations: [] },
    level: 'Study' as const,
    resourceId: '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d',
    lastUpdate: '20260302T095500',
    source: 'webhook' as const,
    forced: false,
  };
  const { job } = await jobs.create(newJob(input, jobIdFor(input)));
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  const on = (instance: string): RunnerDeps => ({ jobs, queues: createMemoryQueues(), log: quiet, instance });
  return { jobs, job, on };
}

describe('the instance of each step', () => {
  it('names Azure’s instance id, or else the host name and process', () => {
    assert.equal(hostInstanceName({ WEBSITE_INSTANCE_ID: 'abc123' }), 'abc123');
    assert.equal(hostInstanceName({}), `${os.hostname()}:${process.pid}`);
  });

  it('records which instance ran each step of a job', async () => {
    const { jobs, job, on } = await twoStepJob();
    const ok = async () => ({ instances: 1, bytes: 10 });
    assert.equal(await runStep(on('instance-a'), 'download', ok, { jobId: job.id, step: 'download' }), 'done');
    assert.equal(await runStep(on('instance-b'), 'zip', ok, { jobId: job.id, step: 'zip' }), 'done');
    const stored = (await jobs.get(job.id))!;
    assert.equal(stepRecord(stored, 'download').instance, 'instance-a');
    assert.equal(stepRecord(stored, 'zip').instance, 'instance-b');
    assert.deepEqual(
      stored.steps.filter((s) => s.name !== 'publish').map((s) => `${s.name}=${s.status}/${s.attempts}`),
      ['download=succeeded/1', 'zip=succeeded/1'],
    );
  });

  it('names the instance that took a crashed step over', async () => {
    const { jobs, job, on } = await twoStepJob();
    // Instance A started the download and died: its heartbeat is long stale.
    await jobs.update(job.id, (j) => {
      startStep(j, 'download', new Date(Date.now() - 3_600_000));
      stepRecord(j, 'download').instance = 'instance-a';
    });
    const b = on('instance-b');
    assert.equal(await runStep(b, 'download', async () => ({}), { jobId: job.id, step: 'download' }), 'taken-over');
    assert.equal(
      await runStep(b, 'download', async () => ({ instances: 1 }), { jobId: job.id, step: 'download' }),
      'done',
    );
    const download = stepRecord((await jobs.get(job.id))!, 'download');
    assert.equal(download.instance, 'instance-b');
    assert.equal(download.attempts, 2, 'the crashed start and the takeover');
  });
});
