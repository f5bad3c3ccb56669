/**
 * The devhost against the checklist of the Functions host's semantics, driving a plain-JS sample app
 * (not this project's) on real Azurite.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { QueueServiceClient } from '@azure/storage-queue';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { freePort, makeTempDir, spawnManaged, waitFor, type ManagedProcess } from '../support/process';

const REPO = path.resolve(__dirname, '../..');
const APP = path.join(__dirname, 'sample-app');

interface Host {
  url: string;
  proc: ManagedProcess;
}

describe('devhost', { timeout: 180_000 }, () => {
  let azurite: AzuriteServer;
  let queues: QueueServiceClient;
  let work: string;
  let logFile: string;
  let secrets: string;
  const keys = { masterKey: 'sample-master-key', functionKeys: { default: 'sample-function-key' } };
  const hosts: ManagedProcess[] = [];

  async function startHost(options: { enforceAuth?: boolean; env?: Record<string, string> } = {}): Promise<Host> {
    const port = await freePort();
    const args = [
      '--import',
      'tsx',
      path.join(REPO, 'devhost/cli.ts'),
      '--app',
      APP,
      '--port',
      String(port),
      '--secrets',
      secrets,
    ];
    if (options.enforceAuth) args.push('--enforce-auth');
    const proc = spawnManaged(process.execPath, args, {
      cwd: REPO,
      env: {
        ...process.env,
        AzureWebJobsStorage: azurite.connectionString,
        SAMPLE_LOG: logFile,
        AzureFunctionsWebHost__hostid: 'sample-host',
        AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
        ...options.env,
      },
      name: 'devhost',
    });
    hosts.push(proc);
    await waitFor(() => proc.output().includes('Host started'), {
      timeoutMs: 30_000,
      description: 'the devhost',
      onTimeout: () => proc.output(),
    });
    return { url: `http://127.0.0.1:${port}`, proc };
  }

  function records(): Array<Record<string, unknown>> {
    if (!existsSync(logFile)) return [];
    return readFileSync(logFile, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  async function peekAll(queue: string): Promise<string[]> {
    const client = queues.getQueueClient(queue);
    if (!(await client.exists())) return [];
    const messages = await client.peekMessages({ numberOfMessages: 32 });
    return messages.peekedMessageItems.map((m) => m.messageText);
  }

  async function send(queue: string, text: string, encode = true): Promise<void> {
    const client = queues.getQueueClient(queue);
    await client.createIfNotExists();
    await client.sendMessage(encode ? Buffer.from(text).toString('base64') : text);
  }

  before(async () => {
    azurite = await startAzurite();
    queues = QueueServiceClient.fromConnectionString(azurite.connectionString);
    work = makeTempDir('devhost-test-');
    logFile = path.join(work, 'log.jsonl');
    secrets = path.join(work, 'secrets.json');
    writeFileSync(secrets, JSON.stringify(keys));
  });
  after(async () => {
    for (const h of hosts) await h.stop('SIGKILL');
    await azurite?.stop();
  });

  describe('HTTP', () => {
    let host: Host;
    before(async () => {
      host = await startHost({ enforceAuth: true, env: { SAMPLE_GREETING: 'from the environment' } });
    });
    after(async () => host.proc.stop());

    it('lists every function like func start', () => {
      const out = host.proc.output();
      assert.match(out, /hello: \[GET\] http:\/\/127\.0\.0\.1:\d+\/api\/hello\/\{name\}\/\{id:int\?\}/);
      assert.match(out, /failing: queueTrigger \(fails\)/);
      assert.match(out, /hourly: timerTrigger \(0 0 \* \* \* \*\)/);
      assert.match(out, /ghost: queueTrigger \(ghost-queue\)/, '%setting% from local.settings.json, lowercased');
    });

    it('applies local.settings.json Values unless the environment has them', async () => {
      const answer = await fetch(`${host.url}/api/settings`);
      assert.deepEqual(await answer.json(), { greeting: 'from the environment', ghost: 'Ghost-Queue' });
    });

    it('runs log hooks, which may rewrite user logs', async () => {
      await fetch(`${host.url}/api/hello/hooks`);
      await waitFor(() => host.proc.output().includes('hello: greeting hooks [hooked in hello]'), {
        timeoutMs: 5_000,
        description: 'the hooked log line',
      });
    });

    it('invokes a timer through the admin API with the master key only', async () => {
      const admin = (key?: string) =>
        fetch(`${host.url}/admin/functions/daily`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(key ? { 'x-functions-key': key } : {}) },
          body: '{"input":""}',
        });
      const denied = await admin();
      assert.equal(denied.status, 401);
      assert.equal((await admin(keys.functionKeys.default)).status, 401, 'a function key is not enough');
      assert.equal(records().filter((r) => r.fn === 'daily').length, 0);
      assert.equal((await admin(keys.masterKey)).status, 202);
      await waitFor(() => records().some((r) => r.fn === 'daily'), { timeoutMs: 5_000, description: 'the timer run' });
      const run = records().find((r) => r.fn === 'daily') as {
        timer: {
          isPastDue: boolean;
          schedule: { adjustForDST: boolean };
          scheduleStatus: { last: string; next: string; lastUpdated: string };
        };
      };
      assert.equal(run.timer.isPastDue, false);
      assert.deepEqual(run.timer.schedule, { adjustForDST: true });
      assert.deepEqual(
        Object.keys(run.timer.scheduleStatus).sort(),
        ['last', 'lastUpdated', 'next'],
        'camel-cased by the library',
      );
      assert.equal(
        (
          await fetch(`${host.url}/admin/functions/nosuch`, {
            method: 'POST',
            headers: { 'x-functions-key': keys.masterKey },
            body: '{}',
          })
        ).status,
        404,
      );
    });

    it('routes with parameters, query and hooks through the real library', async () => {
      const answer = await fetch(`${host.url}/api/hello/world/42?q=x`);
      assert.equal(answer.status, 200);
      assert.equal(answer.headers.get('content-type'), 'application/json');
      assert.equal(answer.headers.get('x-pre-invocation'), 'ran');
      assert.deepEqual(await answer.json(), { name: 'world', id: '42', q: 'x' });
      assert.equal((await fetch(`${host.url}/api/hello/world/notanint`)).status, 404, 'int constraint');
    });

    it('loads ES module files of the app (import) beside CommonJS ones (require)', async () => {
      const answer = await fetch(`${host.url}/api/esm`);
      assert.equal(await answer.text(), 'loaded as ESM');
    });

    it('answers 404 with an empty body for unknown routes and other methods', async () => {
      for (const [method, route] of [
        ['GET', '/api/nope'],
        ['POST', '/api/hello/world'],
        ['GET', '/nope'],
      ]) {
        const answer = await fetch(`${host.url}${route}`, { method });
        assert.equal(answer.status, 404, `${method} ${route}`);
        assert.equal(await answer.text(), '');
      }
    });

    it('answers 401 with an empty body without a valid key, and accepts header or code', async () => {
      const post = (headers: Record<string, string>, query = '') =>
        fetch(`${host.url}/api/secure${query}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: '{"c":3}',
        });
      const missing = await post({});
      assert.equal(missing.status, 401);
      assert.equal(await missing.text(), '');
      assert.equal((await post({ 'x-functions-key': 'wrong' })).status, 401);
      const byHeader = await post({ 'x-functions-key': keys.functionKeys.default });
      assert.equal(byHeader.status, 201);
      assert.match(byHeader.headers.get('set-cookie') ?? '', /sample=yes.*HttpOnly/);
      assert.equal((await post({}, `?code=${keys.masterKey}`)).status, 201);
    });

    it('fans an array output out to one message per element, objects as indented JSON', async () => {
      const messages = (await peekAll('fanout-out')).map((m) => Buffer.from(m, 'base64').toString('utf8'));
      assert.equal(messages.length, 6); // two successful POSTs above
      assert.equal(messages[0], JSON.stringify({ a: 1, nested: { b: 2 } }, null, 2));
      assert.equal(messages[1], 'plain text');
      assert.deepEqual(JSON.parse(messages[2]), { c: 3 });
    });

    it('answers 500 with an empty body when the handler throws, 200 empty for undefined', async () => {
      const boom = await fetch(`${host.url}/api/boom`);
      assert.equal(boom.status, 500);
      assert.equal(await boom.text(), '');
      const nothing = await fetch(`${host.url}/api/nothing`);
      assert.equal(nothing.status, 200);
      assert.equal(await nothing.text(), '');
    });
  });

  describe('HTTP without --enforce-auth', () => {
    it('bypasses keys as func start does', async () => {
      const host = await startHost();
      const answer = await fetch(`${host.url}/api/secure`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(answer.status, 201);
      await host.proc.stop();
    });
  });

  describe('Host header (DNS rebinding)', () => {
    /** A raw request, so the test chooses the Host header (fetch sets it from the URL). */
    function withHost(
      url: string,
      hostHeader: string | undefined,
      route = '/api/secure',
    ): Promise<{ status: number; body: string }> {
      const target = new URL(route, url);
      return new Promise((resolve, reject) => {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (hostHeader !== undefined) headers.host = hostHeader;
        const req = httpRequest(
          { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', headers, setHost: false },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          },
        );
        req.on('error', reject);
        req.end('{}');
      });
    }

    it('serves loopback names only (plus DEVHOST_ALLOWED_HOSTS), keys unchecked or not', async (t) => {
      const host = await startHost({ env: { DEVHOST_ALLOWED_HOSTS: 'proxy.internal' } });
      // Stopped even when an assertion fails: a leftover host would consume the next tests' queue messages.
      t.after(() => host.proc.stop());
      const port = new URL(host.url).port;
      const served: string[] = [];
      const refused: string[] = [];
      const cases: Array<[string | undefined, boolean]> = [
        [`127.0.0.1:${port}`, true],
        [`localhost:${port}`, true],
        ['LOCALHOST', true],
        [`app.localhost:${port}`, true],
        [`127.1.2.3:${port}`, true],
        [`[::1]:${port}`, true],
        [`proxy.internal:${port}`, true],
        [`attacker.example:${port}`, false],
        ['attacker.example', false],
        [`localhost.attacker.example:${port}`, false],
        [`127.0.0.1.nip.io:${port}`, false],
        [`10.0.0.5:${port}`, false],
        [`[::ffff:7f00:1]:${port}`, false],
        ['', false],
        [undefined, false],
      ];
      for (const [name, allowed] of cases) {
        const answer = await withHost(host.url, name);
        // The sample's `secure` function answers 201; keys are not checked on this host (the default).
        (answer.status === 201 ? served : refused).push(String(name));
        if (name === undefined) {
          // Node's HTTP server itself answers 400 to an HTTP/1.1 request without Host.
          assert.equal(answer.status, 400, 'a request without Host is refused');
        } else if (!allowed) {
          assert.equal(answer.status, 403, `Host ${name} is refused`);
          assert.match(answer.body, /loopback/);
        } else assert.equal(answer.status, 201, `Host ${name} is served`);
      }
      assert.match(host.proc.output(), /WARN Refused a request for Host "attacker\.example:\d+"/);
      console.log(
        `devhost Host check: served ${served.length} loopback/allowed names, refused ${refused.length} others (${refused.join(', ')})`,
      );
    });
  });

  describe('storage queues', () => {
    let host: Host;
    before(async () => {
      host = await startHost();
    });
    after(async () => host.proc.stop());

    it('moves a message that always fails to <queue>-poison unchanged after 5 attempts', async () => {
      await send('fails', '{"n":1}');
      await waitFor(async () => (await peekAll('fails-poison')).length === 1, {
        timeoutMs: 30_000,
        description: 'the poison message',
      });
      const seen = records()
        .filter((r) => r.fn === 'failing')
        .map((r) => r.dequeueCount);
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
      assert.equal((await peekAll('fails-poison'))[0], Buffer.from('{"n":1}').toString('base64'));
      assert.deepEqual(await peekAll('fails'), []);
    });

    it('poisons a non-base64 message at once, without invoking the function', async () => {
      const before = records().filter((r) => r.fn === 'jsonQueue').length;
      await send('json-in', 'this is not base64!', false);
      await waitFor(async () => (await peekAll('json-in-poison')).length === 1, {
        timeoutMs: 15_000,
        description: 'the undecodable message in poison',
      });
      assert.equal((await peekAll('json-in-poison'))[0], 'this is not base64!');
      assert.equal(records().filter((r) => r.fn === 'jsonQueue').length, before);
    });

    it('hands a JSON message to the handler as an object with trigger metadata', async () => {
      await send('json-in', '{"hello":"wörld","n":2}');
      await waitFor(() => records().some((r) => r.fn === 'jsonQueue'), {
        timeoutMs: 15_000,
        description: 'the JSON message',
      });
      const record = records().find((r) => r.fn === 'jsonQueue')!;
      assert.equal(record.type, 'object');
      assert.deepEqual(record.message, { hello: 'wörld', n: 2 });
      assert.equal(record.dequeueCount, 1);
      assert.equal(typeof record.id, 'string');
    });

    it('invokes a queue function through the admin API with its input', async () => {
      const answer = await fetch(`${host.url}/admin/functions/jsonQueue`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ input: '{"via":"admin"}' }),
      });
      assert.equal(answer.status, 202, 'keys are not checked without --enforce-auth');
      await waitFor(
        () => records().some((r) => r.fn === 'jsonQueue' && (r.message as { via?: string }).via === 'admin'),
        { timeoutMs: 5_000, description: 'the admin invocation' },
      );
    });

    it('does not create a missing trigger queue (it backs off instead)', async () => {
      assert.equal(await queues.getQueueClient('ghost-queue').exists(), false);
    });

    it('writes no output when the handler throws', async () => {
      await send('throw-out', 'x');
      await waitFor(async () => (await peekAll('throw-out-poison')).length === 1, {
        timeoutMs: 30_000,
        description: 'the failing message in poison',
      });
      assert.deepEqual(await peekAll('leaked-out'), []);
    });

    it('finishes in-flight work before exiting on SIGTERM', async () => {
      // Only the host under test may pick up the message.
      await host.proc.stop();
      const slowHost = await startHost();
      await send('slow-in', 'graceful');
      await waitFor(() => records().some((r) => r.fn === 'slow' && r.phase === 'start'), {
        timeoutMs: 15_000,
        description: 'the slow handler to start',
      });
      await slowHost.proc.stop('SIGTERM', 30_000);
      assert.ok(
        records().some((r) => r.fn === 'slow' && r.phase === 'end'),
        'the handler ran to completion',
      );
      assert.equal(slowHost.proc.child.exitCode, 0);
      assert.ok(records().some((r) => r.hook === 'appTerminate'));
    });
  });

  describe('shutdown and polling', () => {
    it('releases a message whose handler outlasts the shutdown grace, runs appTerminate, exits 0', async () => {
      const host = await startHost({ env: { DEVHOST_SHUTDOWN_GRACE_MS: '500' } });
      const terminations = records().filter((r) => r.hook === 'appTerminate').length;
      await send('stuck-in', 'stuck');
      await waitFor(() => records().some((r) => r.fn === 'stuck' && r.phase === 'start'), {
        timeoutMs: 15_000,
        description: 'the stuck handler to start',
      });
      assert.deepEqual(await peekAll('stuck-in'), [], 'invisible while its handler runs');
      const t0 = Date.now();
      await host.proc.stop('SIGTERM', 20_000);
      assert.equal(host.proc.child.exitCode, 0);
      assert.ok(Date.now() - t0 < 8_000, `stopped within the grace bound (took ${Date.now() - t0} ms)`);
      assert.equal(records().filter((r) => r.hook === 'appTerminate').length, terminations + 1);
      assert.deepEqual(
        await peekAll('stuck-in'),
        [Buffer.from('stuck').toString('base64')],
        'visible again, body unchanged',
      );
      assert.ok(!records().some((r) => r.fn === 'stuck' && r.phase === 'end'));
      await queues.getQueueClient('stuck-in').clearMessages(); // no later host may pick it up
    });

    it('polls at once after a write from the same host, however long its back-off', async () => {
      // A one-minute maximum back-off (host.json override through the environment, as the host allows).
      const host = await startHost({
        env: { AzureFunctionsJobHost__extensions__queues__maxPollingInterval: '00:01:00' },
      });
      await send('chain-in', '{"warmup":true}'); // the queue exists; the listener sees it once, then backs off
      await waitFor(() => records().some((r) => r.fn === 'chained'), {
        timeoutMs: 10_000,
        description: 'the warm-up message',
      });
      // Empty polls meanwhile: 100 ms + rand(0.8-1.2) x 2^(n-1) x 100 ms each. After 9 s the listener is
      // inside a 5-8 s sleep with at least ~1.5 s left, so only the same-host wake-up can beat 1 s.
      await new Promise((resolve) => setTimeout(resolve, 9_000));
      const answer = await fetch(`${host.url}/api/enqueue`, { method: 'POST' });
      assert.equal(answer.status, 202);
      await waitFor(() => records().some((r) => r.fn === 'chained' && typeof r.sentAt === 'number'), {
        timeoutMs: 60_000,
        description: 'the chained message',
      });
      const chained = records().find((r) => r.fn === 'chained' && typeof r.sentAt === 'number') as {
        sentAt: number;
        receivedAt: number;
      };
      assert.ok(
        chained.receivedAt - chained.sentAt < 1_000,
        `picked up ${chained.receivedAt - chained.sentAt} ms after the write`,
      );
      await host.proc.stop();
    });
  });

  describe('concurrency and retries', () => {
    it('runs batchSize + newBatchThreshold messages at once at most, and more than one', async () => {
      // All waiting before the host starts, so its first fetch finds a full batch.
      for (let i = 0; i < 14; i += 1) await send('parallel-in', `m${i}`);
      const host = await startHost(); // sample host.json: batchSize 4, newBatchThreshold 2
      await waitFor(() => records().filter((r) => r.fn === 'parallel' && r.phase === 'end').length === 14, {
        timeoutMs: 30_000,
        description: 'all 14 messages',
      });
      await host.proc.stop();
      let running = 0;
      let peak = 0;
      const events = records()
        .filter((r) => r.fn === 'parallel')
        .map((r) => ({ at: r.at as number, delta: r.phase === 'start' ? 1 : -1 }));
      for (const e of events.sort((a, b) => a.at - b.at || a.delta - b.delta)) {
        running += e.delta;
        peak = Math.max(peak, running);
      }
      assert.ok(peak >= 4, `a batch runs in parallel (peak ${peak})`);
      assert.ok(peak <= 6, `never more than 4 + 2 at once (peak ${peak})`);
    });

    it('retries a failed message only after visibilityTimeout, with dequeueCount rising', async () => {
      const host = await startHost({
        env: { AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:02' },
      });
      await send('flaky-in', 'flaky');
      await waitFor(() => records().filter((r) => r.fn === 'flaky').length === 3, {
        timeoutMs: 30_000,
        description: 'three attempts',
      });
      await new Promise((resolve) => setTimeout(resolve, 500));
      await host.proc.stop();
      const attempts = records().filter((r) => r.fn === 'flaky') as Array<{ dequeueCount: number; at: number }>;
      assert.deepEqual(
        attempts.map((a) => a.dequeueCount),
        [1, 2, 3],
      );
      for (let i = 1; i < attempts.length; i += 1) {
        const gap = attempts[i].at - attempts[i - 1].at;
        assert.ok(gap >= 1_900, `attempt ${i + 1} waited for the visibility timeout (${gap} ms)`);
      }
      assert.deepEqual(await peekAll('flaky-in'), [], 'completed after the third attempt');
      assert.deepEqual(await peekAll('flaky-in-poison'), []);
    });
  });

  describe('lease renewal', () => {
    it('keeps a running message invisible past its lease by renewing it, and invokes it once', async () => {
      // A 2 s lease (the host's is 10 min) renewed every second; the handler runs 3 s.
      const host = await startHost({ env: { DEVHOST_QUEUE_LEASE_SECONDS: '2' } });
      const starts = () =>
        records().filter((r) => r.fn === 'slow' && r.phase === 'start' && r.message === 'lease').length;
      await send('slow-in', 'lease');
      await waitFor(() => starts() === 1, { timeoutMs: 15_000, description: 'the slow handler to start' });
      const until = Date.now() + 2_600;
      while (Date.now() < until) {
        assert.deepEqual(await peekAll('slow-in'), [], 'invisible while its handler runs, past the 2 s lease');
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      await waitFor(() => records().some((r) => r.fn === 'slow' && r.phase === 'end' && r.message === 'lease'), {
        timeoutMs: 10_000,
        description: 'the slow handler to end',
      });
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      await host.proc.stop();
      assert.equal(
        starts(),
        1,
        `never handed out a second time:\n${host.proc
          .output()
          .split('\n')
          .filter((l) => /slow|lease|complete/i.test(l))
          .join('\n')}`,
      );
      assert.deepEqual(await peekAll('slow-in'), [], 'completed');
    });
  });

  describe('start-up errors', () => {
    it('refuses an app that enables HTTP streaming, with a clear message', async () => {
      const port = await freePort();
      const proc = spawnManaged(
        process.execPath,
        [
          '--import',
          'tsx',
          path.join(REPO, 'devhost/cli.ts'),
          '--app',
          path.join(__dirname, 'streaming-app'),
          '--port',
          String(port),
          '--secrets',
          secrets,
        ],
        { cwd: REPO, name: 'devhost-streaming' },
      );
      hosts.push(proc);
      const code = await proc.exited;
      assert.equal(code, 1);
      assert.match(proc.output(), /enables HTTP streaming .*enableHttpStream/);
      assert.doesNotMatch(proc.output(), /Host started/);
    });
  });

  describe('timers', () => {
    it('fires once with isPastDue when an occurrence was missed while the host was down', async () => {
      const first = await startHost();
      const blob = BlobServiceClient.fromConnectionString(azurite.connectionString)
        .getContainerClient('azure-webjobs-hosts')
        .getBlockBlobClient('timers/sample-host/Host.Functions.hourly/status');
      await waitFor(() => blob.exists(), { timeoutMs: 10_000, description: 'the schedule status blob' });
      await first.proc.stop();
      // The host was down across an occurrence: the recorded Next is now in the past.
      const missed = new Date(Date.now() - 60_000);
      const status = JSON.stringify({
        Last: new Date(Date.now() - 3_660_000).toISOString(),
        Next: missed.toISOString(),
        LastUpdated: new Date(Date.now() - 3_660_000).toISOString(),
      });
      await blob.upload(status, Buffer.byteLength(status));
      const second = await startHost();
      await waitFor(() => records().some((r) => r.fn === 'hourly'), {
        timeoutMs: 15_000,
        description: 'the past-due run',
      });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const runs = records().filter((r) => r.fn === 'hourly');
      assert.equal(runs.length, 1, 'exactly one catch-up run');
      assert.equal(runs[0].isPastDue, true);
      assert.equal(runs[0].next, missed.toISOString());
      const recorded = JSON.parse((await blob.downloadToBuffer()).toString()) as { Next: string };
      assert.ok(Date.parse(recorded.Next) > Date.now(), 'next occurrence recorded');
      await second.proc.stop();
    });

    it('runs a runOnStartup timer at start, and never overlaps runs that outlast the period', async () => {
      const host = await startHost({ env: { SAMPLE_TICKER: '1' } });
      const started = Date.now();
      await waitFor(() => records().filter((r) => r.fn === 'ticker' && r.phase === 'end').length >= 3, {
        timeoutMs: 20_000,
        description: 'three ticker runs',
      });
      await host.proc.stop();
      const runs = records().filter((r) => r.fn === 'ticker') as Array<{
        phase: string;
        at: number;
        isPastDue?: boolean;
      }>;
      assert.ok(runs[0].at - started < 1_000, `the first run came at start-up (${runs[0].at - started} ms)`);
      assert.equal(runs[0].isPastDue, false);
      for (let i = 0; i < runs.length; i += 1)
        assert.equal(runs[i].phase, i % 2 === 0 ? 'start' : 'end', `runs alternate start/end: ${JSON.stringify(runs)}`);
    });
  });
});
