import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import dcmjs, { type DicomDataset } from 'dcmjs';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { PIXEL_DATA } from '../../shared/dicom/write';
import { alreadyAnonymised, anonymiseFolder } from '../../shared/dicom/folder';
import { parseIdentityMapping } from '../../shared/dicom/mapping';
import { anonymiseSettingsSchema, type AnonymiseSettings } from '../../shared/dicom/options';
import { PROFILE_SIZE } from '../../shared/dicom/profile';
import { anonymisedUid, dateShiftDays } from '../../shared/dicom/pseudonyms';
import { dcmdump } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { makeTempDir } from '../support/process';

const settings = (over: Partial<Record<keyof AnonymiseSettings, unknown>> = {}) => anonymiseSettingsSchema.parse(over);
const read = (buffer: Buffer): DicomDataset =>
  dcmjs.data.DicomMessage.readFile(
    buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer,
  ).dict;
const value = (dataset: DicomDataset, tag: string): unknown => {
  const v = dataset[tag]?.Value?.[0];
  return v && typeof v === 'object' && 'Alphabetic' in v ? (v as { Alphabetic: string }).Alphabetic : v;
};
function files(root: string): string[] {
  return readdirSync(root, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.dcm'))
    .map((f) => path.join(root, f))
    .sort();
}

describe('anonymiser', { timeout: 120_000 }, () => {
  let study: GeneratedStudy;
  let identifiers: string[];
  before(async () => {
    study = await generateStudy({
      patientID: 'PID-8812-Z',
      patientName: 'Müller^Jürgen^Karl',
      patientBirthDate: '19610723',
      studyID: 'STUDY4711X',
      accessionNumber: 'ACC-99-1234',
      institutionName: 'Klinikum Süd Forschung',
      referringPhysicianName: 'Schäfer^Anna',
      studyDescription: 'Müller brain follow-up',
      privateTags: true,
      nestedSequences: true,
      series: [
        {
          seriesNumber: 1,
          modality: 'MR',
          instances: 3,
          extra: { OperatorsName: 'Weiß^Bernd', StationName: 'MR-ROOM-7', DeviceSerialNumber: 'SN-77-01' },
        },
        { seriesNumber: 2, modality: 'CT', instances: 2 },
      ],
    });
    identifiers = [
      'PID-8812-Z',
      'Müller',
      'Jürgen',
      'Karl',
      '19610723',
      'STUDY4711X',
      'ACC-99-1234',
      'Klinikum',
      'Süd',
      'Schäfer',
      'Weiß',
      'MR-ROOM-7',
      'SN-77-01',
      study.studyDate,
      study.studyInstanceUID,
      ...study.series.map((s) => s.seriesInstanceUID),
      ...study.series.flatMap((s) => s.files.map((f) => f.sopInstanceUID)),
    ];
  });

  it('carries the whole of PS3.15 Table E.1-1', () => {
    assert.equal(PROFILE_SIZE, 621);
  });

  it('leaves no byte sequence of any original identifier in any output file or path (UTF-8 and Latin-1)', async () => {
    const dir = makeTempDir('anon-phi-');
    // Lay the study out under its original UIDs, the worst case for paths.
    for (const series of study.series) {
      const folder = path.join(dir, study.studyInstanceUID, `SE-${series.seriesInstanceUID}`);
      mkdirSync(folder, { recursive: true });
      for (const f of series.files) cpSync(f.path, path.join(folder, `${f.sopInstanceUID}.dcm`));
    }
    const result = await anonymiseFolder(dir, createAnonymiser({ secret: 'phi-test-secret', settings: settings() }), {
      concurrency: 2,
    });
    assert.equal(result.instances, 5);
    const paths = readdirSync(dir, { recursive: true }).map(String);
    assert.equal(paths.filter((p) => p.endsWith('.dcm')).length, 5);
    for (const p of paths)
      for (const id of identifiers) assert.ok(!p.includes(id), `path ${p} contains an original identifier ${id}`);
    for (const file of files(dir)) {
      const bytes = readFileSync(file);
      for (const id of identifiers) {
        for (const encoding of ['utf8', 'latin1'] as const) {
          assert.equal(
            bytes.indexOf(Buffer.from(id, encoding)),
            -1,
            `${path.basename(file)} contains ${JSON.stringify(id)} (${encoding})`,
          );
        }
        assert.equal(
          bytes.indexOf(Buffer.from(id.toUpperCase(), 'latin1')),
          -1,
          `${path.basename(file)} contains ${JSON.stringify(id.toUpperCase())}`,
        );
      }
    }
  });

  it('writes valid DICOM (dcmdump) with byte-identical pixel data and records what was done', async () => {
    const anonymiser = createAnonymiser({ secret: 'k', settings: settings() });
    for (const series of study.series) {
      for (const f of series.files) {
        const input = readFileSync(f.path);
        const out = anonymiser.anonymiseBuffer(input, 'x').output!;
        const dir = makeTempDir('anon-valid-');
        const target = path.join(dir, 'out.dcm');
        (await import('node:fs')).writeFileSync(target, out);
        const dump = await dcmdump(target);
        assert.match(dump, /\(0012,0062\) CS \[YES\]/);
        assert.match(dump, /\(0028,0303\) CS \[REMOVED\]/);
        assert.match(dump, /\(0012,0064\) SQ[\s\S]*\(0008,0100\) SH \[113100\]/);
        assert.match(dump, /\(0008,0005\) CS \[ISO_IR 192\]/);
        const before = read(input)[PIXEL_DATA].Value as ArrayBuffer[];
        const after = read(out)[PIXEL_DATA].Value as ArrayBuffer[];
        assert.ok(Buffer.from(before[0]).equals(Buffer.from(after[0])), 'pixel data unchanged');
      }
    }
  });

  it('keeps UIDs consistent across the study and identical on a second run with the same key', () => {
    const run = (secret: string) => {
      const anonymiser = createAnonymiser({ secret, settings: settings() });
      return study.series.flatMap((s) =>
        s.files.map((f) => read(anonymiser.anonymiseBuffer(readFileSync(f.path), 'x').output!)),
      );
    };
    const first = run('key-1');
    const studyUids = new Set(first.map((d) => value(d, '0020000D')));
    assert.equal(studyUids.size, 1);
    assert.equal([...studyUids][0], anonymisedUid('key-1', study.studyInstanceUID));
    // Instance 2 of series 1 references instance 1 in SourceImageSequence: the reference follows the new UID.
    const referenced = (first[1]['00082112'].Value as DicomDataset[])[0];
    assert.equal(value(referenced, '00081155'), value(first[0], '00080018'));
    const second = run('key-1');
    assert.deepEqual(
      second.map((d) => value(d, '00080018')),
      first.map((d) => value(d, '00080018')),
    );
    const other = run('key-2');
    assert.notEqual(value(other[0], '00080018'), value(first[0], '00080018'));
    assert.ok(first.every((d) => /^2\.25\.\d{1,39}$/.test(String(value(d, '00080018')))));
  });

  it('replaces identity with a keyed pseudonym, or with the operator mapping', () => {
    const input = readFileSync(study.series[0].files[0].path);
    const pseudo = read(
      createAnonymiser({ secret: 'k', settings: settings({ PseudonymPrefix: 'PRJ' }) }).anonymiseBuffer(input, 'x')
        .output!,
    );
    assert.match(String(value(pseudo, '00100020')), /^PRJ[A-Z2-7]{12}$/);
    assert.equal(value(pseudo, '00100010'), value(pseudo, '00100020'));
    const mapping = parseIdentityMapping('original,pseudonym\nPID-8812-Z,SUBJ-001\n', 'map.csv');
    const mapped = read(
      createAnonymiser({
        secret: 'k',
        settings: settings({ Identity: 'mapping', MappingFile: 'map.csv' }),
        mapping,
      }).anonymiseBuffer(input, 'x').output!,
    );
    assert.equal(value(mapped, '00100020'), 'SUBJ-001');
    const missing = parseIdentityMapping('SOMEONE-ELSE,SUBJ-002\n', 'map.csv');
    assert.throws(
      () =>
        createAnonymiser({
          secret: 'k',
          settings: settings({ Identity: 'mapping', MappingFile: 'map.csv' }),
          mapping: missing,
        }).anonymiseBuffer(input, 'x'),
      (error: Error) => /not in the mapping file map\.csv/.test(error.message) && !error.message.includes('PID-8812-Z'),
    );
    assert.throws(() => parseIdentityMapping('a,b\na,c\n', 'm.csv'), /m\.csv line 2: this original id appears twice/);
  });

  it('applies the profile options', () => {
    const input = readFileSync(study.series[0].files[0].path);
    const run = (over: Partial<Record<keyof AnonymiseSettings, unknown>>) =>
      read(createAnonymiser({ secret: 'k', settings: settings(over) }).anonymiseBuffer(input, 'x').output!);
    const basic = run({});
    assert.equal(basic['00101010'], undefined, 'PatientAge removed');
    assert.equal(basic['00081030'], undefined, 'StudyDescription removed');
    // A zero-length value reads back from dcmjs as [''].
    assert.ok(
      (basic['00080020'].Value ?? []).every((v) => v === ''),
      'StudyDate emptied',
    );

    const shifted = run({ RetainLongitudinal: 'shifted' });
    const days = dateShiftDays('k', 'PID-8812-Z');
    const expected = new Date(Date.UTC(2024, 0, 31) - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
    assert.equal(value(shifted, '00080020'), expected);
    assert.equal(value(shifted, '00280303'), 'MODIFIED');
    assert.equal(value(run({ RetainLongitudinal: 'full' }), '00080020'), '20240131');

    const characteristics = run({ RetainPatientCharacteristics: true });
    assert.equal(value(characteristics, '00101010'), '054Y');
    assert.equal(value(characteristics, '00100040'), 'M');

    assert.equal(value(run({ RetainDeviceIdentity: true }), '00181000'), 'SN-77-01');
    const cleaned = run({ CleanDescriptors: true });
    assert.equal(value(cleaned, '00081030'), 'X brain follow-up', 'descriptors kept, identifiers cleaned out');

    const lists = run({ Keep: ['StudyDescription'], Remove: ['Manufacturer'], Replace: { '(0008,1090)': 'Scanner' } });
    assert.equal(value(lists, '00081030'), 'Müller brain follow-up');
    assert.equal(lists['00080070'], undefined);
    assert.equal(value(lists, '00081090'), 'Scanner');
  });

  it('removes private attributes unless Retain Safe Private allows them', () => {
    const input = readFileSync(study.series[0].files[0].path);
    const basic = read(createAnonymiser({ secret: 'k', settings: settings() }).anonymiseBuffer(input, 'x').output!);
    assert.deepEqual(
      Object.keys(basic).filter((t) => parseInt(t.slice(0, 4), 16) % 2 === 1),
      [],
    );
    const safe = read(
      createAnonymiser({
        secret: 'k',
        settings: settings({
          RetainSafePrivate: true,
          SafePrivateAllowList: [{ Creator: 'ACME PRIVATE', Tag: '(0029,xx11)' }],
        }),
      }).anonymiseBuffer(input, 'x').output!,
    );
    assert.equal(value(safe, '00290010'), 'ACME PRIVATE', 'the creator of a kept element stays');
    assert.equal(safe['00291010'], undefined);
    assert.ok(safe['00291011']);
  });

  it('follows the burned-in annotation policy', async () => {
    const us = await generateStudy({
      series: [{ seriesNumber: 1, instances: 1, extra: { BurnedInAnnotation: 'YES' } }],
    });
    const input = readFileSync(us.files[0]);
    const withPolicy = (policy: string) =>
      createAnonymiser({ secret: 'k', settings: settings({ BurnedInAnnotation: policy }) }).anonymiseBuffer(
        input,
        'SE1/x.dcm',
      );
    assert.throws(
      () => withPolicy('fail'),
      /SE1\/x\.dcm: BurnedInAnnotation is YES; the rule's BurnedInAnnotation policy is "fail"/,
    );
    const excluded = withPolicy('exclude');
    assert.equal(excluded.output, undefined);
    assert.match(excluded.excluded ?? '', /BurnedInAnnotation is YES/);
    const warned = withPolicy('warn');
    assert.ok(warned.output);
    assert.match(warned.warnings[0], /kept \(policy "warn"\)/);
  });

  it('runs again over a folder that a crash left half anonymised without anonymising any file twice', async () => {
    const secret = 'resume-secret';
    const anonymiser = () => createAnonymiser({ secret, settings: settings() });
    // As the pipeline lays it out: each file named after its future SOP Instance UID.
    const layout = (dir: string) => {
      for (const series of study.series) {
        mkdirSync(path.join(dir, `SE${series.seriesNumber}`), { recursive: true });
        for (const f of series.files)
          cpSync(f.path, path.join(dir, `SE${series.seriesNumber}`, `${anonymisedUid(secret, f.sopInstanceUID)}.dcm`));
      }
    };
    const contents = (dir: string) =>
      files(dir).map((f) => [path.relative(dir, f), readFileSync(f).toString('base64')]);
    const clean = makeTempDir('anon-clean-');
    layout(clean);
    await anonymiseFolder(clean, anonymiser(), { concurrency: 2, isDone: alreadyAnonymised });

    const half = () => {
      const dir = makeTempDir('anon-half-');
      layout(dir);
      // The crash: two files were anonymised and renamed into place before the host died.
      for (const f of files(dir).slice(0, 2)) cpSync(path.join(clean, path.relative(dir, f)), f);
      return dir;
    };
    const resumed = half();
    const result = await anonymiseFolder(resumed, anonymiser(), { concurrency: 2, isDone: alreadyAnonymised });
    assert.equal(result.instances, 5);
    assert.deepEqual(contents(resumed), contents(clean), 'byte for byte what an uninterrupted run writes');

    const naive = half();
    await anonymiseFolder(naive, anonymiser(), { concurrency: 2 });
    assert.notDeepEqual(contents(naive), contents(clean), 'without the check the done files would be anonymised again');
    assert.equal(alreadyAnonymised(path.join(naive, 'x.dcm'), Buffer.from('not dicom')), false);
  });

  it('fails an unreadable instance with its name', async () => {
    const dir = makeTempDir('anon-bad-');
    (await import('node:fs')).writeFileSync(path.join(dir, 'broken.dcm'), Buffer.from('not dicom at all'));
    await assert.rejects(
      anonymiseFolder(dir, createAnonymiser({ secret: 'k', settings: settings() }), { concurrency: 1 }),
      /broken\.dcm: not readable as DICOM/,
    );
    assert.ok(statSync(path.join(dir, 'broken.dcm')).size > 0, 'the input is left as it was');
  });
});
