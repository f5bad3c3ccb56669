/**
 * The job ledger on real Azurite: insert-if-absent, ETag updates, newest-first listing by day, locks,
 * cursor; and the step runner on it: duplicate messages arriving together run a step once.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { finishStep, jobIdFor, newJob, startStep, type RuleSnapshot } from '../../shared/pipeline/job';
import { createLedger, type Ledger } from '../../shared/pipeline/ledger';
import { runStep } from '../../shared/pipeline/runner';
import { createQueueSender } from '../../shared/storage/queues';
import { startAzurite, type AzuriteServer } from '../support/azurite';

const rule: RuleSnapshot = { id: 'r1', checkOn: 'Study', steps: ['download'], destinations: [] };
const draft = (n: number, ruleId = 'r1') => ({
  rule: { ...rule, id: ruleId },
  level: 'Study' as const,
  resourceId: `res-${n}`,
  studyInstanceUid: `1.2.3.${n}`,
  lastUpdate: '20260101T000000',
  source: 'webhook' as const,
  forced: false,
});

describe('job ledger on Azurite', { timeout: 60_000 }, () => {
  let azurite: AzuriteServer;
  let ledger: Ledger;
  before(async () => {
    azurite = await startAzurite();
    ledger = await createLedger(azurite.connectionString, 'ledgertest');
  });
  after(async () => azurite?.stop());

  it('collapses concurrent creations of the same job into one', async () => {
    const job = newJob(draft(0), jobIdFor(draft(0)));
    const results = await Promise.all(Array.from({ length: 20 }, () => ledger.createJob(structuredClone(job))));
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.equal(new Set(results.map((r) => r.job.id)).size, 1);
  });

  it('keeps every concurrent update (optimistic concurrency with ETags)', async () => {
    const job = newJob(draft(1), jobIdFor(draft(1)));
    await ledger.createJob(job);
    await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.updateJob(job.id, (j) => j.warnings.push(`w${i}`))));
    assert.equal((await ledger.getJob(job.id))?.warnings.length, 10);
  });

  it('lists recent jobs newest first, filtered and paged, from the day partitions', async () => {
    const base = Date.parse('2026-11-20T10:00:00Z');
    for (let n = 10; n < 40; n += 1) {
      const d = draft(n, n % 3 === 0 ? 'r3' : 'r1');
      const job = newJob(d, jobIdFor(d), new Date(base + n * 60_000));
      if (n % 2 === 0) {
        startStep(job, 'download');
        finishStep(job, 'download', {});
        startStep(job, 'publish');
        finishStep(job, 'publish', {});
      }
      await ledger.createJob(job);
    }
    const before = new Date(base + 40 * 60_000).toISOString();
    const page1 = await ledger.listRecent({ limit: 10, days: 2, before });
    assert.deepEqual(
      page1.jobs.map((j) => j.resourceId),
      Array.from({ length: 10 }, (_, i) => `res-${39 - i}`),
    );
    const page2 = await ledger.listRecent({ limit: 10, days: 2, cursor: page1.next });
    assert.equal(page2.jobs[0].resourceId, 'res-29');
    const succeeded = await ledger.listRecent({
      limit: 100,
      days: 2,
      before,
      filter: { status: 'succeeded', ruleId: 'r3' },
    });
    assert.deepEqual(
      succeeded.jobs.map((j) => j.resourceId),
      ['res-36', 'res-30', 'res-24', 'res-18', 'res-12'],
    );
    const byUid = await ledger.listRecent({ limit: 5, days: 2, before, filter: { resource: '1.2.3.17' } });
    assert.deepEqual(
      byUid.jobs.map((j) => j.resourceId),
      ['res-17'],
    );
  });

  it('lets one unfinished job hold an output at a time', async () => {
    const a = newJob(draft(50), 'job-a-0000');
    const b = newJob(draft(51), 'job-b-0000');
    await ledger.createJob(a);
    await ledger.createJob(b);
    assert.deepEqual(await ledger.acquireOutput('/out/x', a.id), { acquired: true });
    assert.deepEqual(await ledger.acquireOutput('/out/x', b.id), { acquired: false, holder: a.id });
    await ledger.releaseOutput('/out/x', a.id);
    assert.deepEqual(await ledger.acquireOutput('/out/x', b.id), { acquired: true });
  });

  it('runs a step once when duplicate messages for it arrive together; the others come back later', async () => {
    const job = newJob(draft(60), jobIdFor(draft(60)));
    await ledger.createJob(job);
    const queues = createQueueSender(azurite.connectionString);
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    let runs = 0;
    const slowDownload = async () => {
      runs += 1;
      await new Promise((resolve) => setTimeout(resolve, 500));
      return { instances: 1 };
    };
    const message = { jobId: job.id, step: 'download' };
    const outcomes = await Promise.all(
      Array.from({ length: 8 }, () =>
        runStep({ ledger, queues, log: quiet, handOn: () => undefined }, 'download', slowDownload, message),
      ),
    );
    const stored = await ledger.getJob(job.id);
    assert.equal(runs, 1, `outcomes: ${outcomes.join(', ')}`);
    assert.deepEqual(
      outcomes.filter((o) => o !== 'busy'),
      ['done'],
    );
    assert.equal(stored?.steps.find((st) => st.name === 'download')?.attempts, 1);
    assert.equal(await queues.depth('step-download'), 7, 'each duplicate is sent back once, to check again later');
  });

  it('stores the change feed cursor', async () => {
    assert.equal(await ledger.getCursor('feed'), undefined);
    await ledger.setCursor('feed', 42);
    assert.equal(await ledger.getCursor('feed'), 42);
  });
});
