/**
 * The allow-list engine on what Table E.1-1 does not name: a generated file with identifying values
 * planted in attributes outside the table (free text, names, dates, UIDs, unknown public elements,
 * three sequences deep) must come out clean; the file meta header is our own; malformed UIDs come
 * out valid; ISO 2022 text decodes as pydicom decodes it; files without a meta header get one; the
 * de-identification record counts decisions and holds no original value.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import dcmjs, { type DicomDataset } from 'dcmjs';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { replaceInsensitive } from '../../shared/dicom/identifiers';
import { isValidUid } from '../../shared/dicom/uids';
import { readDicom } from '../../shared/dicom/charset';
import { isKnownPublic } from '../../shared/dicom/decisions';
import { anonymiseSettingsSchema, type AnonymiseSettings } from '../../shared/dicom/options';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../shared/dicom/part10';
import { TABLE_EDITION } from '../../shared/dicom/profile';
import { emptyRecord, jobRecord, mergeRecord } from '../../shared/dicom/record';
import { anonymiseFolder } from '../../shared/dicom/folder';
import { zipFolder } from '../../shared/archive/zip';
import { deidentificationDocument } from '../../shared/pipeline/steps/zip';
import type { Job } from '../../shared/pipeline/job';
import table from '../../shared/dicom/data/confidentiality_profile_attributes.json';
import safe from '../../shared/dicom/data/safe-attributes.json';
import { dcmdump } from '../support/dcmtk';
import { makeTempDir } from '../support/process';

const { DicomDict, DicomMessage, DicomMetaDictionary } = dcmjs.data;
const PYTHON = '/usr/bin/python3';
const PYDICOM_DATA = '/usr/lib/python3/dist-packages/pydicom/data';
const TABLE = new Set((table as Array<{ id: string }>).map((r) => r.id.toUpperCase()));
const SAFE = new Set(safe.attributes.map(([tag]) => tag));
const MR = '1.2.840.10008.5.1.4.1.1.4';
const PIXELS = Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 29 + 3) % 256));

const settings = (over: Partial<Record<keyof AnonymiseSettings, unknown>> = {}) => anonymiseSettingsSchema.parse(over);
const parse = (buffer: Buffer) =>
  DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer);
const vrOf = (tag: string) => DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr;

interface Planted {
  tag: string;
  vr: string;
  /** Written into the file. */
  value: string;
  /** Byte strings that must not survive (the value, or its identifying parts). */
  needles: string[];
  depth: number;
}

/**
 * Identifying values in public attributes that Table E.1-1 does not list and the safe list does
 * not keep, one per attribute, some at the top and some one, two and three sequences deep.
 */
