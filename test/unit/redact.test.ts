/** PHI redaction of errors and log lines (shared/pipeline/redact.ts), without servers. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import {
  REDACTED,
  createRedaction,
  redactError,
  redactOutputPaths,
  studyPhiLookup,
} from '../../shared/pipeline/redact';

const ROOT = '/srv/automation/storage';
const JOB = {
  id: '0123456789abcdef0123456789abcdef',
  ruleId: 'plain',
  level: 'Study',
  resourceId: 'orthanc-study-id',
  rule: { steps: ['download'] },
} as unknown as Job;
const NAME = "PX-77321-O'Brien-Zakrzewska-EX7";

describe('redaction of PHI', () => {
  it('rewrites output paths under the storage root to the job id and the relative part', () => {
    const redaction = createRedaction({ storagePath: ROOT, logPhi: false });
    const redact = redaction.paths(JOB);
    const cases: Array<[string, string]> = [
      [
        `ENOSPC: no space left on device, open '${ROOT}/plain/${NAME}.WORKING/SE1-20240101-1.2.3/1.2.3.4.dcm'`,
        `ENOSPC: no space left on device, open '<job:${JOB.id}>.WORKING/SE1-20240101-1.2.3/1.2.3.4.dcm'`,
      ],
      [
        `EROFS: read-only file system, mkdir '${ROOT}/plain/${NAME}.WORKING'`,
        `EROFS: read-only file system, mkdir '<job:${JOB.id}>.WORKING'`,
      ],
      [
        `rename ${ROOT}/plain/${NAME}.zip.WORKING -> ${ROOT}/plain/${NAME}.zip failed`,
        `rename <job:${JOB.id}>.zip.WORKING -> <job:${JOB.id}>.zip failed`,
      ],
      [`${ROOT}/plain/${NAME}.REPLACED-1700000000000`, `<job:${JOB.id}>.REPLACED-1700000000000`],
      [`mkdir '${ROOT}/plain'`, `mkdir '${ROOT}/plain'`],
      [`nothing here ${ROOT}`, `nothing here ${ROOT}`],
    ];
    for (const [input, expected] of cases) assert.equal(redact(input), expected);
    assert.equal(
      redaction.anywhere(cases[0][0]),
      `ENOSPC: no space left on device, open '<output>.WORKING/SE1-20240101-1.2.3/1.2.3.4.dcm'`,
    );
  });

  it("replaces the job's known output name where it appears bare", () => {
    const redact = createRedaction({ storagePath: ROOT, logPhi: false }).paths({
      id: JOB.id,
      outputPath: `${ROOT}/plain/${NAME}`,
    });
    assert.equal(
      redact(`Nothing to publish: ${NAME}.WORKING is missing`),
      `Nothing to publish: <job:${JOB.id}>.WORKING is missing`,
    );
  });

  it("strips the study's patient values in their spellings, and leaves short values alone", async () => {
    const redaction = createRedaction({
      storagePath: ROOT,
      logPhi: false,
      knownPhi: async () => ({
        names: [NAME],
        values: ['PX-77321', "O'Brien-Zakrzewska^Ólafur", "O'Brien-Zakrzewska", 'Ólafur', 'M'],
      }),
    });
    const redact = await redaction.forJob(JOB);
    assert.equal(
      redact(`patient PX-77321 (O'BRIEN-ZAKRZEWSKA^ÓLAFUR) in ${NAME}`),
      `patient ${REDACTED} (${REDACTED}) in <job:${JOB.id}>`,
    );
    assert.equal(redact('Mode M'), 'Mode M', 'a one-letter value is not searched for');
    assert.equal(redact('olafur'), 'olafur', 'only its own spellings (a lower-cased accented letter stays distinct)');
    assert.equal(redact('ólafur'), REDACTED);
  });

  it('does nothing when AUTOMATION_LOG_PHI is true', async () => {
    let looked = false;
    const redaction = createRedaction({
      storagePath: ROOT,
      logPhi: true,
      knownPhi: async () => ((looked = true), { names: [], values: ['PX-77321'] }),
    });
    const text = `PX-77321 open '${ROOT}/plain/${NAME}.WORKING/x.dcm'`;
    assert.equal(redaction.enabled, false);
    assert.equal((await redaction.forJob(JOB))(text), text);
    assert.equal(redaction.paths(JOB)(text), text);
    assert.equal(redaction.anywhere(text), text);
    assert.equal(looked, false, 'Orthanc is not even asked');
  });

  it('still rewrites paths when the look-up fails (Orthanc down)', async () => {
    const redaction = createRedaction({
      storagePath: ROOT,
      logPhi: false,
      knownPhi: async () => Promise.reject(new Error('ECONNREFUSED')),
    });
    assert.equal((await redaction.forJob(JOB))(`${ROOT}/plain/${NAME}/a.dcm`), `<job:${JOB.id}>/a.dcm`);
  });

  it('keeps the error name and rewrites message and stack, dropping the cause', () => {
    const original = Object.assign(new Error(`open '${ROOT}/plain/${NAME}/a.dcm'`, { cause: new Error(NAME) }), {
      code: 'ENOSPC',
    });
    original.name = 'SystemError';
    const copy = redactError(original, createRedaction({ storagePath: ROOT, logPhi: false }).paths(JOB));
    assert.equal(copy.name, 'SystemError');
    assert.equal(copy.message, `open '<job:${JOB.id}>/a.dcm'`);
    assert.ok(!copy.stack?.includes(NAME), copy.stack);
    assert.equal(copy.cause, undefined);
  });

  it('handles values that look like RegExp syntax literally', () => {
    assert.equal(
      redactOutputPaths(`${ROOT}/r/(a+)+$[x]/f`, ROOT, () => '<n>'),
      '<n>/f',
    );
  });

  it("looks up the study's patient values and its plain output name", async () => {
    const study = {
      ID: 's',
      PatientMainDicomTags: { PatientID: 'PX-77321', PatientName: 'Zakrzewska^Ólafur', PatientSex: 'M' },
      MainDicomTags: { AccessionNumber: 'ACC-991', StudyID: '7' },
    };
    const lookup = studyPhiLookup(
      {
        getStudy: async () => study as never,
        getSeries: async () => {
          throw new Error('not asked');
        },
      },
      { outputName: async () => 'PX-77321-Zakrzewska-EX7' },
    );
    const phi = await lookup(JOB);
    assert.deepEqual(phi.names, ['PX-77321-Zakrzewska-EX7']);
    for (const v of ['PX-77321', 'Zakrzewska^Ólafur', 'Zakrzewska', 'Ólafur', 'ACC-991'])
      assert.ok(phi.values.includes(v), v);
  });
});
