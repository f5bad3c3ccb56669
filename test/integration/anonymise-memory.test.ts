/**
 * Memory of the anonymise step is bounded by bytes in flight, not by a number of files: a folder of
 * two 256 MiB instances (multi-frame sized) among ordinary ones, anonymised four files at a time,
 * must not raise the process's peak RSS by more than 2.5 times one big file: each in flight holds its
 * input only (its pixels are read as a view of it, and the output reuses them), and the first big
 * file's input can still wait for the collector when the second is read (up to 1.4 times one seen
 * here); a copy of the pixels (three times one, as before they were a view) or the two big files in
 * flight at once would go beyond. Measured by the kernel (VmHWM) in a child process of its own.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import { writeDicomChunks } from '../../shared/dicom/write';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { makeTempDir } from '../support/process';

const run = promisify(execFile);
const BIG = 256 * 1024 * 1024;
const CHILD = path.join(__dirname, '../support/anonymise-rss.ts');

/** A copy of `template` whose pixel data is `bytes` long (written in parts: never held twice). */
function writeBig(template: string, target: string, bytes: number): void {
  const input = readFileSync(template);
  const parsed = dcmjs.data.DicomMessage.readFile(
    input.buffer.slice(input.byteOffset, input.byteOffset + input.length),
  );
  parsed.dict['00280008'] = { vr: 'IS', Value: [String(bytes / (256 * 256 * 2))] };
  parsed.dict['7FE00010'] = { vr: 'OW', Value: [new Uint8Array(bytes).fill(0x11).buffer] };
  const fd = openSync(target, 'w');
  try {
    for (const chunk of writeDicomChunks(parsed.meta, parsed.dict, { allowInvalidVRLength: true }))
      writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

describe('anonymise memory', { timeout: 300_000 }, () => {
  let study: GeneratedStudy;
  let warmUp: string;
  let folder: string;
  before(async () => {
    study = await generateStudy({ series: [{ seriesNumber: 1, modality: 'MR', instances: 12 }] });
    warmUp = makeTempDir('rss-warm-');
    cpSync(study.dir, warmUp, { recursive: true });
    folder = makeTempDir('rss-big-');
    cpSync(study.dir, folder, { recursive: true });
    const series = path.join(folder, path.basename(path.dirname(study.series[0].files[0].path)));
    mkdirSync(series, { recursive: true });
    for (const name of ['big-1.dcm', 'big-2.dcm'])
      writeBig(study.series[0].files[0].path, path.join(series, name), BIG);
  });

  it('never holds the two big files at once, whatever the concurrency', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', CHILD, warmUp, folder], {
      maxBuffer: 1 << 20,
      timeout: 240_000,
    });
    const report = JSON.parse(stdout.trim().split('\n').pop()!) as {
      before: number;
      peak: number;
      instances: number;
      bytesIn: number;
    };
    assert.equal(report.instances, 14, 'every file anonymised, the big ones included');
    assert.ok(report.bytesIn > 2 * BIG);
    const raised = report.peak - report.before;
    console.log(
      `anonymise memory: peak RSS rose by ${(raised / 2 ** 20).toFixed(0)} MiB with two ${BIG / 2 ** 20} MiB files among ${report.instances}`,
    );
    assert.ok(
      raised < 2.5 * BIG,
      `peak RSS rose by ${(raised / 2 ** 20).toFixed(0)} MiB for 256 MiB files (at most ${((2.5 * BIG) / 2 ** 20).toFixed(0)} MiB)`,
    );
  });
});
