/**
 * The CLI without a server: argument parsing (commander) into API calls and exit codes, with a fetch
 * stub that records what was asked; the formatters; doctor's findings from given reports.
 */
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createApi, defaultUrl } from '../../shared/cli/api';
import { clockFinding, keyFinding, queueFindings, statusFindings } from '../../shared/cli/doctor';
import { formatEcho, formatFindings, formatJobs, shorten, table, when, type ListedJob } from '../../shared/cli/format';
import type { Io } from '../../shared/cli/io';
import { runCli } from '../../shared/cli/program';
import { runDoctor } from '../../shared/operator/doctor';
import { echoDestination } from '../../shared/operator/echo';
import type { HealthReport } from '../../shared/operator/health';

const KEY = 'unit-test-function-key-0123456789abcdef';

interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
}

function harness(answers: Record<string, { status: number; body?: unknown }> = {}) {
  const calls: Call[] = [];
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
  const fakeFetch = (async (url: string, init: RequestInit) => {
    calls.push({ method: init.method ?? 'GET', url, headers: init.headers as Record<string, string> });
    const route = new URL(url).pathname.replace(/^\/api\//, '');
    const answer = answers[route] ?? { status: 404 };
    return new Response(answer.body === undefined ? '' : JSON.stringify(answer.body), {
      status: answer.status,
      headers: { 'content-type': 'application/json', date: new Date().toUTCString() },
    });
  }) as typeof fetch;
  const cli = (argv: string[], env: NodeJS.ProcessEnv = { AUTOMATION_FUNCTION_KEY: KEY }) =>
    runCli(argv, { io, env, fetch: fakeFetch, sleep: async () => undefined });
  return { calls, out, err, cli };
}

const healthy: HealthReport = {
  ok: true,
  checkedAt: '2026-12-02T03:00:00.000Z',
  orthanc: { ok: true, version: '1.10.1' },
  storage: { ok: true },
  destinations: {
    PACS: { aet: 'PACS', host: '10.0.0.5', port: 104, configured: true, echo: 'ok', checkedAt: '2026-12-02T03:00:00Z' },
  },
  dicomweb: {},
  queues: { evaluate: { depth: 0, poison: 0 } },
  changeFeed: { cursor: 12 },
};

describe('autorthanc argument parsing', () => {
  it('talks to 127.0.0.1:${FUNCTIONS_HTTP_PORT:-7071} with the key in a header, never the URL', async () => {
    assert.equal(defaultUrl({}), 'http://127.0.0.1:7071');
    assert.equal(defaultUrl({ FUNCTIONS_HTTP_PORT: '7999' }), 'http://127.0.0.1:7999');
    const h = harness({ status: { status: 200, body: healthy } });
    assert.equal(await h.cli(['status'], { AUTOMATION_FUNCTION_KEY: KEY, FUNCTIONS_HTTP_PORT: '7999' }), 0);
    assert.equal(h.calls[0].url, 'http://127.0.0.1:7999/api/status');
    assert.equal(h.calls[0].headers['x-functions-key'], KEY);
    assert.ok(!h.calls[0].url.includes(KEY));
    await h.cli(['--url', 'https://app.example:8443/', '--key', 'other-key', 'status']);
    assert.equal(h.calls[1].url, 'https://app.example:8443/api/status');
    assert.equal(h.calls[1].headers['x-functions-key'], 'other-key', '--key wins over the variable');
  });

  it('builds the jobs query from --status, --rule, --limit and --days', async () => {
    const h = harness({ jobs: { status: 200, body: { jobs: [] } } });
    assert.equal(await h.cli(['jobs', '--status', 'failed', '--rule', 'ct_rule', '--limit', '10']), 0);
    const url = new URL(h.calls[0].url);
    assert.deepEqual(Object.fromEntries(url.searchParams), {
      limit: '10',
      days: '7',
      status: 'failed',
      rule: 'ct_rule',
    });
    assert.deepEqual(h.out, ['No jobs match.']);
  });

  it('exits 2 on bad arguments, before any request', async () => {
    const h = harness();
    for (const argv of [
      ['jobs', '--status', 'lost'],
      ['jobs', '--limit', '0'],
      ['jobs', '--days', 'x'],
      ['job'],
      ['retry'],
      ['retry', 'abcdefgh12', '--failed'],
      ['frobnicate'],
      ['--url', 'ftp://host', 'status'],
      ['--url', 'http://user:pw@host', 'status'],
      ['setup', '--yes', '--env-path', join(mkdtempSync(join(tmpdir(), 'cli-args-')), '.env'), '--aet', 'A\\B'],
      ['setup', '--destination'],
      ['backup'],
      ['restore'],
      ['restore', 'state.tar.gz', '--bogus'],
    ])
      assert.equal(await h.cli(argv), 2, `autorthanc ${argv.join(' ')}`);
    assert.equal(h.calls.length, 0, 'nothing was sent');
    assert.ok(
      h.err.some((l) => l.includes('--aet (ORTHANC_AET_NAME): AE title must be')),
      h.err.join('\n'),
    );
    assert.ok(!h.err.join('\n').includes('pw@'), 'a URL with credentials is not echoed back');
  });

  it('maps answers to exit codes: refused key and unreachable 2, not found 1, found 0', async () => {
    const refused = harness({ status: { status: 401 } });
    assert.equal(await refused.cli(['status']), 2);
    assert.match(refused.err.join('\n'), /refused the key \(HTTP 401\)/);
    assert.ok(!refused.err.join('\n').includes(KEY));
    const h = harness({
      'jobs/abcdefgh12': { status: 404, body: { error: 'no job abcdefgh12' } },
      'jobs/abcdefgh12/retry': {
        status: 409,
        body: { error: 'job abcdefgh12 is running; only failed jobs can be retried' },
      },
      'destinations/PACS/echo': {
        status: 200,
        body: { name: 'PACS', kind: 'dicom', ok: false, milliseconds: 12, reason: 'refused', checkedAt: '' },
      },
    });
    assert.equal(await h.cli(['job', 'abcdefgh12']), 1);
    assert.equal(await h.cli(['retry', 'abcdefgh12']), 1);
    assert.equal(await h.cli(['test', 'PACS']), 1);
    assert.equal(await h.cli(['--json', 'job', 'abcdefgh12']), 1);
    assert.deepEqual(JSON.parse(h.out.at(-1)!), { error: 'no job abcdefgh12' });
    const down = harness();
    const api = createApi({
      url: 'http://127.0.0.1:1',
      fetch: () => Promise.reject(Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } })),
    });
    await assert.rejects(api.get('status'), /cannot reach the app at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    assert.equal(down.calls.length, 0);
  });

  it('retry --failed pages through the failed jobs and retries each', async () => {
    const h = harness({
      jobs: { status: 200, body: { jobs: [{ id: 'job-aaaaaaaa' }, { id: 'job-bbbbbbbb' }] } },
      'jobs/job-aaaaaaaa/retry': { status: 202, body: { step: 'download' } },
      'jobs/job-bbbbbbbb/retry': { status: 202, body: { step: 'forward' } },
    });
    assert.equal(await h.cli(['--json', 'retry', '--failed', '--days', '3']), 0);
    assert.equal(new URL(h.calls[0].url).searchParams.get('status'), 'failed');
    assert.deepEqual(
      h.calls.slice(1).map((c) => [c.method, new URL(c.url).pathname]),
      [
        ['POST', '/api/jobs/job-aaaaaaaa/retry'],
        ['POST', '/api/jobs/job-bbbbbbbb/retry'],
      ],
    );
    assert.equal(h.calls[1].headers['Content-Type'], 'application/json');
    assert.equal((JSON.parse(h.out.join('\n')) as { retried: number }).retried, 2);
  });

  it('encodes a job id or a destination name into the path', async () => {
    const h = harness();
    await h.cli(['job', '../status']);
    assert.equal(new URL(h.calls[0].url).pathname, '/api/jobs/..%2Fstatus');
  });
});

