/**
 * zipFolder on its own: every file arrives whole (checked with Info-ZIP's unzip, not archiver), the
 * manifest lists exactly the files of the zip with their sizes and hashes, instances are counted per
 * series, and the compression level is applied; the zip step never writes under the final name and
 * publish replaces an earlier zip. (End to end: test/e2e/forward-zip.test.ts.)
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { zipFolder } from '../../shared/archive/zip';
import { newJob, type RuleSnapshot } from '../../shared/pipeline/job';
import { publishStep } from '../../shared/pipeline/steps/publish';
import { zipStep } from '../../shared/pipeline/steps/zip';
import { jobPaths } from '../../shared/pipeline/naming';
import { sha256 } from '../support/bytes';
import { makeTempDir, requireBinary } from '../support/process';

const run = promisify(execFile);

function tree(root: string): string[] {
  return readdirSync(root, { recursive: true })
    .map(String)
    .filter((f) => statSync(path.join(root, f)).isFile())
    .map((f) => f.split(path.sep).join('/'))
    .sort();
}

describe('zipFolder', { timeout: 60_000 }, () => {
  const unzip = requireBinary('unzip', 'unzip');

  function makeFolder(): { dir: string; contents: Map<string, Buffer> } {
    const dir = makeTempDir('zip-src-');
    const contents = new Map<string, Buffer>();
    for (let s = 1; s <= 2; s += 1) {
      const series = `SE${s}-20240315-1.2.3.${s}`;
      mkdirSync(path.join(dir, series));
      for (let i = 0; i < (s === 1 ? 12 : 7); i += 1) {
        // Sizes from empty to a few MB, across stream chunk boundaries.
        const size = [0, 1, 65_535, 65_536, 65_537, 300_000, 2_500_000][i % 7] + i;
        const bytes = randomBytes(size);
        const rel = `${series}/1.2.3.${s}.${i}.dcm`;
        writeFileSync(path.join(dir, rel), bytes);
        contents.set(rel, bytes);
      }
    }
    // A multi-frame-sized file, above the 16 MiB up to which files are read whole: streamed instead.
    const big = randomBytes(16 * 1024 * 1024 + 5);
    writeFileSync(path.join(dir, 'SE1-20240315-1.2.3.1', '1.2.3.1.big.dcm'), big);
    contents.set('SE1-20240315-1.2.3.1/1.2.3.1.big.dcm', big);
    writeFileSync(path.join(dir, 'README.txt'), 'not an instance');
    contents.set('README.txt', Buffer.from('not an instance'));
    return { dir, contents };
  }

  // Level 1 deflates, reading files into reused buffers; level 0 stores, with a fresh buffer per file.
  for (const level of [1, 0])
    it(`holds every file byte for byte at level ${level}, with a manifest listing exactly those files`, async () => {
      const { dir, contents } = makeFolder();
      const target = path.join(makeTempDir('zip-out-'), 'study.zip');
      const manifest = await zipFolder(dir, target, { level, name: 'P1-Doe-EX42' });
      const { stdout } = await run(unzip, ['-t', target]);
      assert.match(stdout, /No errors detected/);
      const out = makeTempDir('zip-x-');
      await run(unzip, ['-q', target, '-d', out]);
      const expected = [...contents.keys()].map((rel) => `P1-Doe-EX42/${rel}`);
      assert.deepEqual(tree(out), [...expected, 'P1-Doe-EX42/MANIFEST.json'].sort());
      assert.deepEqual(
        manifest.files.map((f) => f.path),
        [...expected].sort(),
      );
      for (const entry of manifest.files) {
        const original = contents.get(entry.path.slice('P1-Doe-EX42/'.length))!;
        const unpacked = readFileSync(path.join(out, entry.path));
        assert.equal(unpacked.length, original.length, `${entry.path} size`);
        assert.equal(sha256(unpacked), sha256(original), `${entry.path} bytes`);
        assert.equal(entry.size, original.length);
        assert.equal(entry.sha256, sha256(original));
      }
      assert.deepEqual(
        JSON.parse(readFileSync(path.join(out, 'P1-Doe-EX42/MANIFEST.json'), 'utf8')),
        JSON.parse(JSON.stringify(manifest)),
      );
      assert.deepEqual(manifest.series, { 'SE1-20240315-1.2.3.1': 13, 'SE2-20240315-1.2.3.2': 7 });
      assert.deepEqual(manifest.totals, { files: 21, bytes: [...contents.values()].reduce((n, b) => n + b.length, 0) });
    });

  it('stores without compression at level 0 and deflates at level 9', async () => {
    const dir = makeTempDir('zip-level-');
    writeFileSync(path.join(dir, 'zeros.dcm'), Buffer.alloc(1_000_000));
    const out = makeTempDir('zip-level-out-');
    await zipFolder(dir, path.join(out, 'stored.zip'), { level: 0, name: 'x' });
    await zipFolder(dir, path.join(out, 'deflated.zip'), { level: 9, name: 'x' });
    const listing = async (file: string) => (await run(unzip, ['-v', file])).stdout;
    assert.match(await listing(path.join(out, 'stored.zip')), /1000000\s+Stored/);
    assert.match(await listing(path.join(out, 'deflated.zip')), /1000000\s+Defl:/);
    assert.ok(statSync(path.join(out, 'deflated.zip')).size < 20_000);
  });
});

describe('zip and publish steps', { timeout: 60_000 }, () => {
  const unzip = requireBinary('unzip', 'unzip');
  const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

  async function zippedJob(keepFolder: boolean) {
    const root = makeTempDir('zip-step-');
    const final = path.join(root, 'rule', 'P1-Doe-EX42');
    mkdirSync(path.join(`${final}.WORKING`, 'SE1-20240315-1.2.3.1'), { recursive: true });
    writeFileSync(path.join(`${final}.WORKING`, 'SE1-20240315-1.2.3.1', '1.2.3.1.1.dcm'), randomBytes(5000));
    // An earlier result of the same study (new instances arrived since).
    writeFileSync(`${final}.zip`, 'the previous zip');
    const rule: RuleSnapshot = {
      id: 'rule',
      checkOn: 'Study',
      steps: ['download', 'zip'],
      destinations: [],
      zip: { level: 1, keepFolder },
    };
    const job = newJob(
      { rule, level: 'Study', resourceId: 's', lastUpdate: 'x', source: 'webhook', forced: false },
      'job-1',
    );
    job.outputPath = final;
    return { root, final, job };
  }

  it('writes the zip outside the rule folder; the previous zip stays whole until publish replaces it', async () => {
    const { root, final, job } = await zippedJob(false);
    await zipStep()({ job, log, progress: async () => undefined });
    assert.equal(
      readFileSync(`${final}.zip`, 'utf8'),
      'the previous zip',
      'the final name still holds the previous result',
    );
    const building = path.join(root, `.${job.id}.zip.WORKING`);
    assert.equal(jobPaths(job).zipWorking, building, 'in the storage root, named by the job id (no PHI)');
    assert.deepEqual(readdirSync(path.dirname(final)).sort(), ['P1-Doe-EX42.WORKING', 'P1-Doe-EX42.zip']);
    assert.match((await run(unzip, ['-t', building])).stdout, /No errors detected/);
    await publishStep({})({ job, log, progress: async () => undefined });
    assert.match((await run(unzip, ['-t', `${final}.zip`])).stdout, /No errors detected/);
    assert.deepEqual(readdirSync(path.dirname(final)), ['P1-Doe-EX42.zip'], 'no folder, no WORKING, no REPLACED left');
    assert.deepEqual(readdirSync(root), ['rule'], 'nothing left in the storage root');
  });

  it('keeps the folder beside the zip when the rule asks', async () => {
    const { final, job } = await zippedJob(true);
    await zipStep()({ job, log, progress: async () => undefined });
    await publishStep({})({ job, log, progress: async () => undefined });
    assert.deepEqual(readdirSync(path.dirname(final)).sort(), ['P1-Doe-EX42', 'P1-Doe-EX42.zip']);
    assert.deepEqual(readdirSync(final), ['SE1-20240315-1.2.3.1']);
  });
});
