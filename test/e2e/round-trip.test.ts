/**
 * Round trips against the running stack (real Orthanc, Azurite, the devhost, dcmtk): a rule forwards
 * CT studies to an AI node (a storescp calling itself AINODE) and expects results back within two
 * hours. The "AI node" takes the StudyInstanceUID from what it received and sends a derived series
 * (a secondary capture in the same study, as IHE AIR nodes do) with `storescu -aet AINODE`. The job
 * shows the result linked, a `CheckOn: Result` rule runs on the result series only, and the QI
 * funnel counts one result back. A second rule with a one-second Within gets no result: its job
 * shows "results overdue" in /api/jobs, /api/status and the dashboard, and one PHI-free alert
 * reaches the webhook receiver.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium } from '../support/chromium';
import type { Job } from '../../shared/pipeline/job';
import type { ResultsView } from '../../shared/pipeline/roundTrip';
import type { Qi } from '../../shared/operator/qi';
import { dcmdump, startStorescp, storescu, type Storescp } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startWebhookReceiver, type WebhookReceiver } from '../support/webhook-receiver';
import { REPO_ROOT, startStack, type Stack } from './stack';

type JobAnswer = Job & { results?: ResultsView };

describe('round trips to an AI node', { timeout: 300_000 }, () => {
  let stack: Stack;
  let ainode: Storescp;
  let receiver: WebhookReceiver | undefined;
  // The alert bodies as the json format writes them (shared/alerts/format.ts).
  let alerts: Array<{ raw: string; body: { kind: string; fields: Record<string, string> } }> = [];

  const api = async <T>(route: string): Promise<T> => {
    const response = await fetch(`${stack.host.url}/api/${route}`, {
      headers: { 'x-functions-key': stack.functionKey },
    });
    assert.equal(response.status, 200, `${route}: ${response.status}`);
    return (await response.json()) as T;
  };
  const jobAnswer = (id: string) => api<JobAnswer>(`jobs/${id}`);

  let study: GeneratedStudy;
  let late: GeneratedStudy;
  let original: Job;
  let overdue: Job;

  before(async () => {
    receiver = await startWebhookReceiver();
    alerts = receiver.received as unknown as typeof alerts;
    ainode = await startStorescp({ aet: 'AINODE' });
    stack = await startStack({
      stableAgeSeconds: 2,
      env: {
        ORTHANC_DICOM_MODALITIES: JSON.stringify({ AINODE: ['AINODE', '127.0.0.1', ainode.port] }),
        AUTOMATION_ALERT_WEBHOOKS: `${receiver.base}/hook`,
      },
    });
    await stack.writeRule('to_ai', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'FORWARD',
      DestinationModality: 'AINODE',
      Tags: [{ TagName: 'StudyDescription', Value: 'round trip' }],
      ExpectResults: { From: 'AINODE', Within: '2h' },
    });
    await stack.writeRule('to_slow_ai', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'FORWARD',
      DestinationModality: 'AINODE',
      Tags: [{ TagName: 'StudyDescription', Value: 'never answered' }],
      ExpectResults: { From: 'AINODE', Within: '1s' },
    });
    await stack.writeRule('ai_findings', {
      CheckOn: 'Result',
      IsActive: true,
      Steps: ['download'],
      Tags: [{ TagName: 'Modality', Operator: 'equals', Value: 'SC' }],
    });

    study = await generateStudy({
      patientID: 'P-RT-0815',
      patientName: 'Kowalczyk^Zofia',
      studyDescription: 'round trip chest CT',
      series: [{ seriesNumber: 1, modality: 'CT', seriesDescription: 'Thorax', instances: 3, rows: 64 }],
    });
    late = await generateStudy({
      patientID: 'P-RT-4711',
      patientName: 'Nowak^Jan',
      studyDescription: 'never answered CT',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 2, rows: 64 }],
    });
    await stack.sendStudy(study);
    await stack.sendStudy(late);
    const studyId = await stack.studyId(study.studyInstanceUID);
    const lateId = await stack.studyId(late.studyInstanceUID);
    [original] = await stack.waitForJobs(1, (j) => j.resourceId === studyId && j.ruleId === 'to_ai');
    [overdue] = await stack.waitForJobs(1, (j) => j.resourceId === lateId && j.ruleId === 'to_slow_ai');
    assert.equal(original.status, 'succeeded', original.error);
    assert.equal(overdue.status, 'succeeded', overdue.error);
  });

  after(async () => {
    await stack?.stop();
    await ainode?.stop();
    await receiver?.close();
  });

  it('links what storescu -aet AINODE sends back to the job, runs the Result rule on it and counts it in the QI funnel', async () => {
    const awaiting = await jobAnswer(original.id);
    assert.equal(awaiting.results?.state, 'awaiting');
    assert.equal(
      awaiting.results?.expectedBy,
      new Date(Date.parse(original.steps.find((s) => s.name === 'forward')!.endedAt!) + 7_200_000).toISOString(),
    );

    // The AI node answers in the study it was sent: the UID comes from a file it received.
    const received = ainode.receivedFiles();
    assert.ok(received.length >= 4, `the AI node received both studies (${received.length} files)`);
    const dumps = await Promise.all(received.map((f) => dcmdump(f, ['+P', '0020,000d'])));
    const uid = dumps.map((d) => /\[([0-9.]+)\]/.exec(d)?.[1]).find((u) => u === study.studyInstanceUID);
    assert.ok(uid, 'the forwarded study reached the AI node');
    const findings = await generateStudy({
      patientID: study.patientID,
      patientName: study.patientName,
      studyDescription: 'round trip chest CT',
      series: [{ seriesNumber: 900, modality: 'SC', seriesDescription: 'AI nodule findings', instances: 1, rows: 32 }],
      extra: { StudyInstanceUID: uid, Manufacturer: 'ACME AI' },
    });
    await storescu(findings.files, {
      host: '127.0.0.1',
      port: stack.orthanc.dicomPort,
      calledAet: stack.orthanc.aet,
      callingAet: 'AINODE',
    });

    const [resultJob] = await stack.waitForJobs(1, (j) => j.ruleId === 'ai_findings');
    assert.equal(resultJob.status, 'succeeded', resultJob.error);
    assert.equal(resultJob.resultOf, original.id);
    assert.equal(resultJob.level, 'Series', 'the Result rule ran on the AI series, not on the forwarded CT');
    assert.equal(resultJob.steps[0].instances, 1);
    const resultSeries = resultJob.resourceId;

    const linked = await jobAnswer(original.id);
    assert.equal(linked.results?.state, 'back');
    assert.equal(linked.roundTrip?.results.length, 1);
    assert.deepEqual(linked.roundTrip?.results[0].seriesIds, [resultSeries]);
    assert.equal(linked.roundTrip?.results[0].matchedBy, 'same-study');
    assert.ok(Date.parse(linked.roundTrip.resultsAt!) > Date.parse(original.finishedAt!));
    const again = await stack.jobs((j) => j.ruleId === 'to_ai');
    assert.equal(again.length, 1, 'the results were not forwarded to the AI node again');
    assert.equal(ainode.receivedFiles().length, received.length);

    const qi = await api<Qi>('qi?days=1');
    const back = qi.funnel.find((s) => s.stage === 'resultsBack')!;
    assert.equal(back.count, 1);
    assert.match(back.note, /of 2 expecting results/);
  });

  it('shows results that did not come as overdue and alerts them once, without patient attributes', async () => {
    await waitFor(async () => (await jobAnswer(overdue.id)).results?.state === 'overdue', {
      timeoutMs: 10_000,
      description: 'the one-second Within to pass',
    });
    const listed = await api<{ jobs: JobAnswer[] }>('jobs?rule=to_slow_ai');
    assert.equal(listed.jobs[0].results?.state, 'overdue');
    const status = await api<{ results?: { awaiting: number; overdue: Array<{ jobId: string; from: string }> } }>(
      'status',
    );
    assert.deepEqual(
      status.results?.overdue.map((o) => [o.jobId, o.from]),
      [[overdue.id, 'AINODE']],
    );

    const runCheck = async () => {
      const invoked = await fetch(`${stack.host.url}/admin/functions/alertsCheck`, {
        method: 'POST',
        headers: { 'x-functions-key': stack.masterKey, 'Content-Type': 'application/json' },
        body: JSON.stringify({ input: '' }),
      });
      assert.equal(invoked.status, 202);
    };
    await runCheck();
    const isOverdue = (a: (typeof alerts)[number]) => a.body.kind === 'results-overdue';
    await waitFor(() => alerts.some(isOverdue), { timeoutMs: 30_000, description: 'the results-overdue alert' });
    const alert = alerts.find(isOverdue)!;
    assert.equal(alert.body.fields.jobId, overdue.id);
    assert.equal(alert.body.fields.ruleId, 'to_slow_ai');
    assert.equal(alert.body.fields.from, 'AINODE');
    for (const value of [late.patientID, 'Nowak', 'never answered', late.studyInstanceUID, stack.storageDir])
      assert.ok(!alert.raw.includes(value), `${value} in ${alert.raw}`);
    await waitFor(async () => Boolean((await stack.jobStore.get(overdue.id))?.roundTrip?.overdueAlertedAt), {
      timeoutMs: 10_000,
      description: 'the job to record its alert',
    });
    await runCheck();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    assert.equal(alerts.filter(isOverdue).length, 1, 'one alert per overdue job');
    assert.ok(!alerts.some((a) => a.body.kind === 'results-overdue' && a.body.fields.jobId === original.id));
  });

  it('the dashboard lists the round trip: results back on one job, results overdue on the other', async () => {
    const artifacts = path.join(REPO_ROOT, 'test/artifacts');
    await mkdir(artifacts, { recursive: true });
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
      const problems: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      await page.waitForSelector(`tr.job[data-job="${original.id}"] [data-results="back"]`, { timeout: 20_000 });
      await page.waitForSelector(`tr.job[data-job="${overdue.id}"] [data-results="overdue"]`, { timeout: 20_000 });
      assert.equal(
        await page.textContent(`tr.job[data-job="${overdue.id}"] [data-results="overdue"]`),
        'results overdue',
      );
      assert.match((await page.textContent('#results-overdue')) ?? '', /1 results overdue/);
      await page.screenshot({ path: path.join(artifacts, 'dashboard-round-trip.png'), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
  });
});