describe('autorthanc output', () => {
  it('aligns tables and shortens long text', () => {
    assert.deepEqual(table(['A', 'BB'], [['xxx', 'y']]), ['A    BB', 'xxx  y']);
    assert.equal(shorten('a\n  b', 10), 'a b');
    assert.equal(shorten('x'.repeat(20), 10), `${'x'.repeat(9)}…`);
    assert.equal(when('2026-12-02T03:04:05.678Z'), '2026-12-02 03:04:05Z');
  });

  it('lists jobs with their state and the start of their error', () => {
    const job = {
      id: 'job-1',
      ruleId: 'r',
      status: 'failed',
      currentStep: 'anonymise',
      percent: 50,
      createdAt: '2026-12-02T03:04:05.000Z',
      error: 'patient not in the mapping file',
    } as ListedJob;
    const lines = formatJobs([job], true);
    assert.match(
      lines[1],
      /^job-1\s+r\s+failed\s+anonymise\s+50%\s+2026-12-02 03:04:05Z\s+patient not in the mapping file$/,
    );
    assert.match(lines.at(-1)!, /more jobs/);
  });

  it('says how an echo went and flags one over a second as slow', () => {
    const base = { name: 'PACS', kind: 'dicom' as const, checkedAt: '' };
    assert.equal(formatEcho({ ...base, ok: true, milliseconds: 40 }), 'C-ECHO PACS: ok in 40 ms');
    assert.match(formatEcho({ ...base, ok: true, milliseconds: 1500 }), /ok in 1\.5 s \(slow: over 1 s\)/);
    assert.match(formatEcho({ ...base, ok: false, milliseconds: 3, reason: 'refused' }), /FAILED after 3 ms: refused/);
    assert.deepEqual(formatFindings([{ name: 'x', ok: false, detail: 'd' }]), ['FAIL x: d', '1 problem(s) found.']);
  });
});

