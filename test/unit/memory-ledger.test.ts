/**
 * The in-memory ledger (test/support/memory-ledger.ts) keeps the contract the Azurite ledger tests
 * (test/integration/ledger*.test.ts) check on the real one, so unit tests built on it test real behaviour.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { finishStep, jobIdFor, newJob, startStep, type RuleSnapshot } from '../../shared/pipeline/job';
import {
  InvalidCursorError,
  MAX_PROPERTY_CHARS,
  MAX_RECORDED_WARNINGS,
  MAX_WARNING_CHARS,
} from '../../shared/pipeline/ledger';
import { createMemoryLedger } from '../support/memory-ledger';

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
const base = Date.parse('2026-11-20T10:00:00Z');

describe('memory ledger', () => {
  it('collapses concurrent creations of the same job into one, and hands out copies', async () => {
    const ledger = createMemoryLedger();
    const job = newJob(draft(0), jobIdFor(draft(0)));
    const results = await Promise.all(Array.from({ length: 20 }, () => ledger.createJob(structuredClone(job))));
    assert.equal(results.filter((r) => r.created).length, 1);
    const read = (await ledger.getJob(job.id))!;
    read.status = 'failed';
    assert.equal((await ledger.getJob(job.id))?.status, 'queued', 'a read is a copy, as a storage read is');
  });

  it('keeps every concurrent update, retrying on ETag conflicts, and lets a throwing change write nothing', async () => {
    const ledger = createMemoryLedger();
    const job = newJob(draft(1), jobIdFor(draft(1)));
    await ledger.createJob(job);
    await Promise.all(Array.from({ length: 10 }, (_, i) => ledger.updateJob(job.id, (j) => j.warnings.push(`w${i}`))));
    assert.deepEqual(
      new Set((await ledger.getJob(job.id))?.warnings),
      new Set(Array.from({ length: 10 }, (_, i) => `w${i}`)),
    );
    assert.ok(ledger.conflicts > 0, 'concurrent updates met conflicts');
    await assert.rejects(
      ledger.updateJob(job.id, () => {
        throw new Error('refused');
      }),
      /refused/,
    );
    await assert.rejects(
      ledger.updateJob('missing-job', () => undefined),
      /Job missing-job not found in the ledger/,
    );
  });

  it('lists recent jobs newest first, filtered and paged within the days asked for', async () => {
    const ledger = createMemoryLedger({ now: () => new Date(base + 60 * 60_000) });
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
    const old = newJob(draft(99), jobIdFor(draft(99)), new Date(base - 3 * 86_400_000));
    await ledger.createJob(old);
    const before = new Date(base + 39 * 60_000).toISOString();
    const page1 = await ledger.listRecent({ limit: 10, days: 2, before });
    assert.deepEqual(
      page1.jobs.map((j) => j.resourceId),
      Array.from({ length: 10 }, (_, i) => `res-${38 - i}`),
      'strictly before `before`',
    );
    const page2 = await ledger.listRecent({ limit: 10, days: 2, cursor: page1.next });
    assert.equal(page2.jobs[0].resourceId, 'res-28');
    const last = await ledger.listRecent({ limit: 100, days: 2, cursor: page2.next });
    assert.equal(last.jobs.length, 9);
    assert.equal(last.next, undefined);
    const succeeded = await ledger.listRecent({ limit: 100, days: 2, filter: { status: 'succeeded', ruleId: 'r3' } });
    assert.deepEqual(
      succeeded.jobs.map((j) => j.resourceId),
      ['res-36', 'res-30', 'res-24', 'res-18', 'res-12'],
    );
    assert.deepEqual(
      (await ledger.listRecent({ limit: 5, filter: { resource: '1.2.3.17' } })).jobs.map((j) => j.resourceId),
      ['res-17'],
    );
    assert.equal(
      (await ledger.listRecent({ limit: 100, days: 2 })).jobs.length,
      30,
      'the 3-day-old job is outside 2 days',
    );
    assert.equal((await ledger.listRecent({ limit: 100, days: 4 })).jobs.length, 31);
    await assert.rejects(ledger.listRecent({ limit: 1, cursor: 'garbage' }), InvalidCursorError);
  });

  it('answers summaries from an index that follows status and step changes only', async () => {
    const ledger = createMemoryLedger({ now: () => new Date(base + 60_000) });
    const job = newJob(draft(1), jobIdFor(draft(1)), new Date(base));
    await ledger.createJob(job);
    await ledger.updateJob(job.id, (j) => startStep(j, 'download'));
    await ledger.updateJob(job.id, (j) => {
      j.steps[0].instances = 5; // a progress tick: the index row is not rewritten
    });
    const [summary] = await ledger.summariesSince(new Date(base - 1));
    assert.deepEqual(
      { status: summary.status, step: summary.step, instances: summary.instances },
      { status: 'running', step: 'download', instances: undefined },
    );
    assert.deepEqual(await ledger.summariesSince(new Date(base)), [], 'strictly after `since`');
  });

  it('lets one unfinished job hold an output at a time', async () => {
    const ledger = createMemoryLedger();
    const a = newJob(draft(50), 'job-a-0000');
    const b = newJob(draft(51), 'job-b-0000');
    await ledger.createJob(a);
    await ledger.createJob(b);
    assert.deepEqual(await ledger.acquireOutput('/out/x', a.id), { acquired: true });
    assert.deepEqual(await ledger.acquireOutput('/out/x', b.id), { acquired: false, holder: a.id });
    await ledger.releaseOutput('/out/x', b.id);
    assert.deepEqual(
      await ledger.acquireOutput('/out/x', b.id),
      { acquired: false, holder: a.id },
      'only the holder releases',
    );
    await ledger.updateJob(a.id, (j) => {
      j.status = 'failed';
    });
    assert.deepEqual(await ledger.acquireOutput('/out/x', b.id), { acquired: true }, 'an ended holder loses its claim');
  });

  it('keeps warnings beyond the record in blobs, bounds long ones, refuses records over 64 KiB, and stores cursors', async () => {
    const ledger = createMemoryLedger({ tableName: 'Jobs' });
    const job = newJob(draft(2), jobIdFor(draft(2)));
    await ledger.createJob(job);
    const all = Array.from({ length: 1000 }, (_, i) => `warning ${i}`);
    const stored = await ledger.updateJob(job.id, (j) => j.warnings.push(...all));
    assert.equal(stored.warnings.length, MAX_RECORDED_WARNINGS);
    assert.equal(stored.warningsOverflow?.count, 1000 - MAX_RECORDED_WARNINGS);
    assert.equal(stored.warningsOverflow?.container, 'jobs-warnings');
    assert.deepEqual((await ledger.readWarnings(job.id))?.warnings, all);
    const long = await ledger.updateJob(job.id, (j) => j.warnings.splice(0, j.warnings.length, 'x'.repeat(200_000)));
    assert.ok(long.warnings[0].length <= MAX_WARNING_CHARS);
    await assert.rejects(
      ledger.updateJob(job.id, (j) => {
        j.steps[0].detail = { huge: 'y'.repeat(MAX_PROPERTY_CHARS) };
      }),
      /PropertyValueTooLarge/,
    );
    assert.equal(await ledger.getCursor('feed'), undefined);
    await ledger.setCursor('feed', 42);
    assert.equal(await ledger.getCursor('feed'), 42);
    await ledger.ping();
  });

  it('purges jobs created before the cutoff with their index rows and blobs', async () => {
    const ledger = createMemoryLedger();
    const at = (daysAgo: number) => new Date(base - daysAgo * 86_400_000);
    const make = async (n: number, daysAgo: number) =>
      (await ledger.createJob(newJob(draft(n), jobIdFor(draft(n)), at(daysAgo)))).job;
    const old = await make(10, 100);
    await ledger.updateJob(old.id, (j) => j.warnings.push(...Array.from({ length: 40 }, (_, i) => `w${i}`)));
    const keep = await make(11, 10);
    assert.deepEqual(await ledger.purgeBefore(at(90)), { jobs: 1, indexRows: 1, blobs: 1 });
    assert.equal(await ledger.getJob(old.id), undefined);
    assert.deepEqual(ledger.jobIds(), [keep.id]);
    assert.deepEqual(await ledger.purgeBefore(at(90)), { jobs: 0, indexRows: 0, blobs: 0 });
  });
});
