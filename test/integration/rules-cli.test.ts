/**
 * The rules CLI against a REAL Orthanc: a generated study stored over DICOM from a named AE, then
 * `npm run rules -- test --study/--series` must explain matches using main tags, tags that only an
 * instance carries (MagneticFieldStrength, a private (gggg,eeee) tag) and the sending AE title.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient } from '../../shared/orthanc/client';
import { storescu } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { makeTempDir, removeTempDir } from '../support/process';

const run = promisify(execFile);
const REPO = path.resolve(__dirname, '../..');

async function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'scripts/rules-cli.ts'), ...args],
      { cwd: REPO, env: { ...process.env, ...env } },
    );
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

interface Report {
  results: Array<{
    ruleId: string;
    matched: boolean;
    note?: string;
    reasons: Array<{ tag: string; passed: boolean; seen: unknown[] }>;
  }>;
  ignored: string[];
  problems: Array<{ file: string; severity: string }>;
}

describe('rules CLI against a real Orthanc', { timeout: 180_000 }, () => {
  let orthanc: OrthancServer | undefined;
  let study: GeneratedStudy;
  let studyId: string;
  let localizerSeriesId: string;
  const rules = makeTempDir('rules-cli-');
  const rule = (name: string, body: unknown) =>
    writeFileSync(path.join(rules, name), typeof body === 'string' ? body : JSON.stringify(body));
  const result = (report: Report, id: string) => {
    const found = report.results.find((r) => r.ruleId === id);
    assert.ok(found, `rule ${id} is in the report`);
    return found;
  };

  before(async () => {
    orthanc = await startOrthanc();
    study = await generateStudy({
      patientName: 'Müller^Jürgen',
      studyDescription: 'Brain research',
      privateTags: true,
      series: [
        {
          seriesNumber: 1,
          modality: 'MR',
          seriesDescription: 'T1 MPRAGE',
          instances: 2,
          extra: { MagneticFieldStrength: '3', PatientWeight: '71' },
        },
        {
          seriesNumber: 2,
          modality: 'MR',
          seriesDescription: 'localizer',
          instances: 1,
          extra: { MagneticFieldStrength: '1.5' },
        },
      ],
    });
    await storescu(
      study.series.flatMap((s) => s.files.map((f) => f.path)),
      { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet, callingAet: 'MRCONSOLE' },
    );
    const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    studyId = (await client.lookup(study.studyInstanceUID))[0].ID;
    for (const id of (await client.getStudy(studyId)).Series) {
      if ((await client.getSeries(id)).MainDicomTags.SeriesDescription === 'localizer') localizerSeriesId = id;
    }
    assert.ok(localizerSeriesId, 'the localizer series is in Orthanc');

    // MagneticFieldStrength, PatientWeight, (0029,1010) and the sending AE are not Orthanc main tags: read from an instance.
    rule('threetesla.json', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [
        { TagName: 'MagneticFieldStrength', Value: '3', Operator: 'equals' },
        { TagName: 'RemoteAET', Value: 'mrconsole', Operator: 'equals' },
        { TagName: 'StudyDescription', Level: 'Study', Value: 'brain' },
        { TagName: 'PatientName', Level: 'Patient', Value: 'MÜLLER' },
      ],
    });
    rule('private_tag.json', {
      CheckOn: 'Study',
      IsActive: true,
      Tags: [{ TagName: '(0029,1010)', Value: study.patientID }],
      AnyOf: [
        [{ TagName: 'PatientWeight', Value: '80' }],
        [{ TagName: 'PatientWeight', Value: '71', Operator: 'equals' }],
      ],
    });
    rule('not_three.json', {
      CheckOn: 'Study',
      IsActive: true,
      Tags: [{ TagName: 'MagneticFieldStrength', Value: '3', Operator: 'notEquals' }],
    });
    rule('other_sender.json', {
      CheckOn: 'Study',
      IsActive: true,
      Tags: [{ TagName: 'SendingAET', Value: 'CT_CONSOLE' }],
    });
    rule('ct_only.json', { CheckOn: 'Study', IsActive: true, Tags: [{ TagName: 'Modality', Value: 'CT' }] });
    rule('localizer_series.json', {
      CheckOn: 'Series',
      IsActive: true,
      Tags: [
        { TagName: 'SeriesDescription', Value: 'LOCALIZER', Operator: 'equals' },
        { TagName: 'MagneticFieldStrength', Value: '1.5', Operator: 'equals' },
      ],
    });
    rule('broken.json', '{"CheckOn": ');
    rule('automation_template.json', '{}');
    rule('notes.txt', 'not a rule');
  });
  after(async () => {
    await orthanc?.stop();
    removeTempDir(rules);
  });

  it('test --study matches on main tags, instance-only tags, non-ASCII names and the sending AE', async () => {
    assert.ok(orthanc);
    const { code, stdout } = await cli(['test', rules, '--study', studyId, '--json'], orthanc.env);
    assert.equal(code, 0);
    const report = JSON.parse(stdout) as Report;
    const three = result(report, 'threetesla');
    assert.equal(three.matched, true, JSON.stringify(three));
    assert.deepEqual(
      three.reasons
        .find((r) => r.tag === 'MagneticFieldStrength')
        ?.seen.slice()
        .sort(),
      ['1.5', '3'],
    );
    assert.deepEqual(three.reasons.find((r) => r.tag === 'RemoteAET')?.seen, ['MRCONSOLE', 'MRCONSOLE']);
    assert.deepEqual(three.reasons.find((r) => r.tag === 'PatientName')?.seen, ['Müller^Jürgen']);
    assert.equal(result(report, 'private_tag').matched, true, JSON.stringify(result(report, 'private_tag')));
    assert.equal(result(report, 'not_three').matched, false, 'a negation fails when any series has the positive form');
    assert.equal(result(report, 'other_sender').matched, false);
    assert.equal(result(report, 'ct_only').matched, false);
    assert.match(result(report, 'localizer_series').note ?? '', /checks on Series/);
    assert.deepEqual(report.ignored.sort(), ['automation_template.json', 'notes.txt']);
    assert.deepEqual(
      report.problems.filter((p) => p.severity === 'error').map((p) => p.file),
      ['broken.json'],
    );
  });

  it('test --series evaluates one series (its study tags included)', async () => {
    assert.ok(orthanc);
    const { stdout } = await cli(['test', rules, '--series', localizerSeriesId, '--json'], orthanc.env);
    const report = JSON.parse(stdout) as Report;
    assert.equal(result(report, 'localizer_series').matched, true, JSON.stringify(result(report, 'localizer_series')));
    assert.equal(result(report, 'threetesla').matched, false, 'the localizer alone is 1.5 T');
  });

  it('human output names matches and failed checks with the values seen', async () => {
    assert.ok(orthanc);
    const { stdout } = await cli(['test', rules, '--study', studyId], orthanc.env);
    assert.match(stdout, /MATCH\s+threetesla → download/);
    assert.match(stdout, /no match ct_only\n\s+✗ Modality contains "CT" \(Series\): failed, saw "MR", "MR"/);
    assert.match(stdout, /ERROR\s+broken\.json: not valid JSON/);
    assert.match(stdout, /ignored automation_template\.json/);
  });

  it('test --study on an unknown id fails with a clear message', async () => {
    assert.ok(orthanc);
    const { code, stderr } = await cli(['test', rules, '--study', 'no-such-study'], orthanc.env);
    assert.equal(code, 1);
    assert.match(stderr, /cannot read study no-such-study from Orthanc/);
  });

  it('check exits 1 naming each bad file', async () => {
    const { code, stdout } = await cli(['check', rules]);
    assert.equal(code, 1);
    assert.match(stdout, /ERROR\s+broken\.json: not valid JSON/);
    assert.match(stdout, /1 file\(s\) with errors .*: broken\.json/);
  });

  it('test --file reads tags from a DICOM file, the sending AE from --remote-aet', async () => {
    const { stdout } = await cli([
      'test',
      rules,
      '--file',
      study.series[0].files[0].path,
      '--remote-aet',
      'MRCONSOLE',
      '--json',
    ]);
    const report = JSON.parse(stdout) as Report;
    assert.equal(result(report, 'threetesla').matched, true, JSON.stringify(result(report, 'threetesla')));
    assert.equal(result(report, 'private_tag').matched, true);
  });
});
