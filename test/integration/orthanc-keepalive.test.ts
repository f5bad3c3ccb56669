/**
 * The Orthanc client keeps its connections to a real Orthanc alive. Orthanc 1.10 answers
 * `Keep-Alive: timeout=1`, which Node's own agent takes as "do not reuse": every file of a study
 * then cost a new TCP connection (shared/orthanc/keepAliveAgent.ts). A counting TCP relay in front
 * of Orthanc shows how many connections the client opened.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { idleMsFor } from '../../shared/orthanc/keepAliveAgent';
import { forEachLimit } from '../../shared/util/concurrency';
import { readAll } from '../support/bytes';
import { storescu } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { freePort } from '../support/process';

describe('Orthanc client connections', { timeout: 120_000 }, () => {
  let orthanc: OrthancServer;
  let relay: net.Server;
  let connections = 0;
  let client: OrthancClient;
  let instanceIds: string[];
  let sizes: Map<string, number>;

  before(async () => {
    orthanc = await startOrthanc({ stableAgeSeconds: 3600 });
    const port = await freePort();
    relay = net.createServer((socket) => {
      connections += 1;
      const upstream = net.connect(orthanc.httpPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    client = createOrthancClient({
      url: `http://127.0.0.1:${port}`,
      username: orthanc.username,
      password: orthanc.password,
    });
    const study = await generateStudy({
      studyDescription: 'keep-alive',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 40, rows: 64, columns: 64 }],
    });
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
    const studyId = (await client.lookup(study.studyInstanceUID)).find((r) => r.Type === 'Study')!.ID;
    const instances = await client.listInstances('studies', studyId);
    instanceIds = instances.map((i) => i.ID);
    sizes = new Map(instances.map((i) => [i.ID, i.FileSize]));
  });

  after(async () => {
    await new Promise((resolve) => relay?.close(resolve));
    await orthanc?.stop();
  });

  it('fetches 40 files 4 at a time, and JSON calls between them, over a handful of connections', async () => {
    assert.equal(instanceIds.length, 40);
    const before = connections;
    await forEachLimit(instanceIds, 4, async (id) => {
      const bytes = await readAll(await client.instanceFile(id));
      assert.equal(bytes.length, sizes.get(id), `instance ${id}: every byte arrives`);
      await client.getInstance(id);
    });
    const opened = connections - before;
    // Without pooling this was one connection per request (80 here).
    assert.ok(opened <= 8, `the client opened ${opened} connections for 80 requests`);
  });

  it('lets an idle connection go before Orthanc closes it, and reconnects for the next call', async () => {
    await client.system();
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const before = connections;
    const system = await client.system();
    assert.ok(system.Version, 'the call after the idle time succeeds');
    assert.equal(connections - before, 1, 'one new connection after the idle socket was dropped');
  });

  it('reads the idle time from Keep-Alive: half the announced timeout, 500 ms without one', () => {
    assert.equal(idleMsFor('timeout=1'), 500);
    assert.equal(idleMsFor('timeout=5, max=100'), 2500);
    assert.equal(idleMsFor(undefined), 500);
    assert.equal(idleMsFor('max=100'), 500);
  });
});
