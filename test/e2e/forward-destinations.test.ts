/**
 * Tracking per destination end to end, with dcmtk's storescp as the receiving nodes: a forward to two
 * destinations where one is down (a port nobody listens on). The other is delivered at once; the down
 * one is retried on its own, shows as stuck in GET /api/jobs/{id}, in /api/status and on the dashboard
 * (headless Chromium, screenshot in test/artifacts/), and alerts a webhook without a patient
 * attribute; once a storescp listens on its port it is delivered and the job succeeds.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium } from '../support/chromium';
import type { Job } from '../../shared/pipeline/job';
import type { DestinationRecord } from '../../shared/pipeline/destinations';
import { startStorescp, type Storescp } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { freePort, waitFor } from '../support/process';
import { startWebhookReceiver, type ReceivedWebhook, type WebhookReceiver } from '../support/webhook-receiver';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');
const sopOf = (file: string) => path.basename(file).slice(path.basename(file).indexOf('.') + 1);

describe('forward tracked per destination, one of two down', { timeout: 300_000 }, () => {
  let stack: Stack;
  let sink: Storescp;
  let later: Storescp | undefined;
  let downPort: number;
  let receiver: WebhookReceiver | undefined;
  let alerts: ReceivedWebhook[] = [];

  before(async () => {
    receiver = await startWebhookReceiver();
    alerts = receiver.received;
    sink = await startStorescp({ aet: 'UPNODE' });
    downPort = await freePort();
    stack = await startStack({
      stableAgeSeconds: 2,
      env: {
        MODALITY_UPNODE: `UPNODE|127.0.0.1|${sink.port}`,
        MODALITY_LATER: `LATER|127.0.0.1|${downPort}`,
        AUTOMATION_FORWARD_POLL_SECONDS: '1',
        AUTOMATION_FORWARD_MAX_ATTEMPTS: '100',
        // 6 s: a down destination is stuck well within the test.
        AUTOMATION_DESTINATION_STUCK_MINUTES: '0.1',
        AUTOMATION_ALERT_WEBHOOKS: `${receiver.base}/hook`,
        AUTOMATION_ALERT_MIN_INTERVAL_SECONDS: '600',
      },
    });
  });
  after(async () => {
    await stack?.stop();
    await sink?.stop();
    await later?.stop();
    await receiver?.close();
  });

  const api = async <T>(route: string): Promise<T> => {
    const response = await fetch(`${stack.host.url}/api/${route}`, {
      headers: { 'x-functions-key': stack.functionKey },
    });
    assert.ok(response.status === 200 || response.status === 503, `${route}: HTTP ${response.status}`);
    return (await response.json()) as T;
  };
  const destinations = (job: Job) =>
    (job.steps.find((s) => s.name === 'forward')?.detail?.destinations ?? {}) as Record<string, DestinationRecord>;

  it('delivers to the destination that is up at once, shows the down one stuck, then delivers it once it is up', async () => {
    await stack.writeRule('to-two', {
      CheckOn: 'Study',
      Steps: ['forward'],
      Forward: { Destinations: ['UPNODE', 'LATER'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'two destinations' }],
    });
    const study = await generateStudy({
      patientID: 'P-TWO-DEST-0815',
      patientName: 'Zweifel^Dora',
      studyDescription: 'two destinations',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 3 }],
    });
    const expected = study.series[0].files.map((f) => f.sopInstanceUID).sort();
    const sentAt = Date.now();
    await stack.sendStudy(study);

    // The destination that is up: delivered while the other is still being retried.
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'to-two', { terminal: false });
    let view: Job = job;
    await waitFor(
      async () => {
        view = await api<Job>(`jobs/${job.id}`);
        return destinations(view).UPNODE?.status === 'sent';
      },
      { timeoutMs: 30_000, description: 'UPNODE sent', onTimeout: () => JSON.stringify(destinations(view)) },
    );
    await waitFor(() => expected.every((uid) => sink.receivedFiles().some((f) => sopOf(f) === uid)), {
      timeoutMs: 10_000,
      description: 'every instance at UPNODE',
    });
    const up = destinations(view).UPNODE;
    assert.equal(view.status, 'running', 'the job waits for the other destination');
    assert.ok(['pending', 'sending'].includes(destinations(view).LATER.status), JSON.stringify(destinations(view)));
    assert.ok(Date.parse(up.sentAt!) - sentAt < 20_000, 'UPNODE was sent without waiting for LATER');
    assert.equal(up.attempts, 1);

    // The down one: retried on its own and stuck once it has waited longer than the setting.
    await waitFor(
      async () => {
        view = await api<Job>(`jobs/${job.id}`);
        return destinations(view).LATER.status === 'stuck';
      },
      { timeoutMs: 40_000, description: 'LATER stuck', onTimeout: () => JSON.stringify(destinations(view)) },
    );
    const stuck = destinations(view).LATER;
    assert.ok(stuck.attempts >= 2, `retried: ${JSON.stringify(stuck)}`);
    assert.match(stuck.error ?? '', /refused|association|connect/i);
    assert.ok(stuck.nextRetryAt, 'the next retry is shown');
    const status = await api<{
      forwarding?: { stuck: number; byDestination: Record<string, { stuck: number }>; stuckJobs: string[] };
    }>('status');
    assert.ok(status.forwarding, JSON.stringify(status));
    assert.equal(status.forwarding.byDestination.LATER?.stuck, 1);
    assert.deepEqual(status.forwarding.stuckJobs, [job.id]);

    // The alert for the stuck destination (the C-ECHO check may alert on LATER too, under its own subject).
    await waitFor(() => alerts.some((a) => /LATER is stuck/.test(String(a.body.title))), {
      timeoutMs: 30_000,
      description: 'the stuck alert',
      onTimeout: () => alerts.map((a) => a.raw).join('\n'),
    });
    const alert = alerts.find((a) => /LATER is stuck/.test(String(a.body.title)))!;
    for (const attribute of ['P-TWO-DEST-0815', 'Zweifel', 'Dora', study.studyInstanceUID])
      assert.ok(!alert.raw.includes(attribute), `the alert carries ${attribute}`);

    // The dashboard's job view: one destination sent, the other stuck.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      await page.click(`tr[data-job="${job.id}"]`, { timeout: 20_000 });
      await page.waitForSelector(
        `table[data-destinations-of="${job.id}"] tr[data-destination="LATER"][data-destination-status="stuck"]`,
      );
      await page.waitForSelector(
        `table[data-destinations-of="${job.id}"] tr[data-destination="UPNODE"][data-destination-status="sent"]`,
      );
      await page.waitForSelector('#destinations-stuck');
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'forward-destination-stuck.png'), fullPage: true });
      const shown = (await page.textContent('body')) ?? '';
      for (const attribute of ['P-TWO-DEST-0815', 'Zweifel'])
        assert.ok(!shown.includes(attribute), `the dashboard shows ${attribute}`);
    } finally {
      await browser.close();
    }

    // It comes up: the next retry delivers it, and the job succeeds.
    later = await startStorescp({ aet: 'LATER', port: downPort });
    const upAt = Date.now();
    await waitFor(async () => (await stack.jobStore.get(job.id))?.status === 'succeeded', {
      timeoutMs: 60_000,
      description: 'the job to succeed once LATER is up',
    });
    await waitFor(() => expected.every((uid) => later!.receivedFiles().some((f) => sopOf(f) === uid)), {
      timeoutMs: 10_000,
      description: 'every instance at LATER',
    });
    const done = await api<Job>(`jobs/${job.id}`);
    const records = destinations(done);
    assert.deepEqual([records.UPNODE.status, records.LATER.status], ['sent', 'sent']);
    assert.ok(Date.parse(records.LATER.sentAt!) >= upAt);
    assert.equal(records.UPNODE.sentAt, up.sentAt, 'UPNODE was not sent again');
    assert.equal(records.UPNODE.attempts, 1);
    const forward = done.steps.find((s) => s.name === 'forward')!;
    assert.equal(forward.endedAt, records.LATER.sentAt, 'the forward ended when the last destination was sent');
    assert.equal(sink.receivedFiles().filter((f) => expected.includes(sopOf(f))).length, expected.length);
    const settled = await api<{ forwarding?: { stuck: number } }>('status');
    assert.equal(settled.forwarding?.stuck, 0);
  });
});
