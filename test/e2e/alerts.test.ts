/**
 * Webhook alerts against the running stack (real Orthanc, Azurite, the devhost): a loopback HTTP
 * receiver in this test stands in for Teams, Slack and a site's own JSON endpoint. A job that fails
 * (an anonymising rule whose identity mapping lacks the patient) is alerted to all three with its
 * job id and rule id and no patient attribute; a destination that does not answer C-ECHO at start-up
 * is alerted; `POST /api/alerts/test` reaches each webhook and answers what each returned.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from '../support/webhook-receiver';
import { launchChromium } from '../support/chromium';
import { mkdir } from 'node:fs/promises';
import { REPO_ROOT, startStack, type Stack } from './stack';

const TOKEN = 'e2eToken0123456789abcdef';

describe('webhook alerts', { timeout: 300_000 }, () => {
  let stack: Stack;
  let receiver: WebhookReceiver | undefined;
  let study: GeneratedStudy;
  let failed: Job;
  let received: ReceivedWebhook[] = [];
  const of = (p: string) => received.filter((r) => r.path.startsWith(p));

  before(async () => {
    // The json webhook refuses once asked to, so the test route's answer shows a refusal.
    receiver = await startWebhookReceiver((path) => (path.includes('refuse') ? 500 : 200));
    received = receiver.received;
    const base = receiver.base;
    stack = await startStack({
      enforceAuth: true,
      stableAgeSeconds: 2,
      env: {
        AUTOMATION_ALERT_WEBHOOKS: [
          `${base}/json/${TOKEN}`,
          `teams=${base}/teams/webhookb2/${TOKEN}`,
          `slack=${base}/slack/services/${TOKEN}`,
          `json=${base}/refuse?token=${TOKEN}`,
        ].join(','),
        AUTOMATION_ALERT_MIN_INTERVAL_SECONDS: '600',
        // A destination nobody listens on: C-ECHO fails at start-up.
        ORTHANC_DICOM_MODALITIES: JSON.stringify({ DOWNPACS: ['DOWNPACS', '127.0.0.1', 9] }),
      },
    });
    await stack.writeRule('mapped_research', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'alerting' }],
    });
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');
    study = await generateStudy({
      patientID: 'P-ALERT-4711',
      patientName: 'Wiśniewska^Małgorzata',
      studyDescription: 'alerting knee',
      series: [{ seriesNumber: 1, modality: 'MR', seriesDescription: 'T1', instances: 2 }],
    });
    await stack.sendStudy(study);
    const studyId = await stack.studyId(study.studyInstanceUID);
    [failed] = await stack.waitForJobs(1, (j) => j.resourceId === studyId);
    assert.equal(failed.status, 'failed', failed.error);
  });

  after(async () => {
    await stack?.stop();
    await receiver?.close();
  });

  it('receives the failed job in all three formats, with job and rule ids and no patient attribute', async () => {
    const forJob = (r: ReceivedWebhook) => r.raw.includes(failed.id);
    await waitFor(() => ['/json/', '/teams/', '/slack/'].every((p) => of(p).some(forJob)), {
      timeoutMs: 30_000,
      description: 'the failed job alert at each webhook',
    });
    const json = of('/json/').find(forJob)!.body as { kind: string; fields: Record<string, string>; text: string };
    assert.equal(json.kind, 'job-failed');
    assert.equal(json.fields.jobId, failed.id);
    assert.equal(json.fields.ruleId, 'mapped_research');
    assert.equal(json.fields.step, failed.steps.find((st) => st.status === 'failed')?.name);
    assert.match(json.text, /not in the mapping file/);
    const teams = of('/teams/').find(forJob)!.body as { '@type': string; sections: Array<{ facts: unknown[] }> };
    assert.equal(teams['@type'], 'MessageCard');
    assert.ok(JSON.stringify(teams.sections[0].facts).includes(failed.id));
    const slack = of('/slack/').find(forJob)!.body as { text: string; blocks: unknown[] };
    assert.match(slack.text, new RegExp(`Job ${failed.id} \\(rule mapped_research\\) failed`));

    const job = (await stack.jobStore.get(failed.id))!;
    const phi = [
      study.patientID,
      'Wiśniewska',
      'Małgorzata',
      'Wisniewska',
      'alerting knee',
      stack.storageDir,
      ...(job.outputPath ? [path.basename(job.outputPath)] : []),
    ];
    for (const r of received.filter(forJob))
      for (const value of phi)
        assert.ok(!r.raw.toLowerCase().includes(value.toLowerCase()), `${value} in ${r.path}: ${r.raw}`);
  });

  it('alerts a destination that does not answer C-ECHO at start-up', async () => {
    await waitFor(() => of('/json/').some((r) => r.body.kind === 'destination-down'), {
      timeoutMs: 30_000,
      description: 'the destination-down alert',
    });
    const down = of('/json/').find((r) => r.body.kind === 'destination-down')!.body as {
      fields: Record<string, string>;
    };
    assert.equal(down.fields.destination, 'DOWNPACS');
  });

  it('POST /api/alerts/test reaches every webhook and answers what each returned, without the URLs', async () => {
    const refused = await fetch(`${stack.host.url}/api/alerts/test`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
    });
    assert.equal(refused.status, 401, 'the route needs the function key');
    const before = received.length;
    const response = await fetch(`${stack.host.url}/api/alerts/test`, {
      method: 'POST',
      headers: { 'x-functions-key': stack.functionKey, 'Content-Type': 'application/json' },
      body: '{}',
    });
    assert.equal(response.status, 200);
    const raw = await response.text();
    assert.ok(!raw.includes(TOKEN), raw);
    const answer = JSON.parse(raw) as {
      ok: boolean;
      results: Array<{ webhook: string; format: string; ok: boolean; status?: number }>;
    };
    assert.equal(answer.ok, false, 'one webhook refused');
    assert.deepEqual(
      answer.results.map((r) => [r.webhook.replace(/:\d+\)$/, ')'), r.ok, r.status]),
      [
        ['webhook #1 (json, 127.0.0.1)', true, 200],
        ['webhook #2 (teams, 127.0.0.1)', true, 200],
        ['webhook #3 (slack, 127.0.0.1)', true, 200],
        ['webhook #4 (json, 127.0.0.1)', false, 500],
      ],
    );
    const tests = received.slice(before).filter((r) => r.raw.includes('Test alert'));
    assert.equal(tests.length, 4);
    assert.ok(!stack.host.logs().includes(TOKEN), 'no webhook URL in the host log');
  });

  it("the dashboard's Send test alert button shows what each webhook answered", async () => {
    const artifacts = path.join(REPO_ROOT, 'test/artifacts');
    await mkdir(artifacts, { recursive: true });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      const before = received.length;
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      await page.click('#alert-test');
      await page.waitForSelector('#alert-results li:nth-child(4)', { timeout: 20_000 });
      const items = await page.locator('#alert-results li').all();
      const lines: Array<[string | null, string | null]> = [];
      for (const li of items) lines.push([await li.getAttribute('data-ok'), await li.textContent()]);
      assert.deepEqual(
        lines.map(([ok]) => ok),
        ['true', 'true', 'true', 'false'],
      );
      assert.match(String(lines[3][1]), /^webhook #4 \(json, 127\.0\.0\.1:\d+\): failed \(HTTP 500\)$/);
      assert.ok(!JSON.stringify(lines).includes(TOKEN));
      assert.equal(received.slice(before).filter((r) => r.raw.includes('Test alert')).length, 4);
      await page.screenshot({ path: path.join(artifacts, 'dashboard-alert-test.png'), fullPage: true });
    } finally {
      await browser.close();
    }
  });
});
