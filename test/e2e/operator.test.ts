/**
 * The operator API and dashboard against the running stack (real Orthanc, Azurite, the devhost with
 * keys enforced as in compose), and the dashboard in headless Chromium (Debian's, driven by
 * playwright-core): a completed job appears, a failed one shows its reason, Retry re-runs it.
 *
 * The failing job is a realistic one: an anonymising rule whose identity mapping lacks the patient.
 * The operator adds the row to the mapping file and presses Retry; the job then succeeds.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import type { Job } from '../../shared/pipeline/job';
import { assertPolicyMatches, inlineTexts } from '../support/dashboard-policy';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

describe('operator API and dashboard', { timeout: 600_000 }, () => {
  let stack: Stack;
  let study: GeneratedStudy;
  let studyOrthancId: string;
  let succeeded: Job;
  let failed: Job;

  const api = (route: string, init: { method?: string; key?: string | null; contentType?: string } = {}) => {
    const headers: Record<string, string> = {};
    const key = init.key === undefined ? stack.functionKey : init.key;
    if (key !== null) headers['x-functions-key'] = key;
    const post = init.method === 'POST';
    if (post) headers['Content-Type'] = init.contentType ?? 'application/json';
    return fetch(`${stack.host.url}/api/${route}`, {
      method: init.method ?? 'GET',
      headers,
      body: post ? '{}' : undefined,
    });
  };
  const json = async (route: string, init?: { method?: string }) => {
    const response = await api(route, init);
    const body = (await response.json()) as Record<string, unknown>;
    return { status: response.status, body };
  };

  before(async () => {
    stack = await startStack({ enforceAuth: true, stableAgeSeconds: 2 });
    await stack.writeRule('mr_download', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'Modality', Level: 'Series', Value: 'MR' }],
    });
    await stack.writeRule('mapped_research', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'operator' }],
    });
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');
    await stack.writeRule('broken', '{"CheckOn": "Study", "Tags": [ {"TagName": "Modality", ');
    study = await generateStudy({
      patientID: 'P-OPS-1',
      patientName: 'Ünal^Çağrı',
      studyDescription: 'operator test',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1', instances: 3 },
        { seriesNumber: 2, modality: 'MR', seriesDescription: 'T2', instances: 2 },
      ],
    });
    await stack.sendStudy(study);
    studyOrthancId = await stack.studyId(study.studyInstanceUID);
    const jobs = await stack.waitForJobs(2, (j) => j.resourceId === studyOrthancId);
    succeeded = jobs.find((j) => j.ruleId === 'mr_download')!;
    failed = jobs.find((j) => j.ruleId === 'mapped_research')!;
    assert.equal(succeeded?.status, 'succeeded', JSON.stringify(jobs.map((j) => [j.ruleId, j.status, j.error])));
    assert.equal(failed?.status, 'failed');
    assert.match(failed.error ?? '', /not in the mapping file/);
  });
  after(async () => {
    await stack?.stop();
  });

  it('answers 401 without a valid key on every endpoint except health', async () => {
    const routes: Array<[string, string]> = [
      ['GET', 'jobs'],
      ['GET', `jobs/${succeeded.id}`],
      ['POST', `jobs/${failed.id}/retry`],
      ['GET', 'rules'],
      ['GET', 'stats'],
      ['GET', 'status'],
      ['GET', 'dashboard'],
      ['GET', `studies/${studyOrthancId}/dry-run`],
      ['POST', `studies/${studyOrthancId}/run`],
    ];
    for (const [method, route] of routes) {
      for (const key of [null, 'wrong-key']) {
        const response = await api(route, { method, key });
        assert.equal(response.status, 401, `${method} ${route} with ${key ?? 'no key'}`);
        assert.equal(await response.text(), '');
      }
    }
    const health = await api('health', { key: null });
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' }, 'the anonymous probe says nothing but the status');
    assert.equal((await stack.jobStore.get(failed.id))?.status, 'failed', 'a refused retry changed nothing');
  });

  it('reports queue depths, poison counts, the change-feed cursor and Orthanc in the keyed status', async () => {
    const { status, body } = await json('status');
    assert.equal(status, 200);
    // The Orthanc this run started (ORTHANC_FLAVOUR: 1.10.1 or 1.12.7).
    assert.equal((body.orthanc as { ok: boolean; version: string }).version, stack.orthanc.version);
    const queues = body.queues as Record<string, { depth: number | null; poison: number | null }>;
    for (const name of ['evaluate', 'step-download', 'step-anonymise', 'step-zip', 'step-forward', 'step-publish'])
      assert.ok(name in queues, name);
    assert.equal(queues['step-download'].depth, 0);
    await waitFor(async () => ((await json('status')).body.changeFeed as { cursor: number | null }).cursor! > 0, {
      timeoutMs: 30_000,
      description: 'the change feed to have run',
    });
  });

  it('lists recent jobs newest first with filters and cursor paging', async () => {
    const all = await json('jobs');
    assert.equal(all.status, 200);
    const jobs = all.body.jobs as Array<Job & { percent: number }>;
    assert.deepEqual(new Set(jobs.map((j) => j.id)), new Set([succeeded.id, failed.id]));
    assert.ok(jobs.every((j) => j.percent === 100));

    const onlyFailed = (await json('jobs?status=failed')).body.jobs as Job[];
    assert.deepEqual(
      onlyFailed.map((j) => j.id),
      [failed.id],
    );
    const byRule = (await json('jobs?rule=mr_download')).body.jobs as Job[];
    assert.deepEqual(
      byRule.map((j) => j.id),
      [succeeded.id],
    );
    const byUid = (await json(`jobs?resource=${study.studyInstanceUID}`)).body.jobs as Job[];
    assert.equal(byUid.length, 2);
    const byId = (await json(`jobs?resource=${studyOrthancId}&status=succeeded`)).body.jobs as Job[];
    assert.deepEqual(
      byId.map((j) => j.id),
      [succeeded.id],
    );
    assert.deepEqual((await json('jobs?resource=1.2.3.4.5')).body.jobs, []);

    const page1 = await json('jobs?limit=1');
    assert.equal((page1.body.jobs as Job[]).length, 1);
    assert.equal(typeof page1.body.next, 'string');
    const page2 = await json(`jobs?limit=1&cursor=${encodeURIComponent(page1.body.next as string)}`);
    const seen = [...(page1.body.jobs as Job[]), ...(page2.body.jobs as Job[])].map((j) => j.id);
    assert.deepEqual(new Set(seen), new Set([succeeded.id, failed.id]), 'two pages of one cover both jobs, no overlap');
    assert.equal(page2.body.next, undefined, 'no page after the last job');
    const page1Job = (page1.body.jobs as Job[])[0];
    assert.ok(Date.parse(page1Job.createdAt) >= Date.parse((page2.body.jobs as Job[])[0].createdAt), 'newest first');
  });

  it('rejects bad query parameters with a reason', async () => {
    for (const [query, reason] of [
      ['limit=0', /limit/],
      ['limit=abc', /limit/],
      ['status=done', /status/],
      ['resource=M%C3%BCller', /Orthanc id or a StudyInstanceUID/],
      ['cursor=bm90LWEtY3Vyc29y', /not a cursor/],
      ['patient=x', /unknown parameter/],
    ] as const) {
      const { status, body } = await json(`jobs?${query}`);
      assert.equal(status, 400, query);
      assert.match(String(body.error), reason, query);
    }
  });

  it('shows one job with its steps, timings, counts and output path', async () => {
    const { status, body } = await json(`jobs/${succeeded.id}`);
    assert.equal(status, 200);
    const job = body as unknown as Job;
    assert.deepEqual(
      job.steps.map((s) => [s.name, s.status]),
      [
        ['download', 'succeeded'],
        ['publish', 'succeeded'],
      ],
    );
    const download = job.steps[0];
    assert.equal(download.instances, 5);
    assert.ok((download.bytes ?? 0) > 5 * 256 * 256 * 2, 'bytes of five 256x256 16-bit images');
    assert.ok(download.durationMs !== undefined && download.startedAt && download.endedAt);
    assert.ok(job.outputPath?.startsWith(path.join(stack.storageDir, 'mr_download') + path.sep));
    assert.equal((await json('jobs/0123456789abcdef0123456789abcdef')).status, 404);
    assert.equal((await json('jobs/..%2F..%2Fetc')).status, 400);
  });

  it('lists rules with their validation state', async () => {
    const { status, body } = await json('rules');
    assert.equal(status, 200);
    const rules = body.rules as Array<{
      id: string;
      valid: boolean;
      active?: boolean;
      steps?: string[];
      errors: string[];
    }>;
    const byId = Object.fromEntries(rules.map((r) => [r.id, r]));
    assert.equal(byId.mr_download.valid, true);
    assert.deepEqual(byId.mapped_research.steps, ['download', 'anonymise']);
    assert.equal(byId.broken.valid, false);
    assert.match(byId.broken.errors.join(' '), /JSON/i);
    assert.deepEqual(body.ignored, ['mapping.csv']);
  });

  it('dry-runs the rules against a study without acting', async () => {
    const before = (await stack.jobs()).length;
    const { status, body } = await json(`studies/${studyOrthancId}/dry-run`);
    assert.equal(status, 200);
    const verdicts = body.verdicts as Array<{
      ruleId: string;
      matched: boolean;
      wouldRun: boolean;
      reasons: Array<{ explanation: string }>;
    }>;
    const mr = verdicts.find((v) => v.ruleId === 'mr_download')!;
    assert.equal(mr.wouldRun, true);
    assert.match(mr.reasons[0].explanation, /Modality contains "MR" \(Series\): passed, saw "MR", "MR"/);
    const one = await json(`studies/${studyOrthancId}/dry-run?rules=mapped_research,nope`);
    assert.deepEqual(
      (one.body.verdicts as Array<{ ruleId: string }>).map((v) => v.ruleId),
      ['mapped_research'],
    );
    assert.deepEqual(one.body.unknownRules, ['nope']);
    assert.equal((await json('studies/ffffffff-ffffffff-ffffffff-ffffffff-ffffffff/dry-run')).status, 404);
    assert.equal((await json('studies/not-an-id/dry-run')).status, 400);
    assert.equal((await json(`studies/${studyOrthancId}/dry-run?rule=x`)).status, 400, 'unknown parameter');
    assert.equal((await stack.jobs()).length, before, 'a dry run creates no job');
  });

  it('counts the last 24 hours from the ledger', async () => {
    const { status, body } = await json('stats');
    assert.equal(status, 200);
    const stats = body as {
      jobs: Record<string, number>;
      instances: number;
      hourly: Array<{ instances: number; failed: number }>;
      rules: Record<string, { succeeded: number; failed: number }>;
    };
    assert.equal(stats.jobs.created, 2);
    assert.equal(stats.jobs.succeeded, 1);
    assert.equal(stats.jobs.failed, 1);
    assert.equal(stats.instances, 5);
    assert.equal(stats.hourly.length, 24);
    assert.equal(
      stats.hourly.reduce((n, h) => n + h.instances, 0),
      5,
    );
    assert.equal(stats.hourly.at(-1)!.failed + stats.hourly.at(-2)!.failed, 1);
    assert.deepEqual(stats.rules.mapped_research, { succeeded: 0, failed: 1, open: 0 });
  });

  it('refuses operator actions that a cross-site form could send (no JSON content type)', async () => {
    for (const route of [`jobs/${failed.id}/retry`, `studies/${studyOrthancId}/run`]) {
      for (const contentType of [
        'application/x-www-form-urlencoded',
        'text/plain',
        'multipart/form-data; boundary=x',
      ]) {
        const response = await api(route, { method: 'POST', contentType });
        assert.equal(response.status, 415, `${route} as ${contentType}`);
      }
    }
    assert.equal((await stack.jobStore.get(failed.id))?.status, 'failed', 'nothing was retried');
  });

  it('refuses to retry a job that has not failed', async () => {
    const { status, body } = await json(`jobs/${succeeded.id}/retry`, { method: 'POST' });
    assert.equal(status, 409);
    assert.match(String(body.error), /succeeded; only failed jobs/);
    assert.equal((await json('jobs/0123456789abcdef0123456789abcdef/retry', { method: 'POST' })).status, 404);
  });

  describe('dashboard in headless Chromium', () => {
    let browser: Browser;
    let page: Page;
    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      browser = await launchChromium();
      page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    });
    after(async () => {
      await browser?.close();
    });

    it('is self-contained: no external script, style, font or image', async () => {
      const response = await api('dashboard');
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /text\/html/);
      assert.match(response.headers.get('content-security-policy') ?? '', /default-src 'none'/);
      const html = await response.text();
      assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:)?\/\//i);
      assert.doesNotMatch(html, /@import|url\(/i);
    });

    it("allows by hash exactly the script and style it serves, which are the build's files", async () => {
      const response = await api('dashboard');
      const html = await response.text();
      assertPolicyMatches(html, response.headers.get('content-security-policy') ?? '');
      const built = path.join(REPO_ROOT, 'dist/shared/operator/dashboard');
      assert.deepEqual(inlineTexts(html, 'script'), [await readFile(path.join(built, 'dashboard.js'), 'utf8')]);
      assert.deepEqual(inlineTexts(html, 'style'), [await readFile(path.join(built, 'dashboard.css'), 'utf8')]);
    });

    it('shows the completed job, the failed one with its reason, and Retry re-runs it', async () => {
      const external: string[] = [];
      const problems: string[] = [];
      page.on('request', (r) => {
        if (!r.url().startsWith(stack.host.url)) external.push(r.url());
      });
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      await page.waitForSelector(`tr[data-job="${succeeded.id}"][data-status="succeeded"]`, { timeout: 20_000 });
      await page.waitForSelector(`tr[data-job="${failed.id}"][data-status="failed"]`);
      const reason = await page.textContent(`tr[data-failed="${failed.id}"] td.error`);
      assert.match(reason ?? '', /identity mapping mapping\.csv: .*not in the mapping file/);
      assert.equal(await page.textContent('[data-counter="instances"] b'), '5');
      assert.equal(
        await page.locator('#chart svg rect[data-instances="5"]').count(),
        1,
        'the chart has the hour with 5 instances',
      );
      assert.ok(
        await page.locator('tr[data-rule="broken"] .badge.invalid').count(),
        'the broken rule is shown invalid',
      );
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-failed.png'), fullPage: true });

      // The operator fixes the mapping and presses Retry on the failure.
      await writeFile(path.join(stack.rulesDir, 'mapping.csv'), `original,pseudonym\n${study.patientID},SUBJ-001\n`);
      await page.click(`tr[data-failed="${failed.id}"] button[data-retry]`);
      await page.waitForSelector(`tr[data-job="${failed.id}"][data-status="succeeded"]`, { timeout: 60_000 });
      await page.click(`tr[data-job="${failed.id}"]`);
      await page.waitForSelector('tr.detail');
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-retried.png'), fullPage: true });
      const shown = (await page.textContent('body')) ?? '';
      const attributes = [study.patientID, ...study.patientName.split('^'), study.accessionNumber, study.studyID];
      for (const [i, attribute] of attributes.filter((a) => a.length > 2).entries())
        assert.ok(!shown.includes(attribute), `patient attribute ${i} is not on the page`);

      const retried = await stack.jobStore.get(failed.id);
      assert.equal(retried?.status, 'succeeded');
      assert.equal(retried?.source, 'retry');
      assert.match(retried?.outputPath ?? '', /SUBJ-001/);
      assert.deepEqual(external, [], 'the page loaded nothing from elsewhere');
      assert.deepEqual(problems, [], 'no script error and no CSP violation');
    });
  });
});
