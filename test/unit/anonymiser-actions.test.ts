/**
 * The anonymiser, one behaviour at a time, on a synthetic instance written directly with dcmjs:
 * each PS3.15 action code (top level and inside sequences), the compound codes, curves/overlays,
 * private attributes, every option, the record of what was done, character sets, the meta header,
 * pixel bytes, burned-in policies, the mapping file and the folder rewrite.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import dcmjs, { type DicomDataset } from 'dcmjs';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { isWellKnownUid } from '../../shared/dicom/uids';
import { anonymiseFolder } from '../../shared/dicom/folder';
import { loadIdentityMapping, parseIdentityMapping } from '../../shared/dicom/mapping';
import { anonymiseSettingsSchema, type AnonymiseSettings } from '../../shared/dicom/options';
import { anonymisedUid, dateShiftDays, patientPseudonym } from '../../shared/dicom/pseudonyms';
import { makeTempDir } from '../support/process';
import { firstText } from '../../shared/dicom/values';

const { DicomDict, DicomMessage } = dcmjs.data;

const UID = {
  study: '1.2.826.0.1.3680043.9.7777.1',
  series: '1.2.826.0.1.3680043.9.7777.1.2',
  sop: '1.2.826.0.1.3680043.9.7777.1.2.3',
  frame: '1.2.826.0.1.3680043.9.7777.1.4',
  source: '1.2.826.0.1.3680043.9.7777.1.2.9',
  deep: '1.2.826.0.1.3680043.9.7777.1.2.10',
};
const MR = '1.2.840.10008.5.1.4.1.1.4';
const PIXELS = Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37 + 11) % 256));

type Overrides = Record<string, { vr: string; Value: unknown[] } | undefined>;

/** A Part-10 MR instance full of identifiers, in ISO_IR 100 (Latin-1) unless overridden. */
function instance(overrides: Overrides = {}, encoding: BufferEncoding = 'latin1'): Buffer {
  const meta: DicomDataset = {
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': { vr: 'UI', Value: [MR] },
    '00020003': { vr: 'UI', Value: [UID.sop] },
    '00020010': { vr: 'UI', Value: ['1.2.840.10008.1.2.1'] },
    '00020012': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.7777.99'] },
    '00020016': { vr: 'AE', Value: ['STELSEWHERE_MR'] },
  };
  const dict: DicomDataset = {
    '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
    '00080016': { vr: 'UI', Value: [MR] },
    '00080018': { vr: 'UI', Value: [UID.sop] },
    '00080020': { vr: 'DA', Value: ['20240131'] },
    '00080021': { vr: 'DA', Value: ['20240131'] },
    '00080022': { vr: 'DA', Value: ['20240131'] },
    '0008002A': { vr: 'DT', Value: ['20240131101500.000000+0100'] },
    '00080030': { vr: 'TM', Value: ['101500'] },
    '00080050': { vr: 'SH', Value: ['ACC-555'] },
    '00080060': { vr: 'CS', Value: ['MR'] },
    '00080080': { vr: 'LO', Value: ['St Elsewhere Hospital'] },
    '00080081': { vr: 'ST', Value: ['Elm Street 5, Springfield'] },
    '00080082': { vr: 'SQ', Value: [{ '00080100': { vr: 'SH', Value: ['STE-1'] } }] },
    '00080090': { vr: 'PN', Value: [{ Alphabetic: 'House^Gregory' }] },
    '00081010': { vr: 'SH', Value: ['STATION-9'] },
    '00081030': { vr: 'LO', Value: ['Doe brain MRN-555'] },
    '0008103E': { vr: 'LO', Value: ['T1 axial'] },
    '00082112': {
      vr: 'SQ',
      Value: [
        {
          '00081150': { vr: 'UI', Value: [MR] },
          '00081155': { vr: 'UI', Value: [UID.source] },
          '00101040': { vr: 'LO', Value: ['Nested Address 9'] },
          '00090010': { vr: 'LO', Value: ['ACME NESTED'] },
          '00091001': { vr: 'LO', Value: ['nested secret'] },
          '00081140': {
            vr: 'SQ',
            Value: [
              {
                '00081150': { vr: 'UI', Value: [MR] },
                '00081155': { vr: 'UI', Value: [UID.deep] },
                '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] },
              },
            ],
          },
        },
      ],
    },
    '00090010': { vr: 'LO', Value: ['ACME 1.0'] },
    '00091010': { vr: 'LO', Value: ['private MRN-555'] },
    '00091011': { vr: 'DS', Value: ['42'] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Jane' }] },
    '00100020': { vr: 'LO', Value: ['MRN-555'] },
    '00100030': { vr: 'DA', Value: ['19700102'] },
    '00100040': { vr: 'CS', Value: ['F'] },
    '00101010': { vr: 'AS', Value: ['054Y'] },
    '00101040': { vr: 'LO', Value: ['Elm Street 5'] },
    '00180050': { vr: 'DS', Value: ['1.5'] },
    '00181000': { vr: 'LO', Value: ['SN-42'] },
    '00181030': { vr: 'LO', Value: ['Jane special protocol'] },
    '00181200': { vr: 'DA', Value: ['20230505'] },
    '0020000D': { vr: 'UI', Value: [UID.study] },
    '0020000E': { vr: 'UI', Value: [UID.series] },
    '00200052': { vr: 'UI', Value: [UID.frame] },
    '00204000': { vr: 'LT', Value: ['Jane said her neighbour Bob drove her'] },
    '00280010': { vr: 'US', Value: [16] },
    '00280011': { vr: 'US', Value: [16] },
    '00280100': { vr: 'US', Value: [16] },
    '00280301': { vr: 'CS', Value: ['NO'] },
    '0040A124': { vr: 'UI', Value: ['1.2.840.10008.1.20'] },
    '0040A730': { vr: 'SQ', Value: [{ '0040A123': { vr: 'PN', Value: [{ Alphabetic: 'Smith^Bob' }] } }] },
    '50003000': { vr: 'OW', Value: [new Uint8Array(8).fill(7).buffer] },
    '60000010': { vr: 'US', Value: [4] },
    '60003000': { vr: 'OW', Value: [new Uint8Array(8).fill(1).buffer] },
    '60004000': { vr: 'LT', Value: ['overlay by Dr House'] },
    '7FE00010': { vr: 'OW', Value: [PIXELS.buffer.slice(PIXELS.byteOffset, PIXELS.byteOffset + PIXELS.byteLength)] },
  };
  for (const [tag, element] of Object.entries(overrides)) {
    if (element === undefined) delete dict[tag];
    else dict[tag] = element;
  }
  const dd = new DicomDict(meta);
  dd.dict = dict;
  const utf8 = Buffer.from(dd.write());
  if (encoding === 'utf8') return utf8;
  // dcmjs writes UTF-8; rewrite the one non-ASCII value as Latin-1 (same byte length after padding).
  const text = (dict['00081030'].Value as string[])[0];
  const at = utf8.indexOf(Buffer.from(text, 'utf8'));
  if (at < 0 || Buffer.byteLength(text, 'utf8') === text.length) return utf8;
  const latin = Buffer.from(text, 'latin1');
  const padded = Buffer.concat([latin, Buffer.alloc(Buffer.byteLength(text, 'utf8') - latin.length, 0x20)]);
  padded.copy(utf8, at);
  return utf8;
}

const settings = (over: Partial<Record<keyof AnonymiseSettings, unknown>> = {}) => anonymiseSettingsSchema.parse(over);
const parse = (buffer: Buffer) =>
  DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer);
