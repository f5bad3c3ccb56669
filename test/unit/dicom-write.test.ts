/**
 * writeDicomFile appends a native Pixel Data itself and leaves the rest to dcmjs: its files must be
 * byte for byte what dcmjs alone writes, in Explicit and Implicit VR Little Endian (the latter made
 * by dcmtk's dcmconv), for OB and odd-length pixels, and dcmjs must still get what it alone can
 * write (big endian, encapsulated frames, elements after Pixel Data).
 */
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import dcmjs, { type DicomDict } from 'dcmjs';
import { appendablePixelData, writeDicomFile } from '../../shared/dicom/write';
import { generateRichStudy, type GeneratedStudy } from '../support/dicom';
import { convertTransferSyntax, TRANSFER_SYNTAX } from '../support/odd-dicom';
import { makeTempDir } from '../support/process';

const { DicomMessage, DicomDict: Dict } = dcmjs.data;
const parse = (file: string): DicomDict => {
  const bytes = readFileSync(file);
  return DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};
const dcmjsAlone = (file: string, change: (message: DicomDict) => void = () => undefined): Buffer => {
  const message = parse(file);
  change(message);
  const out = new Dict(message.meta);
  out.dict = message.dict;
  return Buffer.from(out.write({ allowInvalidVRLength: true }));
};
const ours = (
  file: string,
  change: (message: DicomDict) => void = () => undefined,
): { bytes: Buffer; appended: boolean } => {
  const message = parse(file);
  change(message);
  const appended = appendablePixelData(message.meta, message.dict) !== undefined;
  return { bytes: writeDicomFile(message.meta, message.dict, { allowInvalidVRLength: true }), appended };
};

describe('writeDicomFile', { timeout: 60_000 }, () => {
  let study: GeneratedStudy;
  let implicit: string;
  before(async () => {
    study = await generateRichStudy();
    implicit = path.join(makeTempDir('write-implicit-'), 'implicit.dcm');
    copyFileSync(study.files[0], implicit);
    await convertTransferSyntax(implicit, 'implicitLittleEndian');
  });

  it('writes what dcmjs writes, byte for byte, with the pixels appended directly', () => {
    for (const file of [...study.files, implicit]) {
      const { bytes, appended } = ours(file);
      assert.equal(appended, true, `${path.basename(file)}: the pixels take the direct path`);
      assert.ok(bytes.equals(dcmjsAlone(file)), `${path.basename(file)}: same bytes as dcmjs`);
    }
    assert.equal(
      parse(implicit).meta['00020010'].Value?.[0],
      TRANSFER_SYNTAX.implicitLittleEndian,
      'the implicit file really is implicit',
    );
  });

  it('pads odd-length pixels and keeps OB as dcmjs does', () => {
    const odd = (message: DicomDict) => {
      message.dict['7FE00010'] = { vr: 'OB', Value: [new Uint8Array(1001).fill(7).buffer] };
    };
    for (const file of [study.files[0], implicit]) {
      const { bytes, appended } = ours(file, odd);
      assert.equal(appended, true);
      assert.ok(bytes.equals(dcmjsAlone(file, odd)), `${path.basename(file)}: same bytes as dcmjs`);
      const reread = DicomMessage.readFile(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
      );
      assert.equal((reread.dict['7FE00010'].Value?.[0] as ArrayBuffer).byteLength, 1002);
    }
  });

  it('leaves to dcmjs what it alone can write', () => {
    const cases: Array<[string, (message: DicomDict) => void]> = [
      ['an element after Pixel Data', (m) => void (m.dict.FFFCFFFC = { vr: 'OB', Value: [new Uint8Array(4).buffer] })],
      ['big endian', (m) => void (m.meta['00020010'] = { vr: 'UI', Value: [TRANSFER_SYNTAX.explicitBigEndian] })],
      [
        'encapsulated frames',
        (m) => void (m.dict['7FE00010'] = { vr: 'OB', Value: [new Uint8Array(10).buffer, new Uint8Array(12).buffer] }),
      ],
      ['no pixels', (m) => void delete m.dict['7FE00010']],
    ];
    for (const [what, change] of cases) {
      const { bytes, appended } = ours(study.files[0], change);
      assert.equal(appended, false, what);
      assert.ok(bytes.equals(dcmjsAlone(study.files[0], change)), `${what}: same bytes as dcmjs`);
    }
  });
});
