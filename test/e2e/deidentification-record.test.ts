/**
 * The de-identification record end to end (issue 16): an anonymising, zipping rule runs on a study
 * with identifying values outside Table E.1-1; the record is on the job (`GET /api/jobs/{id}`), in
 * the dashboard's job detail (headless Chromium) and in the zip as DEIDENTIFICATION.json beside
 * MANIFEST.json, with counts per basis of decision and no original value anywhere in it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchChromium } from '../support/chromium';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { makeTempDir, requireBinary } from '../support/process';
import { startStack, type Stack } from './stack';

const PLANTED = {
  CommentsOnTheScheduledProcedureStep: 'Johnathan Doe MRN7654321',
  EvaluatorName: 'Doe^Johnathan',
  VolumeFrameOfReferenceUID: '1.2.826.0.1.3680043.9.616161.1',
};
const NEEDLES = ['Johnathan', 'MRN7654321', '616161'];

interface Record {
  profile: { table: string };
  instances: number;
  counts: { [basis: string]: { [outcome: string]: number } };
  fallbacks: { [where: string]: number };
  warnings: number | string[];
}

describe('de-identification record end to end', { timeout: 300_000 }, () => {
  let stack: Stack;
  let job: Job;
  before(async () => {
    stack = await startStack();
    await stack.writeRule('deid', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise', 'zip'],
      Zip: { Level: 1, KeepFolder: false },
      Tags: [{ TagName: 'StudyDescription', Value: 'deid record' }],
    });
    const study = await generateStudy({
      studyDescription: 'deid record',
      privateTags: true,
      nestedSequences: true,
      extra: PLANTED,
      series: [{ seriesNumber: 1, modality: 'MR', instances: 3 }],
    });
    await stack.sendStudy(study);
    [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'deid');
    assert.equal(job.status, 'succeeded', job.error);
  });
  after(async () => stack?.stop());

  it('is on the job in the API: counts per basis, the fallback tags, no original value', async () => {
    const response = await fetch(`${stack.host.url}/api/jobs/${job.id}`, {
      headers: { 'x-functions-key': stack.functionKey },
    });
    assert.equal(response.status, 200);
    const text = await response.text();
    for (const needle of NEEDLES) assert.ok(!text.includes(needle), `the API answer holds ${needle}`);
    const body = JSON.parse(text) as { job?: Job } & Job;
    const steps = (body.job ?? body).steps;
    const record = steps.find((s) => s.name === 'anonymise')?.detail?.deidentification as Record;
    assert.ok(record, JSON.stringify(steps));
    assert.equal(record.instances, 3);
    assert.match(record.profile.table, /^PS3\.15 \d{4}[a-e] Table E\.1-1$/);
    assert.equal(record.counts['vr:PN']?.removed, 3, 'Evaluator Name, one per instance');
    assert.equal(record.counts['vr:LT']?.removed, 3, 'Comments on the Scheduled Procedure Step');
    assert.ok((record.counts['vr:UI']?.remapped ?? 0) >= 3, 'Volume Frame of Reference UID');
    assert.ok((record.counts.table?.removed ?? 0) > 0 && (record.counts['safe-list']?.kept ?? 0) > 0);
    assert.equal(record.fallbacks['(0040,0400) CommentsOnTheScheduledProcedureStep'], 3);
  });

  it('is in the zip as DEIDENTIFICATION.json beside MANIFEST.json', async () => {
    const zip = `${job.outputPath}`.endsWith('.zip') ? `${job.outputPath}` : `${job.outputPath}.zip`;
    const out = makeTempDir('deid-zip-');
    mkdirSync(out, { recursive: true });
    execFileSync(requireBinary('unzip', 'unzip'), ['-q', zip, '-d', out]);
    const name = path.basename(zip, '.zip');
    const document = readFileSync(path.join(out, name, 'DEIDENTIFICATION.json'), 'utf8');
    for (const needle of NEEDLES) assert.ok(!document.includes(needle), `DEIDENTIFICATION.json holds ${needle}`);
    const record = JSON.parse(document) as Record;
    assert.equal(record.instances, 3);
    assert.equal(record.counts['vr:PN']?.removed, 3);
    assert.ok(Array.isArray(record.warnings));
    const manifest = JSON.parse(readFileSync(path.join(out, name, 'MANIFEST.json'), 'utf8')) as {
      totals: { files: number };
      extras?: Array<{ path: string }>;
    };
    assert.equal(manifest.totals.files, 3, 'the record is not one of the study files');
    assert.deepEqual(
      manifest.extras?.map((e) => e.path),
      [`${name}/DEIDENTIFICATION.json`],
    );
  });

  it('is in the dashboard job detail', async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      await page.waitForSelector(`tr[data-job="${job.id}"][data-status="succeeded"]`, { timeout: 20_000 });
      await page.click(`tr[data-job="${job.id}"]`);
      const text = (await (await page.waitForSelector(`[data-deid-of="${job.id}"]`)).textContent()) ?? '';
      assert.match(text, /De-identification PS3\.15 \d{4}[a-e] Table E\.1-1: 3 instances; /);
      assert.match(text, /vr:PN removed 3/);
      for (const needle of NEEDLES) assert.ok(!text.includes(needle), needle);
    } finally {
      await browser.close();
    }
  });
});
