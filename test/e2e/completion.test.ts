/**
 * Completeness conditions end to end (real Orthanc, Azurite, the app under the devhost, storescu):
 * a study missing a required series is not processed until the series arrives; StableSeconds waits
 * past Orthanc's StableAge by a delayed re-evaluation; ForceAfter with each OnTimeout (proceed runs,
 * fail makes a failed job with the reason, ignore makes no job but says so in the log).
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

describe('completeness conditions end to end', { timeout: 240_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ stableAgeSeconds: 2 });
  });
  after(async () => {
    await stack?.stop();
  });

  /** The devhost's log line for a rule's evaluation of a study. */
  const logged = (studyId: string, ruleId: string, outcome: string) =>
    stack.host.logs().includes(`Study ${studyId} rule '${ruleId}': ${outcome}`);

  it('does not process a study missing a required series; the job comes when the series arrives', async () => {
    await stack.writeRule('needs-series', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Value: 'completeness series' }],
      Completion: { RequiredSeries: "'Axial T2' and ('Sag T1 GRE' or 'Sag T1 TSE')" },
    });
    const study = await generateStudy({
      studyDescription: 'completeness series',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'Axial T2 FSE', instances: 2 },
        { seriesNumber: 2, modality: 'MR', seriesDescription: 'sag t1 tse', instances: 2 },
      ],
    });
    await stack.sendStudy(
      study,
      study.series[0].files.map((f) => f.path),
    );
    const id = await stack.studyId(study.studyInstanceUID);
    await waitFor(() => logged(id, 'needs-series', 'waiting-completion'), {
      timeoutMs: 30_000,
      description: 'the stable study to be evaluated and held back',
      onTimeout: () => stack.host.logs().slice(-3000),
    });
    assert.match(stack.host.logs(), /RequiredSeries 'Axial T2' and \('Sag T1 GRE' or 'Sag T1 TSE'\) not present/);
    // Another stable period passes: still nothing.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    assert.deepEqual(await stack.jobs((j) => j.ruleId === 'needs-series'), []);

    await stack.sendStudy(
      study,
      study.series[1].files.map((f) => f.path),
    );
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'needs-series');
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.completion?.outcome, 'complete');
    assert.deepEqual(
      job.completion?.conditions.map((c) => `${c.condition} ${c.met}`),
      ['RequiredSeries true'],
    );
    const folder = job.outputPath!;
    assert.equal(readdirSync(folder).length, 2, 'both series in the result');
    assert.equal((await stack.jobs((j) => j.ruleId === 'needs-series')).length, 1, 'one job only');
  });

  it('StableSeconds waits past StableAge with a delayed re-evaluation and records that it waited', async () => {
    await stack.writeRule('quiet-longer', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Value: 'completeness quiet' }],
      Completion: { StableSeconds: 8 },
    });
    const study = await generateStudy({
      studyDescription: 'completeness quiet',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 2 }],
    });
    const sent = Date.now();
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'quiet-longer');
    const waited = (Date.parse(job.createdAt) - sent) / 1000;
    // LastUpdate has whole seconds, so the wait is measured from up to a second earlier.
    assert.ok(waited >= 7, `job made ${waited}s after the study was sent (StableSeconds 8)`);
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.completion?.outcome, 'complete');
    assert.deepEqual(job.completion?.waitedFor, ['StableSeconds']);
  });

  it('ForceAfter with each OnTimeout: proceed runs, fail fails with the reason, ignore makes no job', async () => {
    for (const onTimeout of ['proceed', 'fail', 'ignore'])
      await stack.writeRule(`force-${onTimeout}`, {
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [{ TagName: 'StudyDescription', Value: 'completeness force' }],
        Completion: { RequiredSeries: "'Never sent'", MinInstances: 2, ForceAfter: '8s', OnTimeout: onTimeout },
      });
    const study = await generateStudy({
      studyDescription: 'completeness force',
      series: [{ seriesNumber: 1, modality: 'MR', seriesDescription: 'Localizer', instances: 3 }],
    });
    await stack.sendStudy(study);
    const id = await stack.studyId(study.studyInstanceUID);
    await waitFor(() => logged(id, 'force-ignore', 'waiting-completion'), {
      timeoutMs: 30_000,
      description: 'the study to be held back first',
      onTimeout: () => stack.host.logs().slice(-3000),
    });
    const jobs = await stack.waitForJobs(2, (j) => j.ruleId.startsWith('force-'), { timeoutMs: 60_000 });
    const byRule = new Map(jobs.map((j) => [j.ruleId, j]));

    const proceeded = byRule.get('force-proceed')!;
    assert.equal(proceeded.status, 'succeeded', proceeded.error);
    assert.equal(proceeded.completion?.outcome, 'timeout');
    assert.deepEqual(proceeded.completion?.waitedFor, ['RequiredSeries']);
    assert.match(proceeded.warnings.join('\n'), /ForceAfter 8s passed .*RequiredSeries 'Never sent' not present/);
    assert.equal(readdirSync(path.join(proceeded.outputPath!)).length, 1, 'the study was downloaded anyway');

    const failed = byRule.get('force-fail')!;
    assert.equal(failed.status, 'failed');
    assert.match(
      failed.error ?? '',
      /^incomplete: ForceAfter 8s passed since the first instance arrived with RequiredSeries 'Never sent' not present/,
    );
    assert.equal(failed.completion?.outcome, 'timeout');

    await waitFor(() => logged(id, 'force-ignore', 'skipped-incomplete'), {
      timeoutMs: 15_000,
      description: "the ignored rule's log line",
      onTimeout: () => stack.host.logs().slice(-3000),
    });
    assert.match(
      stack.host.logs(),
      /rule 'force-ignore': skipped-incomplete - ForceAfter 8s passed .* OnTimeout is 'ignore', so no job/,
    );
    assert.equal(byRule.has('force-ignore'), false);
    assert.deepEqual(await stack.jobs((j) => j.ruleId === 'force-ignore'), []);
  });
});
