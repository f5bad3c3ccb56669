/**
 * Access: with keys enforced (as the container does), every endpoint except health answers 401
 * without a valid key, anonymous health carries nothing but its status (up or down), and Orthanc's
 * credentials never appear in logs or API output. The routes come from the host's own listing of
 * the app's registrations, so endpoints added later are covered.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateStudy } from '../support/dicom';
import { startStack, type Stack } from '../e2e/stack';
import { figure, sleep } from './common';

/** Endpoints that may answer without a key (a load balancer's probe). */
const ANONYMOUS = new Set(['health']);
const SAMPLE_ID = '0123abcd-0123abcd-0123abcd-0123abcd-0123abcd';

interface Endpoint {
  name: string;
  method: string;
  path: string;
}

/** The devhost prints `name: [GET,POST] http://host:port/api/route` for every HTTP function. */
function listedEndpoints(log: string): { http: Endpoint[]; functions: string[] } {
  const http: Endpoint[] = [];
  const functions: string[] = [];
  for (const line of log.split('\n')) {
    const m = /^\s+([A-Za-z0-9_-]+): (?:\[([A-Z,]+)\] (https?:\/\/\S+)|(?:queueTrigger|timerTrigger) \()/.exec(line);
    if (!m) continue;
    functions.push(m[1]);
    if (!m[2]) continue;
    const url = new URL(m[3]);
    // Route parameters get a well-formed sample value, catch-alls a path segment.
    const route = decodeURIComponent(url.pathname)
      .replace(/\{\*[^}]+\}/g, 'x')
      .replace(/\{[^}]+\}/g, SAMPLE_ID);
    for (const method of m[2].split(',')) http.push({ name: m[1], method, path: route });
  }
  return { http, functions: [...new Set(functions)] };
}

describe('access with keys enforced', { timeout: 180_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ enforceAuth: true, stableAgeSeconds: 1 });
  });
  after(async () => stack?.stop());

  it('answers 401 on every endpoint but health without a valid key, and never shows Orthanc credentials', async () => {
    const { http, functions } = listedEndpoints(stack.host.logs());
    assert.ok(
      http.some((e) => e.name === 'orthancEvents') && http.some((e) => e.name === 'health'),
      `the listing was read: ${JSON.stringify(http)}`,
    );
    const secured = http.filter((e) => !ANONYMOUS.has(e.name));
    const keys: Array<[string, Record<string, string>]> = [
      ['no key', {}],
      ['wrong key', { 'x-functions-key': 'not-the-key' }],
      ['empty key', { 'x-functions-key': '' }],
      ['wrong code', {}],
    ];
    const open: string[] = [];
    let checks = 0;
    for (const e of secured) {
      for (const [label, headers] of keys) {
        const query = label === 'wrong code' ? '?code=not-the-key' : '';
        const answer = await fetch(`${stack.host.url}${e.path}${query}`, {
          method: e.method,
          headers: { 'Content-Type': 'application/json', ...headers },
          body: e.method === 'GET' || e.method === 'HEAD' ? undefined : '{}',
        });
        await answer.arrayBuffer();
        checks += 1;
        if (answer.status !== 401) open.push(`${e.method} ${e.path} (${label}): ${answer.status}`);
      }
    }
    // The admin API (invoke any function) needs the master key; a function key is not enough.
    for (const name of functions) {
      for (const headers of [{}, { 'x-functions-key': stack.functionKey }] as Array<Record<string, string>>) {
        const answer = await fetch(`${stack.host.url}/admin/functions/${name}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...headers },
          body: '{"input":""}',
        });
        await answer.arrayBuffer();
        checks += 1;
        if (answer.status !== 401) open.push(`POST /admin/functions/${name}: ${answer.status}`);
      }
    }
    const health = await fetch(`${stack.host.url}/api/health`);
    assert.equal(health.status, 200, 'health answers without a key');
    const healthText = await health.text();
    assert.deepEqual(JSON.parse(healthText), { status: 'ok' }, 'anonymous health carries nothing but the status');
    // The details moved behind the key: the same host's status report has them.
    const status = await fetch(`${stack.host.url}/api/status`, { headers: { 'x-functions-key': stack.functionKey } });
    const report = (await status.json()) as {
      ok: boolean;
      orthanc: { version?: string };
      queues?: Record<string, unknown>;
    };
    assert.equal(status.status, 200);
    assert.equal(report.orthanc.version, '1.10.1', 'the keyed status report has the details');
    assert.ok(report.queues && 'evaluate' in report.queues);

    // Collect API output with valid keys, including failure paths (Orthanc down), then search it and the logs.
    const outputs: string[] = [healthText];
    const anonymousHealth: Array<[number, string]> = [];
    const study = await generateStudy({
      patientID: 'P-ACCESS',
      studyDescription: 'access test',
      series: [{ seriesNumber: 1, instances: 1, rows: 64 }],
    });
    await stack.writeRule('access', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'access test' }],
    });
    await stack.sendStudy(study);
    await stack.waitForJobs(1, (j) => j.ruleId === 'access');
    const withKey = async () => {
      for (const e of secured) {
        const answer = await fetch(`${stack.host.url}${e.path}`, {
          method: e.method,
          headers: { 'Content-Type': 'application/json', 'x-functions-key': stack.functionKey },
          body: e.method === 'GET' ? undefined : '{}',
        });
        outputs.push(await answer.text());
      }
      const probe = await fetch(`${stack.host.url}/api/health`);
      const text = await probe.text();
      anonymousHealth.push([probe.status, text]);
      outputs.push(text);
    };
    await withKey();
    await stack.orthanc.stop();
    await withKey();
    const down = await fetch(`${stack.host.url}/api/status`, { headers: { 'x-functions-key': stack.functionKey } });
    const downReport = (await down.json()) as { orthanc: { ok: boolean; error?: string } };
    assert.equal(down.status, 503);
    assert.ok(downReport.orthanc.ok === false && downReport.orthanc.error, 'the keyed report says why Orthanc is down');
    await stack.post(`studies/${SAMPLE_ID}/run`, {});
    await sleep(3000);
    await stack.orthanc.start();
    outputs.push(JSON.stringify(await stack.jobs()));

    const { username, password } = stack.orthanc;
    const secrets = [password, Buffer.from(`${username}:${password}`).toString('base64'), `${username}:${password}`];
    const haystacks: Array<[string, string]> = [
      ['devhost log', stack.host.logs()],
      ['API output', outputs.join('\n')],
    ];
    const leaks = haystacks.flatMap(([where, text]) =>
      secrets
        .filter((s) => text.includes(s))
        .map((s) => `${where} contains ${s === password ? 'the password' : 'the credentials'}`),
    );
    const logKb = Math.round(stack.host.logs().length / 1024);
    // Up, then down (Orthanc stopped): the anonymous answer is the status word and nothing else.
    assert.deepEqual(
      anonymousHealth.map(([code, text]) => [code, JSON.parse(text) as unknown]),
      [
        [200, { status: 'ok' }],
        [503, { status: 'unavailable' }],
      ],
    );
    figure(
      `access: ${secured.length} endpoints (${secured.map((e) => `${e.method} ${e.path.replace(SAMPLE_ID, '{id}')}`).join(', ')}) + admin API for ${functions.length} functions → ${checks - open.length}/${checks} keyless or wrong-key requests answered 401; anonymous health exactly {status} up (200) and down (503); Orthanc credentials found ${leaks.length} times in ${logKb} KB of logs and ${outputs.length} API answers`,
    );
    assert.deepEqual(open, [], 'every secured endpoint refuses without a valid key');
    assert.deepEqual(leaks, []);
  });
});
