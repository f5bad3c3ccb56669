/**
 * The dashboard's destinations in real Table storage (Azurite), and the memory twin of the unit tests
 * held to the same contract: one name in any case is one record, a write from a stale read loses to
 * the one that came first (two operators editing at once), and the audit reads newest first.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  DestinationConflict,
  type DestinationStore,
  type StoredDicomDestination,
  type StoredDicomWebDestination,
} from '../../shared/destinations/store';
import { createTableDestinationStore } from '../../shared/storage/tableDestinations';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { createMemoryDestinationStore } from '../support/memory-destinations';

let azurite: AzuriteServer;
before(async () => {
  azurite = await startAzurite();
});
after(async () => azurite?.stop());

const at = (second: number) => new Date(Date.UTC(2026, 11, 2, 8, 0, second)).toISOString();
const record = (name: string, port: number, who = 'alice'): StoredDicomDestination => ({
  name,
  aet: `${name.toUpperCase()}_AE`,
  host: '10.0.0.9',
  port,
  createdAt: at(0),
  updatedAt: at(0),
  updatedBy: who,
});
const conflict = (reason: DestinationConflict['reason']) => (e: unknown) =>
  e instanceof DestinationConflict && e.reason === reason;

function contract(name: string, make: () => Promise<DestinationStore[]>) {
  describe(`destination store: ${name}`, () => {
    it('keeps one record per name in any case, with its fields as written', async () => {
      const [store] = await make();
      assert.deepEqual(await store.list(), []);
      await store.create(record('AI_Node', 11112));
      await store.create(record('pacs', 104));
      await assert.rejects(store.create(record('ai_node', 1)), conflict('exists'));
      const found = (await store.get('AI_NODE')) as StoredDicomDestination | undefined;
      assert.ok(found?.version, 'a read carries the version a write needs');
      assert.deepEqual({ ...found, version: undefined }, { ...record('AI_Node', 11112), version: undefined });
      assert.equal(typeof found.port, 'number');
      assert.deepEqual(
        (await store.list()).map((d) => d.name),
        ['AI_Node', 'pacs'],
      );
      assert.equal(await store.get('nope'), undefined);
    });

    it('lets the first of two edits from one read win; a stale delete is refused too', async () => {
      const [first, second] = await make();
      await first.create(record('AI', 11112));
      const readByAlice = (await first.get('AI')) as StoredDicomDestination;
      const readByBob = (await second.get('ai')) as StoredDicomDestination;
      await first.replace(readByAlice, { ...readByAlice, port: 11113, updatedBy: 'alice', updatedAt: at(1) });
      await assert.rejects(second.replace(readByBob, { ...readByBob, port: 9 }), conflict('changed'));
      await assert.rejects(second.remove(readByBob), conflict('changed'));
      const now = (await second.get('AI')) as StoredDicomDestination;
      assert.deepEqual([now.port, now.updatedBy, now.updatedAt], [11113, 'alice', at(1)]);
      await second.remove(now);
      assert.equal(await first.get('AI'), undefined);
      await assert.rejects(first.remove(now), conflict('missing'));
    });

    it('keeps a DICOMweb record (URL, credentials setting name) beside the DICOM ones, one name space', async () => {
      const [store, other] = await make();
      const web: StoredDicomWebDestination = {
        name: 'Cloud',
        kind: 'dicomweb',
        url: 'https://pacs.example.org/dicom-web',
        credentialsFrom: 'STOW_AUTH_CLOUD',
        createdAt: at(0),
        updatedAt: at(0),
        updatedBy: 'alice',
      };
      await store.create(web);
      await store.create(record('Modality', 104));
      await assert.rejects(other.create(record('CLOUD', 1)), conflict('exists'));
      const found = await other.get('cloud');
      assert.deepEqual({ ...found, version: undefined }, { ...web, version: undefined });
      const { credentialsFrom: _dropped, ...withoutCredentials } = web;
      await other.replace(found!, { ...withoutCredentials, url: 'http://10.0.0.7:8042/dicom-web', updatedAt: at(1) });
      const edited = (await store.get('Cloud')) as StoredDicomWebDestination;
      assert.deepEqual(
        [edited.kind, edited.url, edited.credentialsFrom],
        ['dicomweb', 'http://10.0.0.7:8042/dicom-web', undefined],
      );
      assert.deepEqual(
        (await store.list()).map((d) => [d.name, d.kind ?? 'dicom']),
        [
          ['Cloud', 'dicomweb'],
          ['Modality', 'dicom'],
        ],
      );
      await store.remove(edited);
      assert.equal(await other.get('Cloud'), undefined);
    });

    it('reads the audit newest first, bounded, with before and after', async () => {
      const [store, other] = await make();
      const fields = (port: number) => ({ aet: 'AINODE', host: '10.0.0.9', port });
      await store.record({ at: at(1), who: 'alice', action: 'add', name: 'AI', after: fields(1) });
      await other.record({ at: at(2), who: 'bob', action: 'edit', name: 'AI', before: fields(1), after: fields(2) });
      await store.record({ at: at(3), who: 'function-key', action: 'delete', name: 'AI', before: fields(2) });
      const audit = await other.audit(10);
      assert.deepEqual(
        audit.map((c) => [c.at, c.who, c.action]),
        [
          [at(3), 'function-key', 'delete'],
          [at(2), 'bob', 'edit'],
          [at(1), 'alice', 'add'],
        ],
      );
      assert.deepEqual(audit[1].before, fields(1));
      assert.deepEqual(audit[1].after, fields(2));
      assert.equal(audit[0].after, undefined);
      assert.equal((await store.audit(2)).length, 2);
    });
  });
}

let tables = 0;
contract('Table storage (Azurite), two instances', async () => {
  const table = `destinations${Date.now()}n${tables++}`;
  return Promise.all([0, 1].map(() => createTableDestinationStore(azurite.connectionString, table)));
});

contract('memory', async () => {
  const store = createMemoryDestinationStore();
  return [store, store];
});