const run = (
  over: Partial<Record<keyof AnonymiseSettings, unknown>> = {},
  input = instance(),
  secret = 'unit-secret',
) => {
  const out = createAnonymiser({ secret, settings: settings(over) }).anonymiseBuffer(input, 'SE1/1.dcm');
  assert.ok(out.output, 'an output');
  return { ...out, dataset: parse(out.output).dict, meta: parse(out.output).meta, bytes: out.output };
};
const first = (dataset: DicomDataset, tag: string): unknown => {
  const v = dataset[tag]?.Value?.[0];
  return v && typeof v === 'object' && 'Alphabetic' in v ? (v as { Alphabetic: string }).Alphabetic : v;
};
const emptied = (dataset: DicomDataset, tag: string) =>
  dataset[tag] !== undefined &&
  (dataset[tag].Value ?? []).every(
    (v) =>
      v === '' ||
      v === null ||
      (typeof v === 'object' && v !== null && 'Alphabetic' in v && !(v as { Alphabetic?: string }).Alphabetic),
  );
const items = (dataset: DicomDataset, tag: string) => (dataset[tag]?.Value ?? []) as DicomDataset[];

describe('anonymiser actions', () => {
  it('X removes, Z empties, D writes a dummy, unlisted attributes are kept (K)', () => {
    const { dataset } = run();
    assert.equal(dataset['00101040'], undefined, 'PatientAddress (X) removed');
    assert.equal(dataset['00101010'], undefined, 'PatientAge (X) removed');
    assert.ok(emptied(dataset, '00080050'), 'AccessionNumber (Z) empty');
    assert.ok(emptied(dataset, '00100030'), 'PatientBirthDate (Z) empty');
    assert.ok(emptied(dataset, '00080090'), 'ReferringPhysicianName (Z) empty');
    assert.equal(first(dataset, '00181030'), 'ANONYMIZED', 'ProtocolName (X/D → D) dummy');
    assert.equal(Number(first(dataset, '00180050')), 1.5, 'SliceThickness (not in the table) kept');
    assert.equal(first(dataset, '00080016'), MR, 'SOPClassUID kept');
  });

  it('applies the same actions inside sequences, at every depth', () => {
    const { dataset } = run();
    const source = items(dataset, '00082112');
    assert.equal(source.length, 1, 'SourceImageSequence (X/Z/U* → U) kept');
    assert.equal(source[0]['00101040'], undefined, 'X inside an item');
    assert.equal(
      Object.keys(source[0]).filter((t) => parseInt(t.slice(0, 4), 16) % 2 === 1).length,
      0,
      'private attributes inside an item removed',
    );
    assert.equal(first(source[0], '00081155'), anonymisedUid('unit-secret', UID.source));
    assert.equal(first(source[0], '00081150'), MR, 'ReferencedSOPClassUID kept');
    const deep = items(source[0], '00081140');
    assert.equal(first(deep[0], '00081155'), anonymisedUid('unit-secret', UID.deep), 'U two levels down');
    assert.equal(
      first(deep[0], '00100010'),
      first(dataset, '00100010'),
      'PatientName two levels down is the pseudonym',
    );
  });

  it('resolves compound codes and D on sequences conservatively', () => {
    const { dataset } = run();
    assert.equal(first(dataset, '00080080'), 'ANONYMIZED', 'InstitutionName X/Z/D → D');
    assert.ok(emptied(dataset, '00080022'), 'AcquisitionDate X/Z → Z');
    assert.equal(first(dataset, '00080021'), '19000101', 'SeriesDate X/D → D');
    assert.equal(first(dataset, '0008002A'), '19000101000000', 'AcquisitionDateTime X/Z/D → D');
    assert.deepEqual(items(dataset, '0040A730'), [], 'ContentSequence (D) kept with no items');
    assert.deepEqual(items(dataset, '00080082'), [], 'InstitutionCodeSequence (X/Z/D → D) kept with no items');
  });

  it('replaces UIDs with keyed 2.25 UIDs and keeps registered ones', () => {
    const { dataset, meta } = run();
    for (const [tag, original] of [
      ['0020000D', UID.study],
      ['0020000E', UID.series],
      ['00080018', UID.sop],
      ['00200052', UID.frame],
    ] as const) {
      assert.equal(first(dataset, tag), anonymisedUid('unit-secret', original), tag);
    }
    assert.equal(first(dataset, '0040A124'), '1.2.840.10008.1.20', 'a registered UID under action U stays');
    assert.equal(
      first(meta, '00020003'),
      first(dataset, '00080018'),
      'MediaStorageSOPInstanceUID follows SOPInstanceUID',
    );
    assert.equal(first(meta, '00020010'), '1.2.840.10008.1.2.1', 'transfer syntax kept');
    assert.equal(meta['00020016'], undefined, 'SourceApplicationEntityTitle removed from the meta header');
    assert.ok(isWellKnownUid('1.2.840.10008.5.1.4.1.1.4') && !isWellKnownUid(UID.sop));
    for (let i = 0; i < 500; i += 1) {
      const uid = anonymisedUid(`k${i}`, `1.2.3.${i}`);
      assert.ok(uid.length <= 64, uid);
      assert.match(uid, /^2\.25\.(0|[1-9][0-9]*)$/);
      assert.ok(BigInt(uid.slice(5)) < 2n ** 128n);
    }
    assert.equal(anonymisedUid('k', UID.sop), anonymisedUid('k', `${UID.sop}\0`), 'padding does not change the result');
    assert.notEqual(anonymisedUid('k', UID.sop), anonymisedUid('other', UID.sop));
  });

  it('removes private attributes, curves and overlays', () => {
    const { dataset } = run();
    const remaining = Object.keys(dataset).filter((t) => parseInt(t.slice(0, 4), 16) % 2 === 1 || /^(50|60)/.test(t));
    assert.deepEqual(remaining, []);
  });

  it('keeps allow-listed private attributes (creator + element) under Retain Safe Private, nowhere else', () => {
    const { dataset } = run({
      RetainSafePrivate: true,
      SafePrivateAllowList: [
        { Creator: 'ACME 1.0', Tag: '(0009,xx11)' },
        { Creator: 'OTHER', Tag: '(0009,xx10)' },
      ],
    });
    assert.equal(first(dataset, '00090010'), 'ACME 1.0');
    assert.equal(first(dataset, '00091011'), 42);
    assert.equal(dataset['00091010'], undefined, 'same element number under another creator is not allowed');
    assert.equal(items(dataset, '00082112')[0]['00091001'], undefined);
  });

  it('applies Retain Longitudinal (none, full, shifted) and records it', () => {
    const none = run().dataset;
    assert.ok(emptied(none, '00080020') && emptied(none, '00080030'), 'StudyDate and StudyTime emptied');
    assert.equal(first(none, '00280303'), 'REMOVED');
    const full = run({ RetainLongitudinal: 'full' }).dataset;
    assert.equal(first(full, '00080020'), '20240131');
    assert.equal(first(full, '0008002A'), '20240131101500.000000+0100');
    assert.equal(first(full, '00280303'), 'UNMODIFIED');
    const shifted = run({ RetainLongitudinal: 'shifted' }).dataset;
    const days = dateShiftDays('unit-secret', 'MRN-555');
    assert.ok(days >= 1 && days <= 3650);
    const expected = new Date(Date.UTC(2024, 0, 31) - days * 86_400_000).toISOString().slice(0, 10).replace(/-/g, '');
    assert.equal(first(shifted, '00080020'), expected, 'DA shifted');
    assert.equal(first(shifted, '0008002A'), `${expected}101500.000000+0100`, 'DT shifted, its time kept');
    assert.equal(first(shifted, '00080030'), '101500', 'TM kept');
    assert.ok(emptied(shifted, '00100030'), 'birth date is not longitudinal: still emptied');
    assert.equal(first(shifted, '00280303'), 'MODIFIED');
    const unparseable = run(
      { RetainLongitudinal: 'shifted' },
      instance({ '0008002A': { vr: 'DT', Value: ['2024'] } }),
    ).dataset;
    assert.ok(emptied(unparseable, '0008002A'), 'a year-only DT cannot be shifted: emptied');
  });

  it('lets Retain Device Identity keep device names but never real dates when dates are not retained', () => {
    const device = run({ RetainDeviceIdentity: true }).dataset;
    assert.equal(first(device, '00081010'), 'STATION-9');
    assert.equal(first(device, '00181000'), 'SN-42');
    assert.equal(device['00181200'], undefined, 'DateOfLastCalibration removed without a longitudinal option');
    const shifted = run({ RetainDeviceIdentity: true, RetainLongitudinal: 'shifted' }).dataset;
    assert.notEqual(first(shifted, '00181200'), '20230505');
    assert.match(String(first(shifted, '00181200')), /^\d{8}$/);
  });

  it('applies Retain Patient Characteristics, Retain Institution Identity and Clean Descriptors', () => {
    const chars = run({ RetainPatientCharacteristics: true }).dataset;
    assert.equal(first(chars, '00100040'), 'F');
    assert.equal(first(chars, '00101010'), '054Y');
    const inst = run({ RetainInstitutionIdentity: true }).dataset;
    assert.equal(first(inst, '00080080'), 'St Elsewhere Hospital');
    assert.equal(first(inst, '00080081'), 'Elm Street 5, Springfield');
    const clean = run({ CleanDescriptors: true }).dataset;
    assert.equal(first(clean, '00081030'), 'X brain X', 'short descriptor kept with the patient name and ID cut out');
    assert.equal(first(clean, '0008103E'), 'T1 axial');
    assert.equal(first(clean, '00181030'), 'X special protocol');
    assert.ok(emptied(clean, '00204000'), 'narrative ImageComments (LT) emptied');
  });

  it('records the method with CID 7050 codes matching the options', () => {
    const codes = (over: Partial<Record<keyof AnonymiseSettings, unknown>>) => {
      const { dataset } = run(over);
      assert.equal(first(dataset, '00120062'), 'YES');
      assert.match(String(first(dataset, '00120063')), /PS3\.15/);
      return items(dataset, '00120064').map((item) => `${firstText(item['00080102'])} ${firstText(item['00080100'])}`);
    };
    assert.deepEqual(codes({}), ['DCM 113100']);
    assert.deepEqual(
      codes({
        RetainLongitudinal: 'full',
        RetainPatientCharacteristics: true,
        RetainDeviceIdentity: true,
        RetainInstitutionIdentity: true,
        CleanDescriptors: true,
        RetainSafePrivate: true,
      }).sort(),
      ['DCM 113100', 'DCM 113105', 'DCM 113106', 'DCM 113108', 'DCM 113109', 'DCM 113111', 'DCM 113112'],
    );
    assert.deepEqual(codes({ RetainLongitudinal: 'shifted' }), ['DCM 113100', 'DCM 113107']);
  });

  it('applies Keep, Remove and Replace lists (keyword or tag), Replace also adding missing attributes', () => {
    const { dataset } = run({
      Keep: ['StudyDescription', '(0010,1040)'],
      Remove: ['(0018,0050)', 'ReferencedSOPClassUID'],
      Replace: { BodyPartExamined: 'HEAD', '(0008,103E)': 'series' },
    });
    assert.equal(first(dataset, '00081030'), 'Doe brain MRN-555');
    assert.equal(first(dataset, '00101040'), 'Elm Street 5');
    assert.equal(dataset['00180050'], undefined);
    assert.equal(items(dataset, '00082112')[0]['00081150'], undefined, 'Remove applies inside sequences too');
    assert.equal(first(dataset, '00180015'), 'HEAD');
    assert.equal(first(dataset, '0008103E'), 'series');
    assert.throws(
      () => createAnonymiser({ secret: 'k', settings: settings({ Keep: ['NoSuchKeyword'] }) }),
      /'NoSuchKeyword' is not a DICOM keyword/,
    );
  });

  it('writes strings as UTF-8 and declares ISO_IR 192, whatever the input said', () => {
    const latin = instance({ '00081030': { vr: 'LO', Value: ['Müller Größe'] } });
    assert.ok(latin.indexOf(Buffer.from('Müller Größe', 'latin1')) > 0, 'input holds Latin-1 bytes');
    for (const input of [
      latin,
      instance({ '00081030': { vr: 'LO', Value: ['Müller Größe'] }, '00080005': undefined }),
    ]) {
      const { dataset, bytes } = run({ Keep: ['StudyDescription'] }, input);
      assert.equal(first(dataset, '00080005'), 'ISO_IR 192');
      assert.ok(bytes.indexOf(Buffer.from('Müller Größe', 'utf8')) > 0, 'written as UTF-8');
      assert.equal(bytes.indexOf(Buffer.from('Müller Größe', 'latin1')), -1, 'no Latin-1 left');
    }
  });

  it('decodes ISO 2022 code extensions and writes them as UTF-8 (issue 16: such instances used to fail)', () => {
    // JIS X 0208 "山田" between ESC $ B and ESC ( B, under ISO 2022 IR 6 + IR 87.
    const input = instance({
      '00080005': { vr: 'CS', Value: ['ISO 2022 IR 6', 'ISO 2022 IR 87'] },
      '00081030': { vr: 'LO', Value: ['\u001b$B;3ED\u001b(B brain'] },
    });
    const { dataset, bytes } = run({ Keep: ['StudyDescription'] }, input);
    assert.equal(first(dataset, '00081030'), '山田 brain');
    assert.equal(first(dataset, '00080005'), 'ISO_IR 192');
    assert.ok(bytes.indexOf(Buffer.from('山田 brain', 'utf8')) > 0, 'written as UTF-8');
    assert.equal(bytes.indexOf(Buffer.from('\u001b$B', 'latin1')), -1, 'no escape sequence left');
  });

  it('leaves pixel data bytes untouched', () => {
    const { bytes } = run();
    const header = Buffer.from([0xe0, 0x7f, 0x10, 0x00, 0x4f, 0x57, 0, 0]);
    const at = bytes.indexOf(header);
    assert.ok(at > 0);
    assert.equal(bytes.readUInt32LE(at + 8), PIXELS.length);
    assert.ok(bytes.subarray(at + 12, at + 12 + PIXELS.length).equals(PIXELS));
  });

  it('follows the burned-in policy for BurnedInAnnotation=YES and risky modalities only', () => {
    const clean = run();
    assert.deepEqual(clean.warnings, [], 'MR with BurnedInAnnotation NO: no warning');
    const us = instance({ '00080060': { vr: 'CS', Value: ['US'] }, '00280301': undefined });
    const anonymiser = (policy: string) =>
      createAnonymiser({ secret: 'k', settings: settings({ BurnedInAnnotation: policy }) });
    assert.throws(
      () => anonymiser('fail').anonymiseBuffer(us, 'SE1/7.dcm'),
      /^Error: SE1\/7\.dcm: modality US often carries burned-in text; the rule's BurnedInAnnotation policy is "fail"$/,
    );
    assert.match(anonymiser('exclude').anonymiseBuffer(us, 'SE1/7.dcm').excluded ?? '', /SE1\/7\.dcm: modality US/);
    const warned = anonymiser('warn').anonymiseBuffer(us, 'SE1/7.dcm');
    assert.ok(warned.output);
    assert.equal(warned.warnings.length, 1);
    assert.ok(!warned.warnings[0].includes('MRN-555') && !warned.warnings[0].includes('Doe'));
  });

  it('uses the keyed pseudonym for PatientID and PatientName, stable per patient', () => {
    const a = run({ PseudonymPrefix: 'P1' }).dataset;
    assert.equal(first(a, '00100020'), patientPseudonym('unit-secret', 'MRN-555', 'P1'));
    assert.equal(first(a, '00100010'), first(a, '00100020'));
    assert.match(String(first(a, '00100020')), /^P1[A-Z2-7]{12}$/);
    const other = run({ PseudonymPrefix: 'P1' }, instance({ '00100020': { vr: 'LO', Value: ['MRN-556'] } })).dataset;
    assert.notEqual(first(other, '00100020'), first(a, '00100020'));
  });
});

