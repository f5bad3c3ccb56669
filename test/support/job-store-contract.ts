/**
 * The contract of the storage ports (shared/pipeline/ports.ts), one suite run against each
 * implementation: in memory (test/unit/job-store.test.ts) and on Azurite (test/integration/ledger.test.ts),
 * so the unit tests built on the memory one test what the Table one does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  failJob,
  finishStep,
  jobIdFor,
  newJob,
  startStep,
  type NewJob,
  type RuleSnapshot,
} from '../../shared/pipeline/job';
import { InvalidCursorError, type Cursors, type JobStore, type OutputLocks } from '../../shared/pipeline/ports';
import { MAX_PROPERTY_CHARS, MAX_RECORDED_WARNINGS, MAX_WARNING_CHARS } from '../../shared/storage/warningOverflow';

export interface ContractStores {
  jobs: JobStore;
  outputLocks: OutputLocks;
  cursors: Cursors;
  /** Ids of every stored job record (any order). */
  jobIds(): Promise<string[]>;
}

/** Fresh, empty stores on a table of their own; `now` is the clock listings read. */
export type OpenStores = (options: { now: () => Date; tableName: string }) => Promise<ContractStores>;

export const CONTRACT_RULE: RuleSnapshot = { id: 'r1', checkOn: 'Study', steps: ['download'], destinations: [] };

/** A job's inputs: resource `res-<n>`, study UID `1.2.3.<n>`. */
export function draftJob(n: number, rule: RuleSnapshot = CONTRACT_RULE): NewJob {
  return {
    rule,
    level: 'Study',
    resourceId: `res-${n}`,
    studyInstanceUid: `1.2.3.${n}`,
    lastUpdate: '20260101T000000',
    source: 'webhook',
    forced: false,
  };
}

const base = Date.parse('2026-11-20T10:00:00Z');
const DAY = 86_400_000;

