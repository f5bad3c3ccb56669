import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient } from '../../shared/orthanc/client';
import { storescu } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { makeTempDir } from '../support/process';

const run = promisify(execFile);
const REPO = path.resolve(__dirname, '../..');

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/rules-cli.ts'), ...args], { cwd: REPO, env: { ...process.env, ...env } });
    return { code: 0, stdout };
  } catch (error) {
    const e = error as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

describe('rules CLI against a real Orthanc', { timeout: 120_000 }, () => {
  let orthanc: OrthancServer;
  let study: GeneratedStudy;
  let studyId: string;
  const rules = makeTempDir('rules-cli-');

  before(async () => {
    orthanc = await startOrthanc();
    study = await generateStudy({
      studyDescription: 'Brain research',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1 MPRAGE', instances: 1, extra: { MagneticFieldStrength: '3', ProtocolName: 'research_t1' } },
        { seriesNumber: 2, modality: 'MR', seriesDescription: 'localizer', instances: 1, extra: { MagneticFieldStrength: '1.5' } },
      ],
    });
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet, callingAet: 'MRCONSOLE' });
    const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    studyId = (await client.lookup(study.studyInstanceUID))[0].ID;
    mkdirSync(rules, { recursive: true });
    // MagneticFieldStrength (0018,0087) and the sending AE are not Orthanc main tags: read from an instance.
    writeFileSync(path.join(rules, 'threetesla.json'), JSON.stringify({ CheckOn: 'Study', Tags: [{ TagName: 'MagneticFieldStrength', Value: '3', Operator: 'equals' }, { TagName: 'RemoteAET', Value: 'mrconsole', Operator: 'equals' }, { TagName: 'StudyDescription', Value: 'brain' }] }));
    writeFileSync(path.join(rules, 'ct_only.json'), JSON.stringify({ CheckOn: 'Study', Tags: [{ TagName: 'Modality', Value: 'CT' }] }));
    writeFileSync(path.join(rules, 'broken.json'), '{"CheckOn": ');
    writeFileSync(path.join(rules, 'automation_template.json'), '{}');
  });
  after(async () => orthanc?.stop());

  it('test --study explains which rules match and why, including tags read from an instance', async () => {
    const { stdout } = await cli(['test', rules, '--study', studyId, '--json'], orthanc.env);
    const report = JSON.parse(stdout) as { results: Array<{ ruleId: string; matched: boolean; reasons: Array<{ tag: string; passed: boolean; seen: unknown[] }> }>; ignored: string[]; problems: Array<{ file: string }> };
    const three = report.results.find((r) => r.ruleId === 'threetesla')!;
    assert.equal(three.matched, true, JSON.stringify(three));
    assert.deepEqual(three.reasons.find((r) => r.tag === 'MagneticFieldStrength')?.seen, ['3', '1.5']);
    assert.equal(report.results.find((r) => r.ruleId === 'ct_only')?.matched, false);
    assert.deepEqual(report.ignored, ['automation_template.json']);
    assert.deepEqual(report.problems.map((p) => p.file), ['broken.json']);
  });

  it('human output names matches and failed checks', async () => {
    const { stdout } = await cli(['test', rules, '--study', studyId], orthanc.env);
    assert.match(stdout, /MATCH\s+threetesla/);
    assert.match(stdout, /no match ct_only\n\s+✗ Modality contains "CT" \(Series\): failed, saw "MR", "MR"/);
  });

  it('check exits 1 naming each bad file', async () => {
    const { code, stdout } = await cli(['check', rules]);
    assert.equal(code, 1);
    assert.match(stdout, /ERROR\s+broken\.json: not valid JSON/);
    assert.match(stdout, /1 file\(s\) with errors: broken\.json/);
  });

  it('test --file reads tags from a DICOM file', async () => {
    const { stdout } = await cli(['test', rules, '--file', study.series[0].files[0].path, '--json']);
    const report = JSON.parse(stdout) as { results: Array<{ ruleId: string; reasons: Array<{ tag: string; passed: boolean }> }> };
    const three = report.results.find((r) => r.ruleId === 'threetesla')!;
    assert.equal(three.reasons.find((r) => r.tag === 'MagneticFieldStrength')?.passed, true);
  });
});
