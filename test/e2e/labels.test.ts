/**
 * The whole stack marks each study a rule processed with `automation-<rule>` where Orthanc has labels
 * (1.12: Orthanc Explorer 2 shows them), and on Orthanc 1.10 finishes the same jobs with no label and no
 * warning. Runs in both test legs (ORTHANC_FLAVOUR) and asserts according to the version Orthanc reports.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { ruleLabel } from '../../shared/pipeline/studyLabels';
import { startStack, type Stack } from './stack';

describe('labels on processed studies end to end', { timeout: 300_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ stableAgeSeconds: 2 });
  });
  after(async () => {
    await stack?.stop();
  });

  it('labels the study per matching rule under Orthanc 1.12, and leaves it unlabelled without error under 1.10', async (t) => {
    const tag = (value: string, level = 'Study', name = 'StudyDescription') => [
      { TagName: name, Level: level, Value: value },
    ];
    await stack.writeRule('label-brain', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: tag('labelcheck'),
    });
    // A rule file name with characters a label cannot carry.
    await stack.writeRule('T1 series.v2', {
      CheckOn: 'Series',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: tag('t1', 'Series', 'SeriesDescription'),
    });
    await stack.writeRule('label-knee', { CheckOn: 'Study', IsActive: true, Action: 'DOWNLOAD', Tags: tag('knee') });
    const study = await generateStudy({
      patientID: 'P-LABEL-1',
      studyDescription: 'labelcheck brain',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1 sag', instances: 2 },
        { seriesNumber: 2, modality: 'MR', seriesDescription: 'T2 ax', instances: 1 },
      ],
    });
    await stack.sendStudy(study);
    const studyId = await stack.studyId(study.studyInstanceUID);
    const jobs = await stack.waitForJobs(2, (j) => j.studyInstanceUid === study.studyInstanceUID);
    assert.deepEqual(jobs.map((j) => `${j.ruleId}:${j.status}`).sort(), [
      'T1 series.v2:succeeded',
      'label-brain:succeeded',
    ]);

    const { version } = stack.orthanc;
    t.diagnostic(`Orthanc ${version}`);
    const labelsNow = async () =>
      ((await stack.client.raw<{ Labels?: string[] }>('GET', `/studies/${studyId}`)).data.Labels ?? []).sort();
    if ((await stack.client.capabilities()).labels) {
      assert.ok(version.startsWith('1.12.'), `labels reported by Orthanc ${version}`);
      const expected = ['automation-label-brain', ruleLabel('T1 series.v2')].sort();
      let seen: string[] = [];
      await waitFor(async () => (seen = await labelsNow()).join() === expected.join(), {
        timeoutMs: 15_000,
        description: `labels ${expected.join(', ')} on the study`,
        onTimeout: () => `labels: ${seen.join(', ')}\n${stack.host.logs().slice(-3000)}`,
      });
      assert.match(ruleLabel('T1 series.v2'), /^automation-T1_series_v2-[0-9a-f]{8}$/);
      // Orthanc's own search finds the study by its label (what Explorer 2's label filter does).
      const found = await stack.client.raw<string[]>('POST', '/tools/find', {
        data: { Level: 'Study', Query: {}, Labels: ['automation-label-brain'], LabelsConstraint: 'All' },
        headers: { 'Content-Type': 'application/json' },
      });
      assert.deepEqual(found.data, [studyId]);
    } else {
      assert.ok(version.startsWith('1.10.'), `no labels on Orthanc ${version}`);
      // The job ended some moments ago; a label would have been sent by now.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.deepEqual(await labelsNow(), []);
    }
    assert.doesNotMatch(stack.host.logs(), /not added in Orthanc/, 'no label warning in either version');
    const after = await stack.jobs((j) => j.studyInstanceUid === study.studyInstanceUID);
    assert.ok(
      after.every((j) => j.status === 'succeeded' && !j.error),
      'jobs stay succeeded',
    );
  });
});