function plantedValues(): Planted[] {
  const person = (n: number) => `Doe${n}^Johnathan${n}`;
  const planted: Planted[] = [];
  const add = (tag: string, value: string, depth: number, needles = [value]) => {
    const vr = vrOf(tag) ?? 'LO';
    planted.push({ tag, vr, value, needles, depth });
  };
  add('00400400', 'Johnathan Doe MRN7654321', 0); // Comments on the Scheduled Procedure Step (LT)
  add('0040A160', 'Seen by Dr Jekyll on ward 7, MRN7654322', 3); // Text Value (UT)
  add('00142006', person(1), 0, ['Doe1', 'Johnathan1']); // Evaluator Name (PN)
  add('00140104', person(2), 2, ['Doe2', 'Johnathan2']); // Secondary Reviewer Name (PN)
  add('00209312', '1.2.826.0.1.3680043.9.424242.1', 0); // Volume Frame of Reference UID
  add('00200242', '1.2.826.0.1.3680043.9.424242.2', 0); // SOP Instance UID of Concatenation Source
  add('00081167', '1.2.826.0.1.3680043.9.424242.3', 1); // Multi-frame Source SOP Instance UID
  add('0018991E', '1.2.826.0.1.3680043.9.424242.4', 3); // Target Frame of Reference UID
  add('00083012', '1.2.826.0.1.3680043.9.424242.5', 2); // Radiopharmaceutical Administration Event UID
  add('00140102', '19730415', 0); // Secondary Review Date (DA)
  add('00141020', '19730416', 1); // Expiry Date (DA)
  add('00144076', '19730417', 3); // Procedure Creation Date (DA)
  add('00080404', '19730418101112', 0); // Item Inventory DateTime (DT)
  add('00080416', '19730419101112', 2); // Expiration DateTime (DT)
  add('00140103', '235959.123451', 0); // Secondary Review Time (TM)
  add('00143077', '235959.123452', 3); // Time of Gain Calibration (TM)
  add('00401008', 'VIP patient Johnathan Doe', 0); // Confidentiality Code (LO)
  add('0074100C', 'Mrs Johanna Doe-Contact', 1); // Contact Display Name (LO)
  add('0074100A', 'tel:+15550100777', 0); // Contact URI (UR)
  add('0040E001', 'MRN7654323^^^HOSP', 0); // HL7 Instance Identifier (ST)
  add('00400031', 'LOCALNS-MRN7654324', 2); // Local Namespace Entity ID (UT)
  add('00100212', 'Strain of J Doe lab 7', 0); // Strain Description (UC)
  add('00741238', 'Cancelled: Johnathan Doe called in sick', 3); // Reason For Cancellation (LT)
  add('00082127', 'View', 0, []); // View Name (SH), on the safe list: a control, kept
  // Unknown public elements (even groups, not in PS3.6).
  planted.push({
    tag: '00F00010',
    vr: 'LO',
    value: 'UNKNOWN-PUBLIC-MRN7654325',
    needles: ['UNKNOWN-PUBLIC-MRN7654325'],
    depth: 0,
  });
  planted.push({
    tag: '0A000012',
    vr: 'UN',
    value: 'UNKNOWN-UN-MRN7654326',
    needles: ['UNKNOWN-UN-MRN7654326'],
    depth: 2,
  });
  planted.push({ tag: '00F00020', vr: 'PN', value: 'Doe3^Johnathan3', needles: ['Doe3', 'Johnathan3'], depth: 3 });
  return planted;
}

/** Sequences outside the table that hold the nested values: depth 1, 2 and 3. */
const NESTING = ['00080051', '00080110', '00080121'];

function elementFor(p: Planted) {
  if (p.vr === 'PN') return { vr: 'PN', Value: [{ Alphabetic: p.value }] };
  if (p.vr === 'UN') {
    const bytes = Buffer.from(p.value, 'latin1');
    return { vr: 'UN', Value: [bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)] };
  }
  return { vr: p.vr, Value: [p.value] };
}

function plantedFile(planted: Planted[], syntax = '1.2.840.10008.1.2.1'): Buffer {
  const levels: DicomDataset[] = [{}, {}, {}, {}];
  for (const p of planted) levels[p.depth][p.tag] = elementFor(p);
  for (let depth = 3; depth >= 1; depth -= 1)
    levels[depth - 1][NESTING[depth - 1]] = { vr: 'SQ', Value: [levels[depth]] };
  const dataset: DicomDataset = {
    '00080005': { vr: 'CS', Value: ['ISO_IR 100'] },
    '00080016': { vr: 'UI', Value: [MR] },
    '00080018': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.100'] },
    '00080060': { vr: 'CS', Value: ['MR'] },
    '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Johnathan' }] },
    '00100020': { vr: 'LO', Value: ['MRN7654321'] },
    '0020000D': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.101'] },
    '0020000E': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.102'] },
    '00280010': { vr: 'US', Value: [16] },
    '00280011': { vr: 'US', Value: [16] },
    '00280100': { vr: 'US', Value: [8] },
    ...levels[0],
    '7FE00010': { vr: 'OW', Value: [PIXELS.buffer.slice(PIXELS.byteOffset, PIXELS.byteOffset + PIXELS.byteLength)] },
  };
  const sorted = Object.fromEntries(
    Object.keys(dataset)
      .sort()
      .map((t) => [t, dataset[t]]),
  );
  const dd = new DicomDict({
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': { vr: 'UI', Value: [MR] },
    '00020003': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.100'] },
    '00020010': { vr: 'UI', Value: [syntax] },
    '00020012': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.999'] },
    '00020013': { vr: 'SH', Value: ['SENDER_IMPL_77'] },
    '00020016': { vr: 'AE', Value: ['SENDER_AE_77'] },
    '00020100': { vr: 'UI', Value: ['1.2.826.0.1.3680043.9.424242.998'] },
    '00020102': { vr: 'OB', Value: [Buffer.from('PRIVATE-META-MRN7654327').buffer.slice(0, 24)] },
  });
  dd.dict = sorted;
  return Buffer.from(dd.write());
}

