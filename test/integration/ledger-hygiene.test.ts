/**
 * Ledger hygiene on real Azurite (which enforces Table storage's 64 KiB property limit): a job with
 * 10,000 warnings stays writable, its record under the limit and every warning readable (the
 * overflow from blobs); and the retention purge deletes old jobs with their index rows and blobs
 * while keeping newer ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { jobIdFor, newJob, type RuleSnapshot } from '../../shared/pipeline/job';
import type { JobStore } from '../../shared/pipeline/ports';
import { purgeOldJobs, retentionDue } from '../../shared/pipeline/sweep';
import { tableClient } from '../../shared/storage/connection';
import { openTableStorage } from '../../shared/storage/tableStorage';
import { MAX_PROPERTY_CHARS, MAX_RECORDED_WARNINGS, MAX_WARNING_CHARS } from '../../shared/storage/warningOverflow';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { draftJob } from '../support/job-store-contract';

const TABLE = 'hygienetest';
const rule: RuleSnapshot = { id: 'r1', checkOn: 'Study', steps: ['download', 'anonymise'], destinations: [] };
const draft = (n: number) => draftJob(n, rule);
const warning = (i: number) =>
  `anonymise: instance 1.2.826.0.1.3680043.8.498.${i}: burned-in annotation suspected; kept (policy "warn"): pixels were not cleaned`;

describe('ledger hygiene on Azurite', { timeout: 120_000 }, () => {
  let azurite: AzuriteServer;
  let ledger: JobStore;
  const rawBody = async (id: string) =>
    String((await tableClient(azurite.connectionString, TABLE).getEntity<{ body: string }>('job', id)).body);
  before(async () => {
    azurite = await startAzurite();
    ledger = (await openTableStorage(azurite.connectionString, TABLE)).jobs;
  });
  after(async () => azurite?.stop());

  it('keeps a job with 10,000 warnings under the property limit, the overflow readable from blobs', async () => {
    const job = newJob(draft(1), jobIdFor(draft(1)));
    await ledger.create(job);
    const all = Array.from({ length: 10_000 }, (_, i) => warning(i));
    // Control: the same record with every warning inline is far over what Table storage takes.
    const inline = JSON.stringify({ ...job, warnings: all }).length;
    assert.ok(inline > MAX_PROPERTY_CHARS * 10, `uncapped record: ${inline} characters`);
    await assert.rejects(
      tableClient(azurite.connectionString, TABLE).upsertEntity({
        partitionKey: 'probe',
        rowKey: 'inline',
        body: JSON.stringify({ ...job, warnings: all }),
      }),
      /PropertyValueTooLarge|EntityTooLarge/,
      'Azurite enforces the limits',
    );

    const started = Date.now();
    const stored = await ledger.update(job.id, (j) => j.warnings.push(...all));
    const bodyChars = (await rawBody(job.id)).length;
    assert.ok(bodyChars <= MAX_PROPERTY_CHARS, `record body ${bodyChars} characters`);
    assert.equal(stored.warnings.length, MAX_RECORDED_WARNINGS);
    assert.equal(stored.warningsOverflow?.count, 10_000 - MAX_RECORDED_WARNINGS);
    assert.equal(stored.warningsOverflow?.container, `${TABLE}-warnings`);

    // The blobs the record names exist where it says.
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
      stored.warningsOverflow.container,
    );
    for (const name of stored.warningsOverflow.blobs)
      assert.ok(await container.getBlockBlobClient(name).exists(), name);
    const read = await ledger.readWarnings(job.id);
    assert.deepEqual(read?.warnings, all, 'every warning, in order');

    // Later updates (a heartbeat, more warnings, concurrent ones) keep working and lose nothing.
    await ledger.update(job.id, (j) => {
      j.attempts += 1;
    });
    const more = Array.from({ length: 10 }, (_, k) => Array.from({ length: 30 }, (_, i) => `later ${k}-${i}`));
    await Promise.all(more.map((batch) => ledger.update(job.id, (j) => j.warnings.push(...batch))));
    const after = await ledger.readWarnings(job.id);
    assert.equal(after?.warnings.length, 10_300);
    assert.deepEqual(after?.warnings.slice(0, 10_000), all);
    assert.deepEqual(
      new Set(after?.warnings.slice(10_000)),
      new Set(more.flat()),
      'each concurrent batch exactly once',
    );
    assert.ok((await rawBody(job.id)).length <= MAX_PROPERTY_CHARS);
    console.log(
      `ledger hygiene: 10,000 warnings → record ${bodyChars} characters (limit ${MAX_PROPERTY_CHARS}; inline it would be ${inline}), ${stored.warningsOverflow.blobs.length} blob(s), write + read-back in ${Date.now() - started} ms`,
    );
  });

  it('bounds one long warning on the record', async () => {
    const job = newJob(draft(2), jobIdFor(draft(2)));
    await ledger.create(job);
    const stored = await ledger.update(job.id, (j) => j.warnings.push('x'.repeat(200_000)));
    assert.ok(stored.warnings[0].length <= MAX_WARNING_CHARS);
    assert.match(stored.warnings[0], /\(200000 characters\)$/);
  });

  it('purges jobs older than the retention with their index rows and blobs, and keeps newer ones', async () => {
    const now = new Date('2026-11-30T03:00:00Z');
    const day = 86_400_000;
    const at = (daysAgo: number) => new Date(now.getTime() - daysAgo * day);
    const make = async (n: number, daysAgo: number) =>
      (await ledger.create(newJob(draft(n), jobIdFor(draft(n)), at(daysAgo)))).job;
    const old = await make(10, 100);
    const oldWithBlobs = await make(11, 91);
    await ledger.update(oldWithBlobs.id, (j) => j.warnings.push(...Array.from({ length: 40 }, (_, i) => warning(i))));
    const orphan = await make(12, 120);
    const keep = await make(13, 89);
    const keepToday = await make(14, 0);
    // A crash between the job write and its index row leaves a job with no index row.
    const table = tableClient(azurite.connectionString, TABLE);
    const indexOf = async (id: string) => {
      const rows: Array<{ partitionKey: string; rowKey: string }> = [];
      for await (const row of table.listEntities<{ jobId: string }>({
        queryOptions: { filter: `PartitionKey ge 'recent-' and PartitionKey lt 'recent-~' and jobId eq '${id}'` },
      }))
        rows.push({ partitionKey: String(row.partitionKey), rowKey: String(row.rowKey) });
      return rows;
    };
    for (const row of await indexOf(orphan.id)) await table.deleteEntity(row.partitionKey, row.rowKey);
    assert.equal((await indexOf(old.id)).length, 1, 'control: the old job has its index row');
    const blobs = (await ledger.get(oldWithBlobs.id))!.warningsOverflow!.blobs;
    assert.ok(blobs.length > 0);

    const lines: string[] = [];
    const result = await purgeOldJobs({
      jobs: ledger,
      retentionDays: 90,
      now,
      log: { info: (m) => lines.push(m), warn: () => undefined, error: () => undefined },
    });
    assert.equal(result.jobs, 3);
    for (const gone of [old, oldWithBlobs, orphan]) {
      assert.equal(await ledger.get(gone.id), undefined, `job ${gone.resourceId} purged`);
      assert.deepEqual(await indexOf(gone.id), [], `index rows of ${gone.resourceId} purged`);
    }
    const container = BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient(
      `${TABLE}-warnings`,
    );
    for (const name of blobs)
      assert.equal(await container.getBlockBlobClient(name).exists(), false, `blob ${name} purged`);
    for (const kept of [keep, keepToday]) {
      assert.ok(await ledger.get(kept.id), `job ${kept.resourceId} kept`);
      assert.equal((await indexOf(kept.id)).length, 1, `index row of ${kept.resourceId} kept`);
    }
    const listed = await ledger.listRecent({ limit: 10, days: 100, before: now.toISOString() });
    assert.ok(listed.jobs.some((j) => j.id === keep.id));
    assert.ok(!listed.jobs.some((j) => [old.id, oldWithBlobs.id, orphan.id].includes(j.id)));
    assert.match(lines.join('\n'), /Retention: 3 job records created before 2026-09-01T03:00:00.000Z purged/);
    // Idempotent: a second run finds nothing more.
    assert.equal((await ledger.purgeBefore(at(90))).jobs, 0);
  });

  it('purges in the sweep hour only, and never with a retention of 0 days', () => {
    const at = new Date(2026, 10, 30, 3, 15);
    assert.equal(retentionDue({ DailyCheckHour: 3 }, 90, at), true);
    assert.equal(retentionDue({ DailyCheckHour: 4 }, 90, at), false);
    assert.equal(retentionDue({ DailyCheckHour: 3 }, 0, at), false);
  });
});
