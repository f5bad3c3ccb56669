/**
 * The QI view from real jobs: two studies sent to the real stack (Orthanc, Azurite, the devhost with
 * keys enforced) make four jobs, two forwards to a real storescp that succeed and two anonymising
 * jobs that fail (their identity mapping lacks the patient). GET /api/qi and GET /api/metrics report
 * them, and the dashboard's QI section draws them in headless Chromium without a CSP violation.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import type { Job } from '../../shared/pipeline/job';
import type { Qi } from '../../shared/operator/qi';
import { startStorescp, type Storescp } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { parsePrometheus } from '../support/prometheus';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

describe('QI view from real jobs', { timeout: 180_000 }, () => {
  let stack: Stack;
  let sink: Storescp;
  let studies: GeneratedStudy[];
  let jobs: Job[];

  /** The step the mapping failures stopped in, as the ledger recorded it (both jobs stop in the same one). */
  const failedStep = () => {
    const steps = new Set(jobs.filter((j) => j.status === 'failed').map((j) => j.currentStep));
    assert.equal(steps.size, 1, [...steps].join(', '));
    return [...steps][0];
  };
  const get = (route: string, key: string | null = stack.functionKey) =>
    fetch(`${stack.host.url}/api/${route}`, { headers: key ? { 'x-functions-key': key } : {} });

  before(async () => {
    sink = await startStorescp({ aet: 'SINK' });
    stack = await startStack({
      enforceAuth: true,
      env: { MODALITY_SINK: `SINK|127.0.0.1|${sink.port}`, AUTOMATION_FORWARD_POLL_SECONDS: '1' },
    });
    await stack.writeRule('to_sink', {
      CheckOn: 'Study',
      Action: 'FORWARD',
      DestinationModality: 'SINK',
      Tags: [{ TagName: 'Modality', Level: 'Series', Value: 'MR' }],
    });
    await stack.writeRule('mapped_research', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'qi' }],
    });
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');
    studies = [];
    for (const n of [1, 2]) {
      const study = await generateStudy({
        patientID: `P-QI-${n}`,
        patientName: `Lindqvist${n}^Maren`,
        studyDescription: `qi study ${n}`,
        series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }],
      });
      studies.push(study);
      await stack.sendStudy(study);
    }
    jobs = await stack.waitForJobs(4, () => true, { timeoutMs: 60_000 });
    const shape = JSON.stringify(jobs.map((j) => [j.ruleId, j.status, j.error]));
    assert.equal(jobs.filter((j) => j.ruleId === 'to_sink' && j.status === 'succeeded').length, 2, shape);
    assert.equal(jobs.filter((j) => j.ruleId === 'mapped_research' && j.status === 'failed').length, 2, shape);
  });
  after(async () => {
    await stack?.stop();
    await sink?.stop();
  });

  it('answers GET /api/qi from the ledger: funnel, turnarounds, failures and reasons', async () => {
    for (const key of [null, 'wrong-key']) {
      assert.equal((await get('qi', key)).status, 401);
      assert.equal((await get('metrics', key)).status, 401);
    }
    assert.equal((await get('qi?days=31')).status, 400);
    const response = await get('qi?days=7');
    assert.equal(response.status, 200);
    const qi = (await response.json()) as Qi;
    assert.equal(qi.days, 7);
    const funnel = Object.fromEntries(qi.funnel.map((s) => [s.stage, s.count]));
    assert.deepEqual(funnel, {
      received: new Set(jobs.map((j) => j.resourceId)).size,
      matched: jobs.length,
      processed: jobs.filter((j) => j.status === 'succeeded').length,
      delivered: 2,
      resultsBack: 0,
    });
    assert.equal(funnel.received, 2);
    const measured = jobs
      .filter((j) => j.ruleId === 'to_sink')
      .map((j) => Date.parse(j.finishedAt!) - Date.parse(j.createdAt))
      .sort((a, b) => a - b);
    assert.deepEqual(qi.rules.to_sink.turnaround, { count: 2, p50: measured[0], p90: measured[1], p99: measured[1] });
    assert.deepEqual(
      { ...qi.destinations.SINK, turnaround: undefined },
      { jobs: 2, delivered: 2, failed: 0, turnaround: undefined },
    );
    assert.equal(qi.destinations.SINK.turnaround?.count, 2);
    assert.deepEqual(qi.failuresByStep, { [failedStep()]: 2 });
    assert.equal(qi.topErrors.length, 1, JSON.stringify(qi.topErrors));
    assert.equal(qi.topErrors[0].count, 2);
    assert.deepEqual(qi.topErrors[0].rules, ['mapped_research']);
    assert.match(qi.topErrors[0].reason, /not in the mapping file/);
    const text = JSON.stringify(qi);
    for (const study of studies) {
      for (const attribute of [study.patientID, study.studyInstanceUID, ...study.patientName.split('^')])
        assert.ok(!text.includes(attribute), 'no patient attribute or UID in the QI answer');
    }
    console.log(`QI measured turnaround to_sink: ${measured.join(', ')} ms`);
  });

  it('answers GET /api/metrics in the Prometheus text format with the same figures', async () => {
    const response = await get('metrics');
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await response.text();
    const metrics = parsePrometheus(body);
    assert.equal(metrics.value('autorthanc_funnel', { stage: 'matched' }), 4);
    assert.equal(metrics.value('autorthanc_funnel', { stage: 'delivered' }), 2);
    assert.equal(metrics.value('autorthanc_rule_jobs', { rule: 'mapped_research', status: 'failed' }), 2);
    assert.equal(metrics.value('autorthanc_destination_jobs', { destination: 'SINK', outcome: 'delivered' }), 2);
    assert.equal(metrics.value('autorthanc_failures_by_step', { step: failedStep() }), 2);
    assert.ok((metrics.value('autorthanc_rule_turnaround_seconds', { rule: 'to_sink', quantile: '0.5' }) ?? 0) > 0);
    for (const study of studies) assert.ok(!body.includes(study.patientID) && !body.includes(study.studyInstanceUID));
  });

  describe('QI section in headless Chromium', () => {
    let browser: Browser;
    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
    });

    it('draws the funnel, charts and tables from the real jobs, without a CSP violation', async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      const external: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(stack.host.url)) external.push(r.url());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      const stage = (name: string) => page.locator(`#qi-funnel svg g[data-stage="${name}"]`).getAttribute('data-count');
      await page.waitForSelector('#qi-funnel svg g[data-stage="matched"][data-count="4"]', { timeout: 20_000 });
      assert.equal(await stage('received'), '2');
      assert.equal(await stage('processed'), '2');
      assert.equal(await stage('delivered'), '2');
      assert.equal(await stage('resultsBack'), '0', 'no rule here expects results back');
      const hours = page.locator('#qi-hours svg g[data-hour-of-day]');
      assert.equal(await hours.count(), 24, 'a bar slot per hour of the day');
      const perHour = await Promise.all(
        Array.from({ length: 24 }, async (_, n) => Number(await hours.nth(n).getAttribute('data-jobs'))),
      );
      assert.equal(
        perHour.reduce((a, b) => a + b, 0),
        4,
      );
      assert.equal(await page.locator(`#qi-steps svg g[data-step="${failedStep()}"][data-count="2"]`).count(), 1);
      assert.match((await page.textContent('tr[data-qi-rule="to_sink"]')) ?? '', /to_sink\s*2/);
      assert.equal(await page.locator('tr[data-qi-destination="SINK"]').count(), 1);
      assert.match((await page.textContent('#qi-errors')) ?? '', /not in the mapping file/);

      await page.selectOption('#qi-days', '7');
      await page.waitForSelector('#qi[data-days="7"]');
      await page.locator('#qi').screenshot({ path: path.join(ARTIFACTS, 'qi.png') });

      const shown = (await page.textContent('body')) ?? '';
      for (const study of studies)
        for (const attribute of [study.patientID, ...study.patientName.split('^')])
          assert.ok(!shown.includes(attribute), 'no patient attribute on the page');
      assert.deepEqual(external, [], 'the page loaded nothing from elsewhere');
      assert.deepEqual(problems, [], 'no script error and no CSP violation');
      await page.close();
    });
  });
});