function* uiValues(dataset: DicomDataset, where = ''): Generator<[string, unknown]> {
  for (const [tag, element] of Object.entries(dataset)) {
    if (element.vr === 'UI') for (const v of element.Value ?? []) yield [`${where}${tag}`, v];
    if (element.vr === 'SQ')
      for (const item of (element.Value ?? []) as DicomDataset[]) yield* uiValues(item, `${where}${tag}.`);
  }
}

describe('anonymiser allow-list', () => {
  const planted = plantedValues();

  it('plants its values where Table E.1-1 does not reach', () => {
    const outside = planted.filter((p) => !TABLE.has(p.tag) && !SAFE.has(p.tag) && p.needles.length > 0);
    assert.ok(outside.length >= 20, `${outside.length} attributes outside the table and the safe list`);
    for (const vr of ['PN', 'DA', 'DT', 'TM', 'UI', 'LO', 'LT', 'UT', 'ST', 'UC', 'UR'])
      assert.ok(
        outside.some((p) => p.vr === vr),
        `a planted ${vr}`,
      );
    assert.ok(planted.filter((p) => !isKnownPublic(p.tag)).length >= 3, 'unknown public elements');
    assert.ok(
      planted.some((p) => p.depth === 3) && NESTING.every((t) => !TABLE.has(t)),
      'nested three deep in sequences the table does not list',
    );
    for (const p of planted) assert.ok(parseInt(p.tag.slice(0, 4), 16) % 2 === 0, `${p.tag} is public`);
  });

  for (const [syntax, label] of [
    ['1.2.840.10008.1.2.1', 'explicit'],
    ['1.2.840.10008.1.2', 'implicit'],
  ] as const) {
    it(`removes every planted identifying value (${label} VR little endian), at every depth`, () => {
      const input = plantedFile(planted, syntax);
      for (const p of planted)
        for (const needle of p.needles)
          assert.ok(input.indexOf(Buffer.from(needle, 'latin1')) > 0, `input holds ${needle}`);
      const out = createAnonymiser({ secret: 'allow-list', settings: settings() }).anonymiseBuffer(input, 'SE1/1.dcm');
      assert.ok(out.output && out.record);
      for (const p of planted) {
        for (const needle of p.needles) {
          for (const encoding of ['utf8', 'latin1'] as const)
            assert.equal(
              out.output.indexOf(Buffer.from(needle, encoding)),
              -1,
              `${p.tag} (${p.vr}, depth ${p.depth}): ${needle} survived`,
            );
        }
      }
      for (const needle of ['SENDER_AE_77', 'SENDER_IMPL_77', '424242', 'MRN7654327'])
        assert.equal(out.output.indexOf(Buffer.from(needle, 'latin1')), -1, `${needle} survived`);
      const { dict, meta } = parse(out.output);
      assert.equal(dict['00082127']?.Value?.[0], 'View', 'a safe-list attribute is kept');
      assert.ok(
        Array.isArray(dict['00080051']?.Value) && dict['00080051'].Value.length === 1,
        'sequences outside the table are kept, their content decided element by element',
      );
      for (const [where, uid] of uiValues(dict))
        assert.ok(typeof uid === 'string' && isValidUid(uid), `${where}: ${String(uid)}`);
      // The record counts the fallbacks and never holds an original value.
      const json = JSON.stringify(out.record);
      for (const p of planted)
        for (const needle of p.needles) assert.ok(!json.includes(needle), `record holds ${needle}`);
      assert.ok((out.record.counts['vr:PN']?.removed ?? 0) >= 2, JSON.stringify(out.record.counts));
      assert.ok((out.record.counts['vr:UI']?.remapped ?? 0) >= 5);
      assert.ok((out.record.counts['unknown-public']?.removed ?? 0) >= 3);
      assert.ok((out.record.counts['safe-list']?.kept ?? 0) >= 5);
      assert.ok(out.record.fallbacks['(0014,2006) EvaluatorName'] === 1);
      assert.equal(meta['00020012']?.Value?.[0], IMPLEMENTATION_CLASS_UID);
    });
  }

  it('keeps what a rule keeps on purpose, and dates under Retain Longitudinal', () => {
    const input = plantedFile(planted);
    const kept = parse(
      createAnonymiser({
        secret: 'k',
        settings: settings({
          Keep: ['CommentsOnTheScheduledProcedureStep', '(0014,2006)'],
          RetainLongitudinal: 'full',
        }),
      }).anonymiseBuffer(input, 'x').output!,
    ).dict;
    assert.equal(kept['00400400']?.Value?.[0], 'Johnathan Doe MRN7654321');
    assert.equal((kept['00142006']?.Value?.[0] as { Alphabetic: string }).Alphabetic, 'Doe1^Johnathan1');
    assert.equal(kept['00140102']?.Value?.[0], '19730415', 'DA outside the table kept with full dates');
    assert.equal(kept['00140103']?.Value?.[0], '235959.123451', 'TM kept with full dates');
    const shifted = parse(
      createAnonymiser({ secret: 'k', settings: settings({ RetainLongitudinal: 'shifted' }) }).anonymiseBuffer(
        input,
        'x',
      ).output!,
    ).dict;
    assert.match(String(shifted['00140102']?.Value?.[0]), /^\d{8}$/);
    assert.notEqual(shifted['00140102']?.Value?.[0], '19730415', 'DA outside the table shifted');
  });

  it('decides the items of a sequence a rule keeps: a kept Content Sequence loses its Text Value, keeps its codes', () => {
    const item = {
      '0040A010': { vr: 'CS', Value: ['CONTAINS'] },
      '0040A040': { vr: 'CS', Value: ['TEXT'] },
      '0040A043': {
        vr: 'SQ',
        Value: [
          {
            '00080100': { vr: 'SH', Value: ['121071'] },
            '00080102': { vr: 'SH', Value: ['DCM'] },
            '00080104': { vr: 'LO', Value: ['Finding'] },
          },
        ],
      },
      '0040A160': { vr: 'UT', Value: ['Johnathan Doe MRN7654329 has a fracture'] },
      '0040A730': {
        vr: 'SQ',
        Value: [
          {
            '0040A040': { vr: 'CS', Value: ['PNAME'] },
            '0040A123': { vr: 'PN', Value: [{ Alphabetic: 'Doe^Johnathan' }] },
          },
        ],
      },
    };
    const input = plantedFile([]);
    const dataset = parse(input);
    dataset.dict['0040A730'] = { vr: 'SQ', Value: [item] };
    const dd = new DicomDict(dataset.meta);
    dd.dict = Object.fromEntries(
      Object.keys(dataset.dict)
        .sort()
        .map((t) => [t, dataset.dict[t]]),
    );
    const bytes = Buffer.from(dd.write());
    const out = createAnonymiser({ secret: 'k', settings: settings({ Keep: ['ContentSequence'] }) }).anonymiseBuffer(
      bytes,
      'sr.dcm',
    ).output!;
    const content = parse(out).dict['0040A730'].Value as DicomDataset[];
    assert.equal(content.length, 1);
    assert.equal(content[0]['0040A160'], undefined, 'Text Value removed');
    assert.equal(
      ((content[0]['0040A043'].Value as DicomDataset[])[0]['00080104'].Value as string[])[0],
      'Finding',
      'concept name codes kept',
    );
    for (const needle of ['MRN7654329', 'Johnathan']) assert.equal(out.indexOf(Buffer.from(needle)), -1, needle);
  });

  it('writes its own file meta header: our implementation, the new SOP Instance UID, no sender attributes', () => {
    const out = createAnonymiser({ secret: 'k', settings: settings() }).anonymiseBuffer(plantedFile(planted), 'x');
    const { meta, dict } = parse(out.output!);
    assert.deepEqual(Object.keys(meta).sort(), [
      '00020001',
      '00020002',
      '00020003',
      '00020010',
      '00020012',
      '00020013',
    ]);
    assert.equal(meta['00020012'].Value?.[0], IMPLEMENTATION_CLASS_UID);
    assert.equal(meta['00020013'].Value?.[0], IMPLEMENTATION_VERSION_NAME);
    assert.equal(meta['00020003'].Value?.[0], dict['00080018'].Value?.[0]);
    assert.equal(meta['00020002'].Value?.[0], MR);
    assert.ok(isValidUid(IMPLEMENTATION_CLASS_UID));
    assert.ok(
      (dict['00120063'].Value as string[]).includes(`PS3.15 ${TABLE_EDITION} Table E.1-1`),
      'DeidentificationMethod names the table edition',
    );
    assert.equal(
      out.record?.counts['file-meta']?.removed ?? 0,
      3,
      'SourceApplicationEntityTitle, PrivateInformationCreatorUID, PrivateInformation',
    );
  });

  it('replaces malformed UIDs (garbage, several run together) by valid ones and says where, not what', () => {
    const input = plantedFile([
      { tag: '00200052', vr: 'UI', value: '1.2.826.0.1.3680043.9.424242.7 1.2.3', needles: [], depth: 0 },
      { tag: '00081155', vr: 'UI', value: 'MRN7654328', needles: [], depth: 1 },
      { tag: '00081150', vr: 'UI', value: '1.2.840.10008.5.1.4.1.1.4x', needles: [], depth: 1 },
    ]);
    const out = createAnonymiser({ secret: 'k', settings: settings() }).anonymiseBuffer(input, 'SE1/2.dcm');
    const { dict } = parse(out.output!);
    for (const [where, uid] of uiValues(dict))
      assert.ok(typeof uid === 'string' && isValidUid(uid), `${where}: ${String(uid)}`);
    assert.equal(out.output!.indexOf(Buffer.from('MRN7654328')), -1);
    assert.ok(
      out.warnings.some((w) => w === 'SE1/2.dcm: a malformed UID in (0020,0052) was replaced by a valid one'),
      out.warnings.join('\n'),
    );
    assert.ok(
      out.warnings.some((w) => w.includes('(0008,1150)')),
      'a malformed SOP Class UID is replaced too',
    );
    assert.ok(out.warnings.every((w) => !w.includes('MRN7654328') && !w.includes('424242')));
    assert.throws(
      () => createAnonymiser({ secret: 'k', settings: settings({ Replace: { FrameOfReferenceUID: 'not a uid' } }) }),
      /Replace \(0020,0052\): the value is not a valid UID/,
    );
  });

  it('puts the folder record on the job and DEIDENTIFICATION.json beside the zip manifest, with no original value', async () => {
    const dir = makeTempDir('anon-record-');
    const staging = path.join(dir, 'staging', 'SE1');
    (await import('node:fs')).mkdirSync(staging, { recursive: true });
    for (let i = 0; i < 3; i += 1) writeFileSync(path.join(staging, `${i}.dcm`), plantedFile(planted));
    const anonymiser = createAnonymiser({ secret: 'k', settings: settings({ BurnedInAnnotation: 'warn' }) });
    const result = await anonymiseFolder(path.join(dir, 'staging'), anonymiser, {
      concurrency: 2,
      output: path.join(dir, 'out'),
    });
    assert.equal(result.record.instances, 3);
    assert.match(result.record.profile.table, /^PS3\.15 \d{4}[a-e] Table E\.1-1$/);
    const onJob = jobRecord(result.record);
    const job = {
      steps: [{ name: 'anonymise', detail: { deidentification: onJob } }],
      warnings: ['anonymise: SE1/0.dcm: a warning', 'zip: other'],
    } as unknown as Job;
    const document = deidentificationDocument(job)!;
    const zip = path.join(dir, 'out.zip');
    const manifest = await zipFolder(path.join(dir, 'out'), zip, {
      level: 1,
      name: 'STUDY',
      extras: { 'DEIDENTIFICATION.json': document },
    });
    assert.equal(manifest.totals.files, 3, 'the record is not counted as a file of the study');
    assert.deepEqual(
      manifest.extras?.map((e) => e.path),
      ['STUDY/DEIDENTIFICATION.json'],
    );
    const listed = execFileSync(
      PYTHON,
      [
        '-c',
        'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print("\\n".join(z.namelist())); print(z.read("STUDY/DEIDENTIFICATION.json").decode())',
        zip,
      ],
      { encoding: 'utf8' },
    );
    assert.match(listed, /^STUDY\/DEIDENTIFICATION\.json$/m);
    assert.match(listed, /^STUDY\/MANIFEST\.json$/m);
    const parsed = JSON.parse(listed.slice(listed.indexOf('{'))) as {
      instances: number;
      counts: Record<string, Record<string, number>>;
      warnings: string[];
    };
    assert.equal(parsed.instances, 3);
    assert.equal(parsed.counts['vr:PN'].removed, 6);
    assert.deepEqual(parsed.warnings, ['SE1/0.dcm: a warning']);
    for (const p of planted)
      for (const needle of p.needles) assert.ok(!document.includes(needle), `DEIDENTIFICATION.json holds ${needle}`);
  });

  it('cleans descriptors by plain search, bounded: a 16 KB name of 4,000 components neither overflows nor leaks', () => {
    const parts = Array.from({ length: 4000 }, (_, i) => `N${i.toString(36)}x`);
    const name = parts.join('^').slice(0, 16_000);
    const input = plantedFile([]);
    const dataset = parse(input);
    dataset.dict['00100010'] = { vr: 'PN', Value: [{ Alphabetic: name }] };
    dataset.dict['00081030'] = { vr: 'LO', Value: ['scan of doe1^johnathan1 (MRN7654321) and N0x'] };
    dataset.dict['00100020'] = { vr: 'LO', Value: ['MRN7654321'] };
    const dd = new DicomDict(dataset.meta);
    dd.dict = Object.fromEntries(
      Object.keys(dataset.dict)
        .sort()
        .map((t) => [t, dataset.dict[t]]),
    );
    const bytes = Buffer.from(dd.write({ allowInvalidVRLength: true }));
    const started = process.hrtime.bigint();
    const out = createAnonymiser({ secret: 'k', settings: settings({ CleanDescriptors: true }) }).anonymiseBuffer(
      bytes,
      'long.dcm',
    );
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    console.log(`clean descriptors with a 4,000-component name: ${ms.toFixed(1)} ms`);
    const description = String(parse(out.output!).dict['00081030'].Value?.[0]);
    assert.ok(!description.includes('MRN7654321'), description);
    assert.equal(out.output!.indexOf(Buffer.from(name.slice(0, 200))), -1, 'the name is gone');
  });

  it('matches identifiers case-insensitively without a RegExp, whatever their characters', () => {
    assert.equal(replaceInsensitive('Doe brain DOE (d.o.e) [x]', 'doe', 'X'), 'X brain X (d.o.e) [x]');
    assert.equal(replaceInsensitive('a.*b A.*B', 'a.*b', 'X'), 'X X', 'RegExp syntax is plain text');
    assert.equal(
      replaceInsensitive('İstanbul Müller', 'Müller', 'X'),
      'İstanbul X',
      'a string whose length changes in lower case',
    );
    assert.equal(replaceInsensitive('abc', '', 'X'), 'abc');
  });

  it('adds up instance records into a job record', () => {
    const anonymiser = createAnonymiser({ secret: 'k', settings: settings() });
    const total = emptyRecord({ table: 't', safeAttributes: 1 });
    for (let i = 0; i < 3; i += 1)
      mergeRecord(total, { ...anonymiser.anonymiseBuffer(plantedFile(planted), `SE1/${i}.dcm`).record!, instances: 1 });
    const one = anonymiser.anonymiseBuffer(plantedFile(planted), 'x').record!;
    assert.equal(total.instances, 3);
    assert.equal(total.counts['vr:PN']?.removed, 3 * (one.counts['vr:PN']?.removed ?? 0));
    assert.equal(total.fallbacks['(0014,2006) EvaluatorName'], 3);
  });
});