describe('identity mapping file', () => {
  it('reads an optional header, BOM, quotes, comments, and fails clearly without printing the original id', async () => {
    const dir = makeTempDir('anon-map-');
    const file = path.join(dir, 'map.csv');
    writeFileSync(file, '\uFEFForiginal,pseudonym\n# comment\n"MRN-555",SUBJ-001\nMRN-777 , SUBJ-002\n', 'utf8');
    const mapping = await loadIdentityMapping(file);
    assert.equal(mapping.size, 2);
    assert.equal(mapping.pseudonymFor('MRN-555'), 'SUBJ-001');
    assert.equal(mapping.pseudonymFor('MRN-777'), 'SUBJ-002');
    const anonymiser = createAnonymiser({
      secret: 'k',
      settings: settings({ Identity: 'mapping', MappingFile: 'map.csv' }),
      mapping,
    });
    const out = parse(anonymiser.anonymiseBuffer(instance(), 'x').output!).dict;
    assert.equal(first(out, '00100020'), 'SUBJ-001');
    assert.equal(first(out, '00100010'), 'SUBJ-001');
    const missing = instance({ '00100020': { vr: 'LO', Value: ['MRN-999-SECRET'] } });
    assert.throws(
      () => anonymiser.anonymiseBuffer(missing, 'SE2/4.dcm'),
      (error: Error) =>
        error.message.startsWith('SE2/4.dcm: the patient of this study is not in the mapping file') &&
        !error.message.includes('MRN-999'),
    );
    await assert.rejects(loadIdentityMapping(path.join(dir, 'absent.csv')), /ENOENT.*absent\.csv/);
    assert.throws(
      () => parseIdentityMapping('MRN-1\n', 'm.csv'),
      /^Error: m\.csv line 1: expected "original id,pseudonym"$/,
    );
    assert.throws(() => parseIdentityMapping('MRN-1,bad^name\n', 'm.csv'), /m\.csv line 1: the pseudonym must be/);
    assert.throws(
      () => parseIdentityMapping('MRN-1,A\nMRN-1,B\n', 'm.csv'),
      (e: Error) => /line 2: this original id appears twice/.test(e.message) && !e.message.includes('MRN-1'),
    );
  });
});