describe('autorthanc doctor findings', () => {
  it('turns the status report into findings: Orthanc, storage, each destination', () => {
    const down = {
      ...healthy,
      orthanc: { ok: false, error: 'HTTP 401' },
      destinations: { PACS: { ...healthy.destinations!.PACS, echo: 'failed' as const, reason: 'refused' } },
    };
    const findings = statusFindings(down);
    assert.deepEqual(
      findings.map((f) => [f.name, f.ok]),
      [
        ['Orthanc', false],
        ['Table storage', true],
        ['destination PACS', false],
      ],
    );
    assert.match(findings[0].detail, /HTTP 401/);
  });

  it('flags poisoned and stuck queues, not draining ones', () => {
    const first = {
      evaluate: { depth: 5, poison: 0 },
      'step-download': { depth: 3, poison: 0 },
      'step-zip': { depth: 0, poison: 2 },
    };
    const later = {
      evaluate: { depth: 1, poison: 0 },
      'step-download': { depth: 3, poison: 0 },
      'step-zip': { depth: 0, poison: 2 },
    };
    assert.deepEqual(
      queueFindings(first, later, 5).map((f) => [f.name, f.ok]),
      [
        ['queue evaluate', true],
        ['queue step-download', false],
        ['queue step-zip', false],
      ],
    );
    assert.deepEqual(queueFindings({ evaluate: { depth: 0, poison: 0 } }, undefined, 5), [
      { name: 'queues', ok: true, detail: 'empty, no poisoned messages' },
    ]);
  });

  it('checks the key with the config secret rule and the clock against the app', () => {
    assert.equal(keyFinding(KEY).ok, true);
    assert.match(keyFinding('replace-me').detail, /placeholder/);
    assert.match(keyFinding('short').detail, /5 bytes/);
    assert.equal(keyFinding(undefined).ok, false);
    const now = Date.parse('2026-12-02T03:00:00Z');
    assert.equal(clockFinding(new Date(now - 2000), now).ok, true);
    assert.equal(clockFinding(new Date(now - 120_000), now).ok, false);
    assert.match(clockFinding(new Date(now + 120_000), now).detail, /120 s behind the app/);
  });
});

describe("the app's half: GET /api/doctor and the destination echo", () => {
  const config = {
    storagePath: '',
    stagingPath: '',
    anonymisationSecret: 'a'.repeat(8) + 'b'.repeat(40),
    orthanc: { password: 'short' },
    alerts: { diskFreePercent: 10 },
  };

  it('finds a folder full or not writable, a weak secret and a skewed clock', async () => {
    const storage = mkdtempSync(join(tmpdir(), 'doctor-'));
    const report = await runDoctor({
      config: { ...config, storagePath: storage, stagingPath: join(storage, 'missing') },
      orthanc: { now: async () => new Date(Date.parse('2026-12-02T03:00:00Z')) },
      diskFree: async () => ({ freeBytes: 2 ** 30, totalBytes: 100 * 2 ** 30, freePercent: 1 }),
      now: () => new Date(Date.parse('2026-12-02T03:02:00Z')),
    });
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    assert.match(byName['storage folder'].detail, /writable, 1\.0 GiB free \(1%\), below 10%/);
    assert.equal(byName['storage folder'].ok, false);
    assert.match(byName['staging folder'].detail, /not writable: ENOENT/);
    assert.equal(byName['secret AUTOMATION_ANONYMISATION_SECRET'].ok, true);
    assert.match(byName['secret ORTHANC_PASSWORD'].detail, /is 5 bytes/);
    assert.match(byName['clock against Orthanc'].detail, /120 s ahead of Orthanc/);
    assert.ok(!JSON.stringify(report).includes('short'), 'no secret value in the report');
  });

  it('echoes a DICOM destination through Orthanc and refreshes its status; unknown names are undefined', async () => {
    const echoes = new Map([['PACS', { ...healthy.destinations!.PACS }]]);
    let t = 0;
    const deps = {
      orthanc: { echo: async () => ({ ok: false as const, reason: 'association refused' }) },
      modalities: { PACS: {} },
      dicomweb: { WEB: { probe: async () => ({ reachable: true }) } },
      echoes,
      now: () => (t += 25),
    };
    const answer = await echoDestination(deps, 'PACS');
    assert.deepEqual(
      { ...answer, checkedAt: '' },
      {
        name: 'PACS',
        kind: 'dicom',
        ok: false,
        milliseconds: 25,
        reason: 'association refused',
        checkedAt: '',
      },
    );
    assert.equal(echoes.get('PACS')!.echo, 'failed');
    assert.equal((await echoDestination(deps, 'WEB'))?.ok, true);
    assert.equal(await echoDestination(deps, 'constructor'), undefined, 'only own names');
    assert.equal(await echoDestination(deps, 'NOPE'), undefined);
  });
});