describe('anonymiser input beyond the ordinary', () => {
  const charsetFiles = readdirSync(path.join(PYDICOM_DATA, 'charset_files'))
    .filter((f) => f.endsWith('.dcm'))
    .sort();

  it('decodes every pydicom charset file (ISO 2022 IR 87/159/13/149/58, per-item sets) as pydicom does', () => {
    // pydicom is the reference decoder: every text element, at every depth, as a path -> value map.
    const script = `
import json, sys, pydicom
from pydicom.valuerep import PersonName
out = {}
for f in sys.argv[1:]:
    ds = pydicom.dcmread(f)
    ds.decode()
    values = {}
    def walk(d, prefix):
        for el in d:
            key = prefix + '%08X' % el.tag
            if el.VR == 'SQ':
                for i, item in enumerate(el.value):
                    walk(item, key + '.')
            elif el.VR in ('SH', 'LO', 'ST', 'LT', 'PN', 'UT', 'UC') and el.value not in (None, ''):
                vals = el.value if el.VM > 1 else [el.value]
                values[key] = [str(v) for v in vals]
    walk(ds, '')
    values = {k: v for k, v in values.items() if all(int(part[:4], 16) % 2 == 0 for part in k.split('.'))}
    out[f.rsplit('/', 1)[1]] = values
print(json.dumps(out, ensure_ascii=False))
`;
    const reference = JSON.parse(
      execFileSync(PYTHON, ['-c', script, ...charsetFiles.map((f) => path.join(PYDICOM_DATA, 'charset_files', f))], {
        encoding: 'utf8',
      }),
    ) as Record<string, Record<string, string[]>>;
    let compared = 0;
    const multiByte: string[] = [];
    for (const file of charsetFiles) {
      const { parsed, converted } = readDicom(readFileSync(path.join(PYDICOM_DATA, 'charset_files', file)));
      if (converted.some((c) => c.includes('2022'))) multiByte.push(file);
      const ours: Record<string, string[]> = {};
      const walk = (dataset: DicomDataset, prefix: string) => {
        for (const tag of Object.keys(dataset).sort()) {
          const element = dataset[tag];
          const key = `${prefix}${tag}`;
          if (element.vr === 'SQ') ((element.Value as DicomDataset[]) ?? []).forEach((item) => walk(item, `${key}.`));
          else if (
            ['SH', 'LO', 'ST', 'LT', 'PN', 'UT', 'UC'].includes(element.vr) &&
            (element.Value ?? []).length > 0
          ) {
            ours[key] = (element.Value ?? []).map((v) =>
              v && typeof v === 'object'
                ? ['Alphabetic', 'Ideographic', 'Phonetic']
                    .map((g) => (v as Record<string, string>)[g] ?? '')
                    .join('=')
                    .replace(/=+$/, '')
                : String(v),
            );
          }
        }
      };
      walk(parsed.dict, '');
      // Private attributes are removed anyway, and pydicom reads some of them with a VR of its own.
      for (const [key, values] of Object.entries(reference[file])) {
        assert.deepEqual(
          ours[key]?.map((v) => v.trim()),
          values.map((v) => v.trim()),
          `${file} ${key}`,
        );
        compared += 1;
      }
    }
    assert.ok(compared >= charsetFiles.length, `${compared} values compared`);
    for (const f of [
      'chrH31.dcm',
      'chrH32.dcm',
      'chrI2.dcm',
      'chrJapMulti.dcm',
      'chrKoreanMulti.dcm',
      'chrSQEncoding.dcm',
      'chrSQEncoding1.dcm',
    ])
      assert.ok(multiByte.includes(f), `${f} went through the ISO 2022 path`);
  });

  it('anonymises the ISO 2022 files into valid UTF-8 files declared ISO_IR 192', async () => {
    const anonymiser = createAnonymiser({
      secret: 'k',
      settings: settings({ Keep: ['RequestingPhysician'], BurnedInAnnotation: 'warn' }),
    });
    const dir = makeTempDir('anon-charset-');
    for (const file of charsetFiles) {
      const out = anonymiser.anonymiseBuffer(
        readFileSync(path.join(PYDICOM_DATA, 'charset_files', file)),
        file,
      ).output!;
      const { dict } = parse(out);
      assert.equal(dict['00080005']?.Value?.[0], 'ISO_IR 192', file);
      for (const escape of ['\u001b$', '\u001b('])
        assert.equal(out.indexOf(Buffer.from(escape, 'latin1')), -1, `${file}: no escape sequence left`);
      const target = path.join(dir, file);
      writeFileSync(target, out);
      assert.match(await dcmdump(target), /\(0008,0005\) CS \[ISO_IR 192\]/);
    }
  });

  it('drops what it cannot vet in UN values: a UN-encoded sequence dcmjs misreads leaks nothing (pydicom rtdose_rle.dcm)', () => {
    // Its (300C,0002) is UN holding implicit-VR items; dcmjs parses them as explicit VR, and the
    // Referenced SOP Instance UID ends up inside a garbage UN element that must not be kept.
    const input = readFileSync(path.join(PYDICOM_DATA, 'test_files', 'rtdose_rle.dcm'));
    const original = '1.2.123.456.78.9.0123.4567.89012345678901';
    assert.ok(input.indexOf(Buffer.from(original)) > 0);
    const out = createAnonymiser({ secret: 'k', settings: settings({ BurnedInAnnotation: 'warn' }) }).anonymiseBuffer(
      input,
      'rtdose.dcm',
    );
    assert.equal(out.output!.indexOf(Buffer.from(original)), -1, 'the referenced UID does not survive');
    assert.ok((out.record?.counts['vr:UN']?.removed ?? 0) >= 1, JSON.stringify(out.record?.counts));
  });

  it('reads files without a meta header with their transfer syntax and writes them with one', async () => {
    const anonymiser = createAnonymiser({ secret: 'k', settings: settings() });
    const dir = makeTempDir('anon-nometa-');
    const cases = [
      ['ExplVR_LitEndNoMeta.dcm', '1.2.840.10008.1.2.1'],
      ['ExplVR_BigEndNoMeta.dcm', '1.2.840.10008.1.2.2'],
    ] as const;
    for (const [file, syntax] of cases) {
      const input = readFileSync(path.join(PYDICOM_DATA, 'test_files', file));
      assert.notEqual(input.toString('latin1', 128, 132), 'DICM', `${file} has no header`);
      for (const hint of [undefined, syntax]) {
        const out = anonymiser.anonymiseBuffer(input, file, { transferSyntax: hint });
        assert.ok(
          out.warnings.some((w) => w.includes(`no complete Part 10 meta header; read as ${syntax}`)),
          out.warnings.join('\n'),
        );
        const { meta, dict } = parse(out.output!);
        assert.equal(meta['00020010'].Value?.[0], syntax, file);
        assert.equal(meta['00020003'].Value?.[0], dict['00080018'].Value?.[0]);
        const target = path.join(dir, file);
        writeFileSync(target, out.output!);
        const dump = await dcmdump(target);
        assert.match(dump, /\(0002,0012\) UI \[2\.25\./);
        // Pixel data equal to the original's, as pydicom reads both.
        const same = execFileSync(
          PYTHON,
          [
            '-c',
            'import sys, pydicom; a = pydicom.dcmread(sys.argv[1], force=True); b = pydicom.dcmread(sys.argv[2]); print(a.PixelData == b.PixelData if "PixelData" in a else "none")',
            path.join(PYDICOM_DATA, 'test_files', file),
            target,
          ],
          { encoding: 'utf8' },
        ).trim();
        assert.ok(same === 'True' || same === 'none', `${file}: pixel data ${same}`);
      }
    }
  });
});
