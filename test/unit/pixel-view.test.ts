/**
 * A native Pixel Data that ends the file is read as a view of the input (charset.ts readDicom), not
 * copied by dcmjs: the anonymised output must be byte for byte what dcmjs's full parse gives, over
 * pydicom's corpus, generated CT and MR files, and hostile layouts (an element after the pixels, a
 * length past the end of the file, an odd length, OB, implicit VR, encapsulated pixels), and the
 * view must be taken exactly when the pixels are the file's last element.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import { parseDicom } from 'dicom-parser';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import { readDicom } from '../../shared/dicom/charset';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';
import { asPart10, DEFLATED_EXPLICIT_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE } from '../../shared/dicom/part10';
import { writeDicomChunks } from '../../shared/dicom/write';
import { filesUnder } from '../../shared/util/files';
import { generateRichStudy, type GeneratedStudy } from '../support/dicom';

const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data';

const anonymiser = createAnonymiser({
  secret: 'pixel-view',
  settings: anonymiseSettingsSchema.parse({ BurnedInAnnotation: 'warn' }),
});

/** Both paths on a copy each (nothing may depend on the input being changed or shared). */
function assertSameOutput(input: Buffer, what: string): void {
  const run = (wholeFile: boolean) => {
    try {
      return anonymiser.anonymiseBuffer(Buffer.from(input), what, { wholeFile });
    } catch (error) {
      return error as Error;
    }
  };
  const viewed = run(false);
  const whole = run(true);
  if (whole instanceof Error) {
    assert.ok(viewed instanceof Error, `${what}: the full parse fails (${whole.message}), so must the view`);
    assert.equal(viewed.message, whole.message, what);
    return;
  }
  assert.ok(!(viewed instanceof Error), `${what}: ${(viewed as Error).message}`);
  assert.deepEqual({ ...viewed, output: undefined }, { ...whole, output: undefined }, `${what}: the same result`);
  assert.ok(viewed.output && whole.output && viewed.output.equals(whole.output), `${what}: the same bytes`);
}

/** Whether readDicom gave the pixels as a view of the input. */
function viewed(input: Buffer): boolean {
  const value = readDicom(asPart10(input).buffer).parsed.dict['7FE00010']?.Value?.[0];
  return value instanceof Uint8Array;
}

function pixelElement(input: Buffer): { dataOffset: number; length: number } {
  const element = parseDicom(new Uint8Array(input), { untilTag: 'x7fe00010' }).elements.x7fe00010;
  return { dataOffset: element.dataOffset, length: element.length };
}

describe('pixel data as a view of the input', { timeout: 120_000 }, () => {
  let study: GeneratedStudy;
  let ct: Buffer;
  let mr: Buffer;
  before(async () => {
    study = await generateRichStudy(2);
    mr = readFileSync(study.series[0].files[0].path);
    ct = readFileSync(study.series[1].files[0].path);
  });

  it("anonymises pydicom's corpus and generated files to the same bytes as the full parse", async () => {
    assert.ok(existsSync(CORPUS), `pydicom's corpus is installed at ${CORPUS}`);
    const corpus = (await filesUnder(CORPUS))
      .filter((f) => /\.(dcm|ima)$/i.test(f) || !path.basename(f).includes('.'))
      .sort();
    const generated = study.series.flatMap((s) => s.files.map((f) => f.path));
    let views = 0;
    for (const file of [...generated, ...corpus]) {
      const input = readFileSync(file);
      assertSameOutput(input, path.basename(file));
      try {
        if (viewed(input)) views += 1;
      } catch {
        // unreadable files are compared above (both paths fail alike)
      }
    }
    assert.ok(corpus.length > 50, `${corpus.length} corpus files`);
    // Most of the corpus has small or encapsulated pixels (below 64 KiB they are copied as before).
    assert.ok(views > generated.length, `${views} files read with a view of their pixels`);
    for (const file of generated) assert.ok(viewed(readFileSync(file)), `${path.basename(file)} takes the view`);
  });

  it('takes the view for OB, an odd length and implicit VR, and gives the same bytes', () => {
    const { dataOffset, length } = pixelElement(ct);
    const ob = Buffer.from(ct);
    ob.write('OB', dataOffset - 8, 'latin1');
    const odd = Buffer.from(ct.subarray(0, ct.length - 1));
    odd.writeUInt32LE(length - 1, dataOffset - 4);
    const parsed = dcmjs.data.DicomMessage.readFile(new Uint8Array(mr).buffer);
    parsed.meta['00020010'] = { vr: 'UI', Value: [IMPLICIT_LE] };
    const implicit = Buffer.concat(writeDicomChunks(parsed.meta, parsed.dict, { allowInvalidVRLength: true }));
    for (const [what, input] of Object.entries({ ob, odd, implicit })) {
      assert.ok(viewed(input), `${what}: the view is taken`);
      assertSameOutput(input, what);
    }
  });

  it('keeps the full parse when the pixels do not end the file, or their length runs past it', () => {
    const { dataOffset, length } = pixelElement(mr);
    const after = Buffer.alloc(12 + 4);
    after.writeUInt16LE(0x7fe0, 0);
    after.writeUInt16LE(0x0020, 2);
    after.write('OW', 4, 'latin1');
    after.writeUInt32LE(4, 8);
    const elementAfter = Buffer.concat([mr, after]);
    const pastEnd = Buffer.from(mr);
    pastEnd.writeUInt32LE(length + 100, dataOffset - 4);
    const shortByTwo = Buffer.from(mr.subarray(0, mr.length - 2));
    const padding = Buffer.concat([mr, Buffer.alloc(2)]);
    for (const [what, input] of Object.entries({ elementAfter, pastEnd, shortByTwo, padding })) {
      let taken = false;
      try {
        taken = viewed(input);
      } catch {
        // unreadable: compared below
      }
      assert.equal(taken, false, `${what}: no view`);
      assertSameOutput(input, what);
    }
  });

  it('keeps the full parse for encapsulated pixels', async () => {
    const native = new Set([IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE, DEFLATED_EXPLICIT_LE]);
    let compared = 0;
    for (const file of await filesUnder(CORPUS)) {
      const input = readFileSync(file);
      let value: unknown;
      try {
        const { meta, dict } = readDicom(asPart10(input).buffer).parsed;
        if (native.has(String(meta['00020010']?.Value?.[0]).replace(/[\0 ]+$/, ''))) continue;
        value = dict['7FE00010']?.Value?.[0];
      } catch {
        continue;
      }
      assert.ok(!(value instanceof Uint8Array), `${path.basename(file)}: encapsulated pixels are not viewed`);
      assertSameOutput(input, path.basename(file));
      compared += 1;
    }
    assert.ok(compared > 5, `${compared} encapsulated files compared`);
  });
});
