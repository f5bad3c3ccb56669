/**
 * encode.ts must write what dcmjs's own writer writes, byte for byte: over pydicom's whole corpus
 * (as read, in both little endian syntaxes, and after anonymising), over generated studies, and over
 * hostile values (characters above U+00FF, lone surrogates, out-of-range numbers, missing values,
 * long values that need a UN header, raw values kept or changed), where it either encodes the
 * element itself or leaves it to dcmjs.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import dcmjs, { type DicomDataset } from 'dcmjs';
import { EXPLICIT_LITTLE_ENDIAN, IMPLICIT_LITTLE_ENDIAN, encodePart10 } from '../../shared/dicom/encode';
import { readDicom } from '../../shared/dicom/charset';
import { asPart10 } from '../../shared/dicom/part10';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';
import { filesUnder } from '../../shared/util/files';
import { generateRichStudy, type GeneratedStudy } from '../support/dicom';

const { DicomDict, DicomMessage } = dcmjs.data;
const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data';
const OPTIONS = { allowInvalidVRLength: true };

const arrayBufferOf = (b: Buffer) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

function dcmjsBytes(meta: DicomDataset, dataset: DicomDataset): Buffer | Error {
  try {
    const out = new DicomDict(meta);
    out.dict = dataset;
    return Buffer.from(out.write(OPTIONS));
  } catch (error) {
    return error as Error;
  }
}

function ourBytes(meta: DicomDataset, dataset: DicomDataset): Buffer | Error {
  try {
    return Buffer.concat(encodePart10(meta, dataset, OPTIONS)!);
  } catch (error) {
    return error as Error;
  }
}

/** Parses the file twice (dcmjs's writer may touch what it writes) and compares both writers. */
function assertSameBytes(parse: () => { meta: DicomDataset; dict: DicomDataset }, what: string, syntax: string) {
  const a = parse();
  a.meta['00020010'] = { vr: 'UI', Value: [syntax] };
  const ours = ourBytes(a.meta, a.dict);
  const b = parse();
  b.meta['00020010'] = { vr: 'UI', Value: [syntax] };
  const theirs = dcmjsBytes(b.meta, b.dict);
  if (theirs instanceof Error) {
    assert.ok(ours instanceof Error, `${what}: dcmjs fails (${theirs.message}), so must we`);
    return;
  }
  assert.ok(!(ours instanceof Error), `${what}: ${(ours as Error).message}`);
  assert.ok(ours.equals(theirs), `${what} (${syntax}): the same bytes as dcmjs`);
}

async function corpusFiles(): Promise<string[]> {
  if (!existsSync(CORPUS)) return [];
  return (await filesUnder(CORPUS)).filter((f) => /\.(dcm|ima)$/i.test(f) || !path.basename(f).includes('.')).sort();
}

function readable(file: string): (() => { meta: DicomDataset; dict: DicomDataset }) | undefined {
  // The whole file through dcmjs: its writer takes ArrayBuffer values, not views of the input.
  const parse = () => readDicom(asPart10(readFileSync(file)).buffer, { wholeFile: true }).parsed;
  try {
    parse();
    return parse;
  } catch {
    return undefined;
  }
}

