/** Download and anonymise end to end: pseudonymous paths, no PHI in files, paths or logs. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { patientPseudonym, projectKey } from '../../shared/dicom/pseudonyms';
import { dcmdump } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { E2E_ANONYMISATION_SECRET, startStack, type Stack } from './stack';

describe('anonymising pipeline end to end', { timeout: 300_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => stack?.stop());

  it('publishes a de-identified study under a pseudonymous name, with no PHI in any file, path or log', async () => {
    await stack.writeRule('research', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Tags: [{ TagName: 'StudyDescription', Value: 'research' }],
      Anonymise: { RetainLongitudinal: 'shifted' },
    });
    const study = await generateStudy({
      patientID: 'PID-E2E-ANON',
      patientName: 'Ødegård^Åsa',
      patientBirthDate: '19550101',
      studyID: 'SID-E2E-77',
      accessionNumber: 'ACC-E2E-55',
      studyDescription: 'research brain',
      privateTags: true,
      nestedSequences: true,
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 3 },
        { seriesNumber: 2, modality: 'MR', instances: 2 },
      ],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'research');
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.steps.find((s) => s.name === 'anonymise')?.instances, 5);

    const ruleFolder = path.join(stack.storageDir, 'research');
    const [published] = readdirSync(ruleFolder);
    assert.match(
      published,
      new RegExp(
        `^${patientPseudonym(projectKey(E2E_ANONYMISATION_SECRET, 'research'), 'PID-E2E-ANON')}-ST[0-9a-f]{12}$`,
      ),
    );
    const identifiers = [
      'PID-E2E-ANON',
      'Ødegård',
      'Åsa',
      '19550101',
      'SID-E2E-77',
      'ACC-E2E-55',
      study.studyInstanceUID,
      ...study.series.map((s) => s.seriesInstanceUID),
      ...study.series.flatMap((s) => s.files.map((f) => f.sopInstanceUID)),
    ];
    const all = readdirSync(ruleFolder, { recursive: true }).map(String);
    const files = all.filter((f) => statSync(path.join(ruleFolder, f)).isFile());
    assert.equal(files.length, 5);
    for (const rel of all)
      for (const id of identifiers) assert.ok(!rel.includes(id), `path ${rel} contains an identifier`);
    for (const rel of files) {
      const bytes = readFileSync(path.join(ruleFolder, rel));
      for (const id of identifiers) {
        assert.equal(bytes.indexOf(Buffer.from(id, 'utf8')), -1, `${rel} contains ${id}`);
        assert.equal(bytes.indexOf(Buffer.from(id, 'latin1')), -1, `${rel} contains ${id} (Latin-1)`);
      }
      const dump = await dcmdump(path.join(ruleFolder, rel));
      assert.match(dump, /\(0012,0062\) CS \[YES\]/);
      assert.ok(dump.includes(`[${path.basename(rel, '.dcm')}]`), 'the file is named after its new SOP Instance UID');
    }
    const logs = stack.host.logs();
    for (const id of identifiers) assert.ok(!logs.includes(id), `the function app logged ${id}`);
    assert.deepEqual(
      (await stack.client.listStudies({ since: 0, limit: 10 })).length,
      1,
      'nothing was stored back into Orthanc',
    );
  });
});
