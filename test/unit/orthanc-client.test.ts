/**
 * The Orthanc client's failure behaviour, against a scripted local HTTP server: retries with
 * backoff on 5xx and connection errors for idempotent calls only, basic auth, timeouts, 4xx
 * answers with Orthanc's reason, and zod-validated answers. (The happy paths run against a real
 * Orthanc in test/integration/orthanc-roundtrip.test.ts.)
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { createOrthancClient, OrthancError } from '../../shared/orthanc/client';
import { freePort } from '../support/process';

interface Seen {
  method: string;
  url: string;
  authorization?: string;
  acceptEncoding?: string;
  at: number;
}

const SYSTEM = { Version: '1.10.1', DicomAet: 'ORTHANC', DicomPort: 4242 };

describe('Orthanc client failure handling', () => {
  let server: http.Server;
  let url: string;
  let seen: Seen[] = [];
  /** Answers per request, in order; the last one repeats. */
  let script: Array<(res: http.ServerResponse) => void> = [];

  const json = (status: number, body: unknown) => (res: http.ServerResponse) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        authorization: req.headers.authorization,
        acceptEncoding: req.headers['accept-encoding'],
        at: Date.now(),
      });
      req.resume();
      const answer = script[Math.min(seen.length - 1, script.length - 1)];
      answer(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  beforeEach(() => {
    seen = [];
    script = [];
  });

  it('retries a GET on 5xx with doubling backoff, then returns the validated answer, with basic auth', async () => {
    script = [json(503, {}), json(500, {}), json(200, SYSTEM)];
    const client = createOrthancClient({ url, username: 'orthanc', password: 's3cret', attempts: 4, backoffMs: 40 });
    const system = await client.system();
    assert.equal(system.Version, '1.10.1');
    assert.equal(seen.length, 3);
    assert.equal(seen[0].authorization, `Basic ${Buffer.from('orthanc:s3cret').toString('base64')}`);
    const gaps = [seen[1].at - seen[0].at, seen[2].at - seen[1].at];
    assert.ok(gaps[0] >= 35, `first backoff ${gaps[0]} ms`);
    assert.ok(gaps[1] >= 75, `second backoff doubles: ${gaps[1]} ms`);
  });

  it('gives up after the configured attempts with a transient error naming the call, never the password', async () => {
    script = [json(503, { Message: 'busy' })];
    const client = createOrthancClient({ url, username: 'orthanc', password: 's3cret', attempts: 3, backoffMs: 1 });
    const error = await client.system().then(
      () => assert.fail('expected a failure'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof OrthancError);
    assert.equal(seen.length, 3);
    assert.equal(error.transient, true);
    assert.match(error.message, /GET \/system answered 503: busy/);
    assert.doesNotMatch(error.message, /s3cret/);
  });

  it('does not retry a non-idempotent POST on 5xx', async () => {
    script = [json(500, { Message: 'store failed' })];
    const client = createOrthancClient({ url, attempts: 4, backoffMs: 1 });
    await assert.rejects(
      client.storeToModalityAsync('PACS', ['abc']),
      /POST \/modalities\/PACS\/store answered 500: store failed/,
    );
    assert.equal(seen.length, 1);
  });

  it("does not retry a 4xx, and reports it as not transient with Orthanc's details", async () => {
    script = [json(404, { Message: 'Unknown resource', Details: 'no such study' })];
    const client = createOrthancClient({ url, attempts: 4, backoffMs: 1 });
    const error = await client.getStudy('nope').catch((e: unknown) => e);
    assert.ok(error instanceof OrthancError);
    assert.equal(seen.length, 1);
    assert.equal(error.notFound, true);
    assert.equal(error.transient, false);
    assert.match(error.message, /Unknown resource - no such study/);
  });

  it('refuses an answer that does not match the schema, saying where', async () => {
    script = [json(200, { Version: 1 })];
    const client = createOrthancClient({ url, attempts: 1 });
    await assert.rejects(
      client.system(),
      /GET \/system returned an unexpected answer \(Version: .*is ORTHANC_URL pointing at Orthanc\?/,
    );
  });

  it('times out a hanging call and retries it', async () => {
    script = [() => undefined, json(200, SYSTEM)]; // the first request never gets an answer
    const client = createOrthancClient({ url, attempts: 2, backoffMs: 1, timeoutMs: 200 });
    const started = Date.now();
    assert.equal((await client.system()).DicomAet, 'ORTHANC');
    assert.equal(seen.length, 2);
    assert.ok(Date.now() - started >= 190);
  });

  it('retries connection errors, then fails transient naming the URL', async () => {
    const port = await freePort();
    const client = createOrthancClient({ url: `http://127.0.0.1:${port}`, attempts: 3, backoffMs: 30 });
    const started = Date.now();
    const error = await client.system().catch((e: unknown) => e);
    assert.ok(error instanceof OrthancError);
    assert.equal(error.transient, true);
    assert.equal(error.details.code, 'ECONNREFUSED');
    assert.match(error.message, new RegExp(`is Orthanc reachable at http://127\\.0\\.0\\.1:${port}`));
    assert.ok(Date.now() - started >= 30 + 60 - 10, 'waited through two backoffs');
  });

  describe('instance files (node:http, not axios)', () => {
    const readAll = async (stream: NodeJS.ReadableStream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };
    const file = (bytes: Buffer) => (res: http.ServerResponse) => {
      res.writeHead(200, { 'Content-Type': 'application/dicom', 'Content-Length': bytes.length });
      res.end(bytes);
    };

    it('asks for identity encoding (Orthanc would gzip every file), with basic auth, and retries 5xx', async () => {
      const bytes = Buffer.alloc(200_000, 7);
      script = [json(503, {}), file(bytes)];
      const client = createOrthancClient({ url, username: 'orthanc', password: 's3cret', attempts: 3, backoffMs: 10 });
      assert.deepEqual(await readAll(await client.instanceFile('a/b')), bytes);
      assert.equal(seen.length, 2);
      assert.equal(seen[1].url, '/instances/a%2Fb/file');
      assert.equal(seen[1].acceptEncoding, 'identity');
      assert.equal(seen[1].authorization, `Basic ${Buffer.from('orthanc:s3cret').toString('base64')}`);
    });

    it("reports a 404 with Orthanc's details, not transient, without retrying", async () => {
      script = [json(404, { Message: 'Unknown resource' })];
      const client = createOrthancClient({ url, attempts: 3, backoffMs: 1 });
      const error = await client.instanceFile('gone').catch((e: unknown) => e);
      assert.ok(error instanceof OrthancError);
      assert.equal(error.notFound, true);
      assert.equal(error.transient, false);
      assert.match(error.message, /GET \/instances\/gone\/file answered 404: Unknown resource/);
      assert.equal(seen.length, 1);
    });

    it('fails the stream when Orthanc stalls mid-file, after the timeout', async () => {
      script = [
        (res) => {
          res.writeHead(200, { 'Content-Type': 'application/dicom', 'Content-Length': 1000 });
          res.write(Buffer.alloc(100));
        },
      ];
      const client = createOrthancClient({ url, attempts: 1, timeoutMs: 200 });
      const stream = await client.instanceFile('stalled');
      await assert.rejects(readAll(stream), /no data for 200 ms|aborted/);
    });

    it('retries a refused connection, then fails transient naming the URL', async () => {
      const port = await freePort();
      const client = createOrthancClient({ url: `http://127.0.0.1:${port}`, attempts: 2, backoffMs: 10 });
      const error = await client.instanceFile('x').catch((e: unknown) => e);
      assert.ok(error instanceof OrthancError);
      assert.equal(error.transient, true);
      assert.equal(error.details.code, 'ECONNREFUSED');
      assert.match(error.message, new RegExp(`is Orthanc reachable at http://127\\.0\\.0\\.1:${port}`));
    });
  });
});
