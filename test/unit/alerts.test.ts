/**
 * Webhook alerts (shared/alerts/) without servers: the three body formats, the rate limit per kind
 * and subject (in-memory claims with the Table adapter's contract), PHI kept out (a failed job's
 * reason as the runner redacted it, paths under the storage root), webhook URLs kept out of logs and
 * answers, a broken webhook costing a log line, the settings, and the timer's checks.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createAlerts, type AlertWebhook } from '../../shared/alerts/alerts';
import { runAlertChecks } from '../../shared/alerts/checks';
import { destinationDownAlert, diskFree, jobFailedAlert, malformedMessageAlert } from '../../shared/alerts/events';
import { alertBody, type Alert } from '../../shared/alerts/format';
import { alertSettings } from '../../shared/alerts/settings';
import { loadConfig } from '../../shared/config';
import { jobIdFor, newJob, type Job } from '../../shared/pipeline/job';
import { createRedaction } from '../../shared/pipeline/redact';
import { failPoisonedStep, runStep } from '../../shared/pipeline/runner';
import { PermanentError, type Logger, type PipelineStep } from '../../shared/vocabulary';
import { createMemoryAlertClaims } from '../support/memory-alert-claims';
import { createMemoryJobStore } from '../support/memory-storage';
import { createMemoryQueues } from '../support/memory-queues';

const ROOT = '/srv/automation/storage';
const PATIENT = { name: 'Zakrzewska^Agnieszka', id: 'PX-77321', description: 'Knee left MRI' };
const OUTPUT_NAME = `${PATIENT.id}-Zakrzewska-EX7`;
const TOKEN = 'T0KEN-abcdef0123456789';

interface Posted {
  url: string;
  body: Record<string, unknown>;
}

function fakeFetch(answer: (url: string) => Response | Promise<Response> = () => new Response('1')) {
  const posted: Posted[] = [];
  const fetchFn = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : input.toString();
    posted.push({ url, body: JSON.parse(init?.body as string) as Record<string, unknown> });
    return answer(url);
  }) as typeof fetch;
  return { posted, fetchFn };
}

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warn ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

function aJob(overrides: Partial<Job> = {}): Job {
  const input = {
    rule: {
      id: 'knee_export',
      checkOn: 'Study' as const,
      steps: ['download', 'zip'] as PipelineStep[],
      destinations: [],
    },
    level: 'Study' as const,
    resourceId: '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d',
    lastUpdate: '20260302T095500',
    source: 'webhook' as const,
    forced: false,
  };
  return { ...newJob(input, jobIdFor(input)), ...overrides };
}

const ALERT: Omit<Alert, 'at'> = {
  kind: 'job-failed',
  subject: 'knee_export/zip',
  title: 'Job 0123 (rule knee_export) failed at zip',
  text: 'ENOSPC <job:0123> *bold* & <b>',
  fields: { jobId: '0123', ruleId: 'knee_export', step: 'zip' },
};

describe('alert bodies', () => {
  const alert: Alert = { ...ALERT, at: '2026-03-02T10:00:00.000Z' };

  it('json: the alert as it is, with its source', () => {
    assert.deepEqual(alertBody(alert, 'json'), { source: 'autorthanc-functions', ...alert });
  });

  it('teams: a MessageCard whose facts are the fields, Markdown escaped', () => {
    const card = alertBody(alert, 'teams') as {
      '@type': string;
      summary: string;
      text: string;
      sections: Array<{ facts: Array<{ name: string; value: string }> }>;
    };
    assert.equal(card['@type'], 'MessageCard');
    assert.equal(card.summary, alert.title);
    assert.equal(card.text, 'ENOSPC \\<job:0123\\> \\*bold\\* & \\<b\\>');
    const facts = Object.fromEntries(card.sections[0].facts.map((f) => [f.name, f.value]));
    assert.deepEqual(facts, { kind: 'job-failed', jobId: '0123', ruleId: 'knee_export', step: 'zip', at: alert.at });
  });

  it('slack: text for the notification, blocks for the channel, & < > escaped', () => {
    const body = alertBody(alert, 'slack') as {
      text: string;
      blocks: Array<{ type: string; text?: { text: string } }>;
    };
    assert.equal(body.text, `${alert.title}: ENOSPC &lt;job:0123&gt; *bold* &amp; &lt;b&gt;`);
    assert.deepEqual(
      body.blocks.map((b) => b.type),
      ['section', 'context'],
    );
    assert.match(body.blocks[0].text!.text, /^\*Job 0123 \(rule knee_export\) failed at zip\*\n/);
    assert.match(JSON.stringify(body.blocks[1]), /jobId: 0123 · ruleId: knee_export · step: zip/);
  });
});

describe('sending alerts', () => {
  const webhooks: AlertWebhook[] = [
    { url: `https://hooks.slack.test/services/${TOKEN}`, format: 'slack' },
    { url: `https://example.webhook.office.test/webhookb2/${TOKEN}`, format: 'teams' },
    { url: `http://127.0.0.1:9/alerts?key=${TOKEN}`, format: 'json' },
  ];

  it('posts the alert to every webhook in its format', async () => {
    const { posted, fetchFn } = fakeFetch();
    const alerts = createAlerts({
      webhooks,
      minIntervalSeconds: 60,
      claims: createMemoryAlertClaims(),
      log: recordingLog(),
      fetch: fetchFn,
    });
    assert.equal(await alerts.notify(ALERT), 'sent');
    assert.deepEqual(
      posted.map((p) => p.url),
      webhooks.map((w) => w.url),
    );
    assert.equal(posted[1].body['@type'], 'MessageCard');
    assert.equal(posted[2].body.kind, 'job-failed');
    assert.equal(typeof posted[0].body.text, 'string');
  });

  it('sends the same kind and subject once per interval, other subjects and kinds meanwhile', async () => {
    let at = Date.parse('2026-03-02T10:00:00.000Z');
    const { posted, fetchFn } = fakeFetch();
    const alerts = createAlerts({
      webhooks: [webhooks[2]],
      minIntervalSeconds: 600,
      claims: createMemoryAlertClaims(),
      log: recordingLog(),
      fetch: fetchFn,
      now: () => new Date(at),
    });
    assert.equal(await alerts.notify(ALERT), 'sent');
    // Several instances (or redeliveries) raising it at once: one wins.
    const burst = await Promise.all([alerts.notify(ALERT), alerts.notify(ALERT), alerts.notify(ALERT)]);
    assert.deepEqual(burst, ['rate-limited', 'rate-limited', 'rate-limited']);
    assert.equal(await alerts.notify({ ...ALERT, subject: 'other_rule/zip' }), 'sent');
    assert.equal(await alerts.notify({ ...ALERT, kind: 'message-poisoned' }), 'sent');
    at += 599_000;
    assert.equal(await alerts.notify(ALERT), 'rate-limited');
    at += 1_000;
    assert.equal(await alerts.notify(ALERT), 'sent', 'the interval passed');
    assert.equal(posted.length, 4);
  });

  it('a burst from two instances sharing the claims sends once', async () => {
    const claims = createMemoryAlertClaims();
    const { posted, fetchFn } = fakeFetch();
    const make = () =>
      createAlerts({ webhooks: [webhooks[2]], minIntervalSeconds: 60, claims, log: recordingLog(), fetch: fetchFn });
    const [a, b] = [make(), make()];
    const outcomes = await Promise.all([a.notify(ALERT), b.notify(ALERT), a.notify(ALERT), b.notify(ALERT)]);
    assert.deepEqual(outcomes.filter((o) => o === 'sent').length, 1);
    assert.equal(posted.length, 1);
  });

  it('never throws: a refusing, unreachable or hanging webhook, or broken claims, cost a log line without the URL', async () => {
    const log = recordingLog();
    const { fetchFn } = fakeFetch((url) => {
      if (url.includes('slack')) return new Response('invalid_token', { status: 403 });
      if (url.includes('office'))
        throw Object.assign(new TypeError('fetch failed'), { cause: { code: 'ECONNREFUSED' } });
      return new Promise<Response>(() => undefined);
    });
    const hanging = ((url: string, init?: RequestInit) =>
      url.includes('127.0.0.1')
        ? new Promise<Response>((_, reject) =>
            init?.signal?.addEventListener('abort', () =>
              reject(Object.assign(new Error('aborted'), { name: 'TimeoutError' })),
            ),
          )
        : fetchFn(url, init)) as typeof fetch;
    const alerts = createAlerts({
      webhooks,
      minIntervalSeconds: 0,
      claims: createMemoryAlertClaims(),
      log,
      fetch: hanging,
      timeoutMs: 200,
    });
    assert.equal(await alerts.notify(ALERT), 'failed');
    const results = await alerts.test();
    assert.deepEqual(
      results.map((r) => [r.webhook, r.ok, r.status ?? r.error]),
      [
        ['webhook #1 (slack, hooks.slack.test)', false, 403],
        ['webhook #2 (teams, example.webhook.office.test)', false, 'ECONNREFUSED'],
        ['webhook #3 (json, 127.0.0.1:9)', false, 'no answer within 200 ms'],
      ],
    );
    const broken = createAlerts({
      webhooks,
      minIntervalSeconds: 60,
      claims: { claim: () => Promise.reject(new Error('storage down')) },
      log,
      fetch: fetchFn,
    });
    assert.equal(await broken.notify(ALERT), 'failed');
    assert.ok(log.lines.length >= 4);
    for (const line of log.lines) assert.doesNotMatch(line, new RegExp(TOKEN), line);
    assert.doesNotMatch(JSON.stringify(results), new RegExp(TOKEN));
  });

  it('sends nothing without webhooks', async () => {
    const alerts = createAlerts({
      webhooks: [],
      minIntervalSeconds: 60,
      claims: createMemoryAlertClaims(),
      log: recordingLog(),
    });
    assert.equal(await alerts.notify(ALERT), 'no-webhooks');
  });

  it('rewrites paths under the storage root on the way out and bounds the text', async () => {
    const { posted, fetchFn } = fakeFetch();
    const redaction = createRedaction({ storagePath: ROOT, logPhi: false });
    const alerts = createAlerts({
      webhooks: [webhooks[2]],
      minIntervalSeconds: 0,
      claims: createMemoryAlertClaims(),
      log: recordingLog(),
      fetch: fetchFn,
      redact: redaction.anywhere,
    });
    await alerts.notify({
      ...ALERT,
      text: `EACCES: open '${ROOT}/knee_export/${OUTPUT_NAME}.WORKING/1.dcm' ${'x'.repeat(3000)}`,
    });
    const text = String(posted[0].body.text);
    assert.doesNotMatch(text, new RegExp(PATIENT.id));
    assert.match(text, /^EACCES: open '<output>\.WORKING\/1\.dcm'/);
    assert.ok(text.length <= 1_501);
  });
});

describe('the alerts the app raises', () => {
  it('a job the runner failed carries ids, rule, step and the redacted reason, no patient attribute', async () => {
    const jobs = createMemoryJobStore();
    const { job } = await jobs.create(aJob());
    const redaction = createRedaction({
      storagePath: ROOT,
      logPhi: false,
      knownPhi: async () => ({ names: [OUTPUT_NAME], values: [PATIENT.name, PATIENT.id, PATIENT.description] }),
    });
    const { posted, fetchFn } = fakeFetch();
    const alerts = createAlerts({
      webhooks: [{ url: 'http://127.0.0.1:9/a', format: 'json' }],
      minIntervalSeconds: 60,
      claims: createMemoryAlertClaims(),
      log: recordingLog(),
      fetch: fetchFn,
      redact: redaction.anywhere,
    });
    const deps = {
      jobs,
      queues: createMemoryQueues(),
      log: recordingLog(),
      redaction,
      // As shared/azure-functions/steps.ts wires it.
      onJobEnded: async (ended: Job) => {
        if (ended.status === 'failed') await alerts.notify(jobFailedAlert(ended, { redact: redaction.paths(ended) }));
      },
    };
    const failing = async () => {
      throw new PermanentError(
        `${PATIENT.id} (${PATIENT.name}, "${PATIENT.description}") is not in the mapping file; wrote ${ROOT}/knee_export/${OUTPUT_NAME}.WORKING`,
      );
    };
    assert.equal(await runStep(deps, 'download', failing, { jobId: job.id, step: 'download' }), 'failed');
    assert.equal(posted.length, 1);
    const body = posted[0].body as { kind: string; fields: Record<string, string>; title: string; text: string };
    assert.equal(body.kind, 'job-failed');
    assert.deepEqual(body.fields, {
      jobId: job.id,
      ruleId: 'knee_export',
      step: 'download',
      resourceId: job.resourceId,
    });
    assert.match(body.text, /is not in the mapping file/);
    const sent = JSON.stringify(posted[0].body);
    for (const value of [PATIENT.id, 'Zakrzewska', 'Agnieszka', PATIENT.description, OUTPUT_NAME, ROOT])
      assert.ok(!sent.includes(value), `${value} in ${sent}`);
  });

  it('a job failed by its poison queue is a message-poisoned alert naming the queue', async () => {
    const jobs = createMemoryJobStore();
    const { job } = await jobs.create(aJob());
    const alertsSent: Array<ReturnType<typeof jobFailedAlert>> = [];
    await failPoisonedStep(
      {
        jobs,
        queues: createMemoryQueues(),
        log: recordingLog(),
        onJobEnded: async (ended) => void alertsSent.push(jobFailedAlert(ended, { poisonQueue: 'step-download' })),
      },
      'step-download',
      { jobId: job.id, step: 'download' },
    );
    assert.equal(alertsSent.length, 1);
    assert.equal(alertsSent[0].kind, 'message-poisoned');
    assert.equal(alertsSent[0].fields.queue, 'step-download-poison');
    assert.equal(alertsSent[0].subject, 'knee_export/download');
    assert.equal(malformedMessageAlert('step-zip').fields.queue, 'step-zip-poison');
  });

  it('a destination down and a disk nearly full, from the timer checks', async () => {
    const raised: Array<Omit<Alert, 'at'>> = [];
    const report = await runAlertChecks({
      alerts: { notify: async (a) => (raised.push(a), 'sent') },
      log: recordingLog(),
      folders: { storage: '/srv/storage', staging: '/srv/missing' },
      diskFreePercent: 10,
      diskFree: async (folder) => {
        if (folder === '/srv/missing') throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
        return { freeBytes: 5 * 2 ** 30, totalBytes: 100 * 2 ** 30, freePercent: 5 };
      },
      orthanc: {
        echo: async (name) => (name === 'PACS' ? { ok: false, reason: 'association refused' } : { ok: true }),
      },
      modalities: {
        PACS: { AET: 'PACS_AET', Host: '10.0.0.5', Port: 104 },
        AI: { AET: 'AI', Host: '10.0.0.6', Port: 104 },
      },
    });
    assert.deepEqual(report, { disks: { storage: 5, staging: 'unknown' }, destinationsDown: ['PACS'] });
    assert.deepEqual(
      raised.map((a) => [a.kind, a.subject]),
      [
        ['disk-nearly-full', 'storage'],
        ['destination-down', 'PACS'],
      ],
    );
    assert.match(raised[0].title, /storage folder has 5% free/);
    assert.match(raised[1].text, /association refused/);
    assert.equal(
      destinationDownAlert('X', { aet: 'X', host: 'h', port: 1, configured: false }).text,
      'It could not be put into Orthanc.',
    );
  });

  it('measures a real filesystem', async () => {
    const free = await diskFree(process.cwd());
    assert.ok(free.totalBytes > 0 && free.freeBytes >= 0 && free.freePercent >= 0 && free.freePercent <= 100);
  });
});

describe('alert settings', () => {
  it('reads prefixed and unprefixed URLs, the fallback format, interval and threshold', () => {
    const problems: string[] = [];
    const settings = alertSettings(
      {
        AUTOMATION_ALERT_WEBHOOKS: ` teams=https://a.test/${TOKEN}, https://b.test/x ,SLACK=https://c.test/y,`,
        AUTOMATION_ALERT_FORMAT: 'slack',
        AUTOMATION_ALERT_MIN_INTERVAL_SECONDS: 30,
        AUTOMATION_ALERT_DISK_FREE_PERCENT: 5,
      },
      problems,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, {
      webhooks: [
        { url: `https://a.test/${TOKEN}`, format: 'teams' },
        { url: 'https://b.test/x', format: 'slack' },
        { url: 'https://c.test/y', format: 'slack' },
      ],
      minIntervalSeconds: 30,
      diskFreePercent: 5,
    });
  });

  it('defaults: no webhooks, json, 900 s, 10 %', () => {
    const config = loadConfig({});
    assert.deepEqual(config.alerts, { webhooks: [], minIntervalSeconds: 900, diskFreePercent: 10 });
  });

  it('names a bad entry by position, never quoting it (it holds a token)', () => {
    const problems: string[] = [];
    alertSettings(
      { AUTOMATION_ALERT_WEBHOOKS: `https://ok.test/a,ftp://bad.test/${TOKEN},teams:https://x/${TOKEN}` },
      problems,
    );
    assert.equal(problems.length, 2);
    assert.match(problems[0], /^AUTOMATION_ALERT_WEBHOOKS: entry 2: expected an http\(s\) URL/);
    assert.match(problems[1], /^AUTOMATION_ALERT_WEBHOOKS: entry 3/);
    for (const p of problems) assert.doesNotMatch(p, new RegExp(TOKEN));
  });
});