export function jobStoreContract(name: string, open: OpenStores): void {
  let tables = 0;
  const fresh = (options: { now?: () => Date; tableName?: string } = {}) =>
    open({ now: options.now ?? (() => new Date()), tableName: options.tableName ?? `contract${(tables += 1)}` });

  /** Two unfinished jobs, a and b, on fresh stores. */
  const twoJobs = async () => {
    const stores = await fresh();
    const a = newJob(draftJob(50), 'job-a-0000');
    const b = newJob(draftJob(51), 'job-b-0000');
    await stores.jobs.create(a);
    await stores.jobs.create(b);
    return { ...stores, a, b };
  };

  describe(`storage ports: ${name}`, () => {
    it('collapses concurrent creations of the same job into one, and hands out copies', async () => {
      const { jobs } = await fresh();
      const job = newJob(draftJob(0), jobIdFor(draftJob(0)));
      const results = await Promise.all(Array.from({ length: 20 }, () => jobs.create(structuredClone(job))));
      assert.equal(results.filter((r) => r.created).length, 1);
      assert.equal(new Set(results.map((r) => r.job.id)).size, 1);
      const read = (await jobs.get(job.id))!;
      read.status = 'failed';
      assert.equal((await jobs.get(job.id))?.status, 'queued', 'a read is a copy, as a storage read is');
    });

    it('keeps every concurrent update (optimistic concurrency with ETags), and lets a throwing change write nothing', async () => {
      const { jobs } = await fresh();
      const job = newJob(draftJob(1), jobIdFor(draftJob(1)));
      await jobs.create(job);
      await Promise.all(Array.from({ length: 10 }, (_, i) => jobs.update(job.id, (j) => j.warnings.push(`w${i}`))));
      const updated = await jobs.get(job.id);
      assert.equal(updated?.warnings.length, 10);
      assert.deepEqual(new Set(updated?.warnings), new Set(Array.from({ length: 10 }, (_, i) => `w${i}`)));
      await assert.rejects(
        jobs.update(job.id, (j) => {
          j.status = 'failed';
          throw new Error('refused');
        }),
        /refused/,
      );
      assert.deepEqual(await jobs.get(job.id), updated, 'the throwing change wrote nothing');
      await assert.rejects(
        jobs.update('missing-job', () => undefined),
        /Job missing-job not found in the ledger/,
      );
    });

    it('lists recent jobs newest first, filtered and paged, within the days asked for', async () => {
      const { jobs } = await fresh({ now: () => new Date(base + 60 * 60_000) });
      for (let n = 10; n < 40; n += 1) {
        const d = draftJob(n, { ...CONTRACT_RULE, id: n % 3 === 0 ? 'r3' : 'r1' });
        const job = newJob(d, jobIdFor(d), new Date(base + n * 60_000));
        if (n % 2 === 0) {
          startStep(job, 'download');
          finishStep(job, 'download', {});
          startStep(job, 'publish');
          finishStep(job, 'publish', {});
        }
        await jobs.create(job);
      }
      const old = newJob(draftJob(99), jobIdFor(draftJob(99)), new Date(base - 3 * DAY));
      await jobs.create(old);

      const before = new Date(base + 40 * 60_000).toISOString();
      const first = await jobs.listRecent({ limit: 10, days: 2, before });
      assert.deepEqual(
        first.jobs.map((j) => j.resourceId),
        Array.from({ length: 10 }, (_, i) => `res-${39 - i}`),
      );
      assert.equal((await jobs.listRecent({ limit: 10, days: 2, cursor: first.next })).jobs[0].resourceId, 'res-29');
      const succeeded = await jobs.listRecent({
        limit: 100,
        days: 2,
        before,
        filter: { status: 'succeeded', ruleId: 'r3' },
      });
      assert.deepEqual(
        succeeded.jobs.map((j) => j.resourceId),
        ['res-36', 'res-30', 'res-24', 'res-18', 'res-12'],
      );
      const byUid = await jobs.listRecent({ limit: 5, days: 2, before, filter: { resource: '1.2.3.17' } });
      assert.deepEqual(
        byUid.jobs.map((j) => j.resourceId),
        ['res-17'],
      );

      const page1 = await jobs.listRecent({
        limit: 10,
        days: 2,
        before: new Date(base + 39 * 60_000).toISOString(),
      });
      assert.deepEqual(
        page1.jobs.map((j) => j.resourceId),
        Array.from({ length: 10 }, (_, i) => `res-${38 - i}`),
        'strictly before `before`',
      );
      const page2 = await jobs.listRecent({ limit: 10, days: 2, cursor: page1.next });
      assert.equal(page2.jobs[0].resourceId, 'res-28');
      const last = await jobs.listRecent({ limit: 100, days: 2, cursor: page2.next });
      assert.equal(last.jobs.length, 9);
      assert.equal(last.next, undefined);
      const succeededNow = await jobs.listRecent({
        limit: 100,
        days: 2,
        filter: { status: 'succeeded', ruleId: 'r3' },
      });
      assert.deepEqual(
        succeededNow.jobs.map((j) => j.resourceId),
        ['res-36', 'res-30', 'res-24', 'res-18', 'res-12'],
      );
      assert.deepEqual(
        (await jobs.listRecent({ limit: 5, filter: { resource: '1.2.3.17' } })).jobs.map((j) => j.resourceId),
        ['res-17'],
      );
      assert.equal(
        (await jobs.listRecent({ limit: 100, days: 2 })).jobs.length,
        30,
        'the 3-day-old job is outside 2 days',
      );
      assert.equal((await jobs.listRecent({ limit: 100, days: 4 })).jobs.length, 31);
      await assert.rejects(jobs.listRecent({ limit: 1, cursor: 'garbage' }), InvalidCursorError);
    });

    it('answers summaries from an index that follows status and step changes only', async () => {
      const { jobs } = await fresh({ now: () => new Date(base + 60_000) });
      const job = newJob(draftJob(1), jobIdFor(draftJob(1)), new Date(base));
      await jobs.create(job);
      await jobs.update(job.id, (j) => startStep(j, 'download'));
      await jobs.update(job.id, (j) => {
        j.steps[0].instances = 5; // a progress tick: the index row is not rewritten
      });
      const [summary] = await jobs.summariesSince(new Date(base - 1));
      assert.deepEqual(
        { status: summary.status, step: summary.step, instances: summary.instances },
        { status: 'running', step: 'download', instances: undefined },
      );
      assert.deepEqual(await jobs.summariesSince(new Date(base)), [], 'strictly after `since`');
    });

    it('lets one unfinished job hold an output at a time; only the holder releases it', async () => {
      const { outputLocks, a, b } = await twoJobs();
      assert.deepEqual(await outputLocks.acquire('/out/x', a.id), { acquired: true });
      assert.deepEqual(await outputLocks.acquire('/out/x', a.id), { acquired: true }, 'the holder again');
      assert.deepEqual(await outputLocks.acquire('/out/x', b.id), { acquired: false, holder: a.id });
      await outputLocks.release('/out/x', b.id);
      assert.deepEqual(
        await outputLocks.acquire('/out/x', b.id),
        { acquired: false, holder: a.id },
        'only the holder releases',
      );
      await outputLocks.release('/out/x', a.id);
      assert.deepEqual(await outputLocks.acquire('/out/x', b.id), { acquired: true });
    });

    it('lets an ended holder lose its claim', async () => {
      const { jobs, outputLocks, a, b } = await twoJobs();
      assert.deepEqual(await outputLocks.acquire('/out/x', a.id), { acquired: true });
      assert.deepEqual(await outputLocks.acquire('/out/x', b.id), { acquired: false, holder: a.id });
      await jobs.update(a.id, (j) => failJob(j, 'download: gone'));
      assert.deepEqual(
        await outputLocks.acquire('/out/x', b.id),
        { acquired: true },
        'an ended holder loses its claim',
      );
      assert.deepEqual(await outputLocks.acquire('/out/x', a.id), { acquired: false, holder: b.id });
    });

    it('keeps warnings beyond the record apart, bounds long ones, and refuses records over 64 KiB', async () => {
      const { jobs } = await fresh({ tableName: 'Jobs' });
      const job = newJob(draftJob(2), jobIdFor(draftJob(2)));
      await jobs.create(job);
      const all = Array.from({ length: 1000 }, (_, i) => `warning ${i}`);
      const stored = await jobs.update(job.id, (j) => j.warnings.push(...all));
      assert.equal(stored.warnings.length, MAX_RECORDED_WARNINGS);
      assert.equal(stored.warningsOverflow?.count, 1000 - MAX_RECORDED_WARNINGS);
      assert.equal(stored.warningsOverflow?.container, 'jobs-warnings');
      assert.deepEqual((await jobs.readWarnings(job.id))?.warnings, all);
      assert.equal(await jobs.readWarnings('missing-job'), undefined);
      const long = await jobs.update(job.id, (j) => j.warnings.splice(0, j.warnings.length, 'x'.repeat(200_000)));
      assert.ok(long.warnings[0].length <= MAX_WARNING_CHARS);
      assert.match(long.warnings[0], /\(200000 characters\)$/);
      await assert.rejects(
        jobs.update(job.id, (j) => {
          j.steps[0].detail = { huge: 'y'.repeat(MAX_PROPERTY_CHARS) };
        }),
        /PropertyValueTooLarge/,
      );
    });

    it('stores cursors, and answers a ping', async () => {
      const { jobs, cursors } = await fresh();
      assert.equal(await cursors.get('feed'), undefined);
      await cursors.set('feed', 42);
      assert.equal(await cursors.get('feed'), 42);
      await cursors.set('feed', 43);
      assert.equal(await cursors.get('feed'), 43);
      await jobs.ping();
    });

    it('purges jobs created before the cutoff with their index rows and blobs', async () => {
      const stores = await fresh();
      const { jobs } = stores;
      const at = (daysAgo: number) => new Date(base - daysAgo * DAY);
      const make = async (n: number, daysAgo: number) =>
        (await jobs.create(newJob(draftJob(n), jobIdFor(draftJob(n)), at(daysAgo)))).job;
      const old = await make(10, 100);
      await jobs.update(old.id, (j) => j.warnings.push(...Array.from({ length: 40 }, (_, i) => `w${i}`)));
      const keep = await make(11, 10);
      assert.deepEqual(await jobs.purgeBefore(at(90)), { jobs: 1, indexRows: 1, blobs: 1 });
      assert.equal(await jobs.get(old.id), undefined);
      assert.deepEqual(await stores.jobIds(), [keep.id]);
      assert.deepEqual(await jobs.purgeBefore(at(90)), { jobs: 0, indexRows: 0, blobs: 0 });
    });
  });
}