describe('encodePart10', { timeout: 120_000 }, () => {
  let study: GeneratedStudy;
  before(async () => {
    study = await generateRichStudy();
  });

  it("writes pydicom's corpus as dcmjs does, as read and in both little endian syntaxes", async () => {
    const files = await corpusFiles();
    assert.ok(files.length > 50, `pydicom's corpus is installed at ${CORPUS} (${files.length} files)`);
    let compared = 0;
    for (const file of files) {
      const parse = readable(file);
      if (!parse) continue;
      for (const syntax of [EXPLICIT_LITTLE_ENDIAN, IMPLICIT_LITTLE_ENDIAN])
        assertSameBytes(parse, path.relative(CORPUS, file), syntax);
      compared += 1;
    }
    assert.ok(compared > 50, `${compared} corpus files compared`);
  });

  it('writes anonymised files as dcmjs does (generated studies and the corpus)', async () => {
    const anonymiser = createAnonymiser({
      secret: 'encode-test',
      settings: anonymiseSettingsSchema.parse({ BurnedInAnnotation: 'warn' }),
    });
    const files = [...study.series.flatMap((s) => s.files.map((f) => f.path)), ...(await corpusFiles())];
    let compared = 0;
    for (const file of files) {
      let output: Buffer | undefined;
      try {
        output = anonymiser.anonymiseBuffer(readFileSync(file), path.basename(file)).output;
      } catch {
        continue; // files the anonymiser refuses are tested in anonymiser-real-files
      }
      if (!output) continue;
      const parse = () => DicomMessage.readFile(arrayBufferOf(output));
      const syntax = String(parse().meta['00020010'].Value?.[0]);
      if (syntax !== EXPLICIT_LITTLE_ENDIAN && syntax !== IMPLICIT_LITTLE_ENDIAN) continue;
      assertSameBytes(parse, path.basename(file), syntax);
      compared += 1;
    }
    assert.ok(compared > 40, `${compared} anonymised files compared`);
  });

  it('writes hostile values as dcmjs does, or leaves them to it', () => {
    const big = new Uint8Array(70_001).fill(3).buffer;
    const cases: Record<string, DicomDataset[string]> = {
      '00080020': { vr: 'DA', Value: ['2020\u0101\u01ff'] },
      '00080021': { vr: 'DA', Value: [] },
      '00080022': { vr: 'DA', Value: ['', ''] },
      '00080030': { vr: 'TM', Value: undefined },
      '00081030': { vr: 'LO', Value: ['a\ud800b', 'Müller', '\udc00'] },
      '00081040': { vr: 'LO', Value: [null, 'x'] },
      '00180050': { vr: 'DS', Value: [1.2345678901234567, -0.000012345678901, 'text', null] },
      '00180051': { vr: 'DS', Value: undefined },
      '00180052': { vr: 'DS', Value: ['1.5 ', ' 2'], _rawValue: ['1.5 ', ' 2'] },
      '00180053': { vr: 'DS', Value: [7], _rawValue: ['1.5 '] },
      '00200013': { vr: 'IS', Value: [5, '6', null] },
      '00200014': { vr: 'IS', Value: undefined },
      '00080060': { vr: 'CS', Value: ['MR'], _rawValue: ['MR  '] },
      '00280010': { vr: 'US', Value: [70_000, -1, 3.7] },
      '00280011': { vr: 'US', Value: 5 as never },
      '00280012': { vr: 'US', Value: ['12'] },
      '00280013': { vr: 'SS', Value: [-40_000] },
      '00280014': { vr: 'UL', Value: [-1, 2 ** 33] },
      '00280015': { vr: 'SL', Value: [] },
      '00280016': { vr: 'FL', Value: [Number.NaN] },
      '00280017': { vr: 'FD', Value: [Math.PI, Infinity] },
      '00280018': { vr: 'AT', Value: [0x00100010] },
      '00280019': { vr: 'SV', Value: [BigInt(5)] },
      '0028001A': { vr: 'OL', Value: [big] },
      '0028001B': { vr: 'OV', Value: [new Uint8Array(9).buffer] },
      '0028001C': { vr: 'OB', Value: [new Uint8Array(3).buffer, new Uint8Array(4).buffer] },
      '0028001D': { vr: 'OF', Value: [] },
      '0028001E': { vr: 'UN', Value: [new Uint8Array(5).buffer] },
      '0028001F': { vr: 'UT', Value: ['x'.repeat(70_001)] },
      '00280020': { vr: 'LT', Value: ['y'.repeat(70_001)] },
      '00280021': { vr: 'xs', Value: [1] },
      '00100010': { vr: 'PN', Value: [{ Alphabetic: 'Doe^J', Ideographic: '山田' }] },
      '00100011': { vr: 'PN', Value: [{ Alphabetic: 'A' }, '', null, 'B^C', { Phonetic: 'p' }, {}] as never },
      '00100012': { vr: 'PN', Value: [{ Alphabetic: 5 }] as never },
      '00100013': { vr: 'PN', Value: 'Raw^Name=' as never },
      '00100014': { vr: 'PN', Value: [{ Alphabetic: 'X' }], _rawValue: ['X'] },
      '00100015': { vr: 'PN', Value: [{ Alphabetic: 'Y' }], _rawValue: ['Z'] },
      '00100016': { vr: 'PN', Value: [new String('S')] as never },
      '00100017': { vr: 'PN', Value: undefined },
      '00400275': {
        vr: 'SQ',
        Value: [{}, { '00080100': { vr: 'SH', Value: ['C1'] }, '0008010D': { vr: 'SQ', Value: [] } }] as never,
      },
      '00400276': { vr: 'SQ', Value: null as never },
      '7FE00010': { vr: 'OW', Value: [new Uint8Array(100_001).fill(9).buffer] },
    };
    for (const [tag, element] of Object.entries(cases)) {
      const parse = () => ({
        meta: { '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] } },
        dict: { [tag]: structuredClone(element) },
      });
      for (const syntax of [EXPLICIT_LITTLE_ENDIAN, IMPLICIT_LITTLE_ENDIAN])
        assertSameBytes(parse, `${tag} ${element.vr}`, syntax);
    }
  });

  it('references large values instead of copying them, and leaves other syntaxes and checked lengths to dcmjs', () => {
    const parsed = DicomMessage.readFile(arrayBufferOf(readFileSync(study.series[1].files[0].path)));
    const pixels = parsed.dict['7FE00010'].Value![0] as ArrayBuffer;
    const chunks = encodePart10(parsed.meta, parsed.dict, OPTIONS)!;
    assert.ok(
      chunks.some((c) => c.buffer === pixels),
      'the pixel data is one of the chunks, as it was read',
    );
    assert.equal(encodePart10(parsed.meta, parsed.dict, {}), undefined);
    const bigEndian = { ...parsed.meta, '00020010': { vr: 'UI', Value: ['1.2.840.10008.1.2.2'] } };
    assert.equal(encodePart10(bigEndian, parsed.dict, OPTIONS), undefined);
  });
});
