/**
 * The lookup of jobs awaiting results in real Table storage (Azurite): entries are filed under a hash
 * of the forwarded StudyInstanceUID (no UID in any key), found by it without a scan, written
 * insert-if-absent (a duplicate evaluation leaves a linked entry linked), and leave the open list once
 * linked. The memory adapter of the unit tests keeps the same contract.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AwaitedResults } from '../../shared/pipeline/ports';
import { studyKey } from '../../shared/pipeline/roundTrip';
import { openTableStorage } from '../../shared/storage/tableStorage';
import { AWAITED_PARTITION } from '../../shared/storage/tableAwaitedResults';
import { tableClient } from '../../shared/storage/connection';
import { createMemoryAwaitedResults } from '../support/memory-awaited-results';
import { startAzurite, type AzuriteServer } from '../support/azurite';

let azurite: AzuriteServer;
before(async () => {
  azurite = await startAzurite();
});
after(async () => azurite?.stop());

const UID_A = '1.2.826.0.1.3680043.8.498.1';
const UID_B = '1.2.826.0.1.3680043.8.498.2';
const job = (n: number) => n.toString(16).padStart(32, '0');

function contract(name: string, make: () => Promise<{ awaited: AwaitedResults; keys?: () => Promise<string[]> }>) {
  describe(`awaited results: ${name}`, () => {
    it('finds the jobs of one study, keeps a linked entry linked, lists the open ones oldest first', async () => {
      const { awaited, keys } = await make();
      await awaited.expect({
        jobId: job(2),
        studyInstanceUid: UID_A,
        from: 'AINODE',
        withinSeconds: 60,
        createdAt: '2026-12-02T06:00:02Z',
      });
      await awaited.expect({
        jobId: job(1),
        studyInstanceUid: UID_A,
        from: 'AINODE',
        withinSeconds: 60,
        createdAt: '2026-12-02T06:00:01Z',
      });
      await awaited.expect({
        jobId: job(3),
        studyInstanceUid: UID_B,
        from: 'OTHER',
        withinSeconds: 60,
        createdAt: '2026-12-02T06:00:03Z',
      });
      const ofA = await awaited.forStudy(UID_A);
      assert.deepEqual(
        ofA.map((e) => [e.jobId, e.from, e.studyKey, e.withinSeconds]),
        [
          [job(1), 'AINODE', studyKey(UID_A), 60],
          [job(2), 'AINODE', studyKey(UID_A), 60],
        ],
      );
      await awaited.markLinked(ofA[0], '2026-12-02T07:00:00Z');
      await awaited.expect({
        jobId: job(1),
        studyInstanceUid: UID_A,
        from: 'AINODE',
        withinSeconds: 60,
        createdAt: '2026-12-02T06:00:01Z',
      });
      assert.equal(
        (await awaited.forStudy(UID_A))[0].linkedAt,
        '2026-12-02T07:00:00Z',
        'a duplicate expect changes nothing',
      );
      assert.deepEqual(
        (await awaited.open()).map((e) => e.jobId),
        [job(2), job(3)],
      );
      await awaited.remove((await awaited.forStudy(UID_B))[0]);
      assert.deepEqual(await awaited.forStudy(UID_B), []);
      assert.deepEqual(await awaited.forStudy(`${UID_A}9`), [], 'no prefix match');
      if (keys) for (const key of await keys()) assert.ok(!key.includes(UID_A) && !key.includes(UID_B), key);
    });
  });
}

contract('Table storage (Azurite)', async () => {
  const name = `awaited${Date.now()}`;
  const { awaitedResults } = await openTableStorage(azurite.connectionString, name);
  const table = tableClient(azurite.connectionString, name);
  return {
    awaited: awaitedResults,
    keys: async () => {
      const keys: string[] = [];
      for await (const e of table.listEntities({ queryOptions: { filter: `PartitionKey eq '${AWAITED_PARTITION}'` } }))
        keys.push(String(e.rowKey));
      return keys;
    },
  };
});

contract('memory', async () => ({ awaited: createMemoryAwaitedResults() }));