describe('anonymiseFolder', () => {
  it('rewrites in place, renames paths holding original UIDs, deletes leftovers and excluded files', async () => {
    const root = makeTempDir('anon-folder-');
    const seriesDir = path.join(root, `SE1-${UID.series}`);
    mkdirSync(seriesDir);
    writeFileSync(path.join(seriesDir, `${UID.sop}.dcm`), instance());
    const second = `${UID.sop}.5`;
    writeFileSync(path.join(seriesDir, `${second}.dcm`), instance({ '00080018': { vr: 'UI', Value: [second] } }));
    writeFileSync(
      path.join(seriesDir, 'us.dcm'),
      instance({ '00080018': { vr: 'UI', Value: [`${UID.sop}.6`] }, '00080060': { vr: 'CS', Value: ['US'] } }),
    );
    writeFileSync(path.join(seriesDir, 'old.dcm.anonymising'), 'half-written');
    const anonymiser = createAnonymiser({ secret: 'folder', settings: settings({ BurnedInAnnotation: 'exclude' }) });
    const result = await anonymiseFolder(root, anonymiser, { concurrency: 2 });
    assert.equal(result.instances, 2);
    assert.equal(result.excluded.length, 1);
    assert.ok(result.bytesIn > 0 && result.bytesOut > 0);
    const newSeries = path.join(root, `SE1-${anonymisedUid('folder', UID.series)}`);
    assert.deepEqual(readdirSync(root), [path.basename(newSeries)]);
    assert.deepEqual(
      readdirSync(newSeries).sort(),
      [`${anonymisedUid('folder', UID.sop)}.dcm`, `${anonymisedUid('folder', second)}.dcm`].sort(),
    );
    for (const name of readdirSync(newSeries)) {
      const dataset = parse(readFileSync(path.join(newSeries, name))).dict;
      assert.equal(`${firstText(dataset['00080018'])}.dcm`, name);
      for (const uid of Object.values(UID)) assert.ok(!name.includes(uid));
    }
    assert.ok(!existsSync(seriesDir));
  });
});
