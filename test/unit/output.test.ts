import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { outputName, outputPaths, pseudonymousOutputName, seriesFolderName } from '../../shared/output/layout';
import { publish } from '../../shared/output/publish';
import { resolveInside, sanitizeComponent } from '../../shared/output/sanitize';

describe('sanitizeComponent', () => {
  const cases: Array<[string | undefined, string]> = [
    ['Müller', 'Müller'],
    ['../../etc/passwd', 'etc_passwd'],
    ['a/b\\c', 'a_b_c'],
    ['..', 'UNKNOWN'],
    ['.', 'UNKNOWN'],
    ['', 'UNKNOWN'],
    [undefined, 'UNKNOWN'],
    ['nul\u0000byte', 'nul_byte'],
    ['tab\tand\nnewline', 'tab_and_newline'],
    ['CON', '_CON'],
    ['lpt1.txt', '_lpt1.txt'],
    ['name with  spaces', 'name_with_spaces'],
    ['trailing dots...', 'trailing_dots'],
    ['a:b*c?d"e<f>g|h', 'a_b_c_d_e_f_g_h'],
    ['\u202eevil', 'evil'],
    ['王^小明', '王^小明'],
  ];
  for (const [input, expected] of cases) {
    it(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () =>
      assert.equal(sanitizeComponent(input), expected));
  }

  it('bounds length in UTF-8 bytes without splitting characters', () => {
    const long = 'ü'.repeat(500);
    const out = sanitizeComponent(long);
    assert.ok(Buffer.byteLength(out) <= 80);
    assert.equal(out, 'ü'.repeat(40));
  });

  it('trims a value of 100k dots between two letters in linear time', () => {
    const started = performance.now();
    assert.equal(sanitizeComponent(`x${'.'.repeat(100_000)}x`, 'UNKNOWN', 64), 'x');
    const ms = performance.now() - started;
    console.log(`sanitizeComponent: 100k dots in ${ms.toFixed(1)} ms`);
    assert.ok(ms < 1000, `took ${ms} ms`);
  });

  it('normalises to NFC so the same name gives the same folder', () => {
    assert.equal(sanitizeComponent('Mu\u0308ller'), sanitizeComponent('Müller'));
  });
});

describe('resolveInside', () => {
  it('refuses paths that escape the root', () => {
    assert.throws(() => resolveInside('/srv/out', '..', 'x'), /outside the storage root/);
    assert.throws(() => resolveInside('/srv/out', '/etc'), /outside the storage root/);
    assert.equal(resolveInside('/srv/out', 'rule', 'a'), '/srv/out/rule/a');
  });
});

describe('layout (autorthanc compatible)', () => {
  const tags = { PatientID: 'P001', PatientName: 'Müller^Jürgen', StudyID: '4711', SeriesNumber: '3' };
  it('names a study PatientID-FirstName-EX<StudyID>', () => {
    assert.equal(outputName({ level: 'Study', ...tags }), 'P001-Müller-EX4711');
  });
  it('names a series ...-SE<SeriesNumber>', () => {
    assert.equal(outputName({ level: 'Series', ...tags }), 'P001-Müller-EX4711-SE3');
  });
  it('names series folders SE<n>-<date>-<uid>', () => {
    assert.equal(
      seriesFolderName({ SeriesNumber: '3', SeriesDate: '20240131', SeriesInstanceUID: '1.2.3' }),
      'SE3-20240131-1.2.3',
    );
  });
  it('fills an OutputName template with sanitised values', () => {
    assert.equal(
      outputName({ level: 'Study', ...tags, StudyDate: '20240131' }, '{StudyDate}_{PatientID}/{PatientName}'),
      '20240131_P001_Müller',
    );
  });
  it('keeps hostile values under the storage root with readable names', () => {
    const hostile = {
      level: 'Series' as const,
      PatientID: '../../../etc',
      PatientName: '/root^x',
      StudyID: 'a\u0000b',
      SeriesNumber: '..',
    };
    const name = outputName(hostile);
    assert.equal(name, 'etc-root-EXa_b-SE');
    const paths = outputPaths('/srv/out', '../rule', name);
    assert.ok(paths.final.startsWith('/srv/out/'));
    assert.equal(paths.working, `${paths.final}.WORKING`);
  });
  it('pseudonymous names carry no identifier', () => {
    assert.equal(pseudonymousOutputName('ANON7F3A', 'c0ffee', '2'), 'ANON7F3A-STc0ffee-SE2');
  });
});

describe('publish', () => {
  const roots: string[] = [];
  after(async () => Promise.all(roots.map((r) => rm(r, { recursive: true, force: true }))));
  async function tree(): Promise<string> {
    const root = await mkdtemp(path.join(os.tmpdir(), 'publish-'));
    roots.push(root);
    return root;
  }

  it('renames WORKING to the final name', async () => {
    const root = await tree();
    await mkdir(path.join(root, 'x.WORKING'));
    await writeFile(path.join(root, 'x.WORKING', 'a.dcm'), 'A');
    assert.equal(await publish(path.join(root, 'x.WORKING'), path.join(root, 'x')), 'published');
    assert.deepEqual(await readdir(root), ['x']);
    assert.equal(await readFile(path.join(root, 'x', 'a.dcm'), 'utf8'), 'A');
  });

  it('replaces an earlier result and leaves no REPLACED folder behind', async () => {
    const root = await tree();
    await mkdir(path.join(root, 'x'));
    await writeFile(path.join(root, 'x', 'old.dcm'), 'old');
    await mkdir(path.join(root, 'x.WORKING'));
    await writeFile(path.join(root, 'x.WORKING', 'new.dcm'), 'new');
    assert.equal(await publish(path.join(root, 'x.WORKING'), path.join(root, 'x')), 'replaced');
    assert.deepEqual(await readdir(root), ['x']);
    assert.deepEqual(await readdir(path.join(root, 'x')), ['new.dcm']);
    // The earlier result was moved aside beside it, never relative to the process's working folder.
    assert.deepEqual(
      (await readdir(process.cwd())).filter((entry) => entry.startsWith('x.REPLACED-')),
      [],
      'nothing moved aside into the working folder',
    );
  });

  it('is idempotent after a crash that followed the rename', async () => {
    const root = await tree();
    await mkdir(path.join(root, 'x'));
    await mkdir(path.join(root, 'x.REPLACED-1'));
    assert.equal(await publish(path.join(root, 'x.WORKING'), path.join(root, 'x')), 'already-published');
    assert.deepEqual(await readdir(root), ['x']);
  });

  it('chowns every folder and file to UID/GID before the rename', async (t) => {
    const root = await tree();
    await mkdir(path.join(root, 'x.WORKING', 'SE1'), { recursive: true });
    await writeFile(path.join(root, 'x.WORKING', 'SE1', 'a.dcm'), 'A');
    const owner = { uid: 4321, gid: 4322 };
    if (process.getuid?.() !== 0) {
      // Only root may give files away; elsewhere the attempt must fail loudly, not silently keep the owner.
      await assert.rejects(publish(path.join(root, 'x.WORKING'), path.join(root, 'x'), owner), /EPERM/);
      t.diagnostic('not root: checked that chown failure is reported');
      return;
    }
    assert.equal(await publish(path.join(root, 'x.WORKING'), path.join(root, 'x'), owner), 'published');
    for (const rel of ['x', 'x/SE1', 'x/SE1/a.dcm']) {
      const st = await stat(path.join(root, rel));
      assert.deepEqual({ uid: st.uid, gid: st.gid }, owner, rel);
    }
  });

  it('fails clearly when there is nothing to publish', async () => {
    const root = await tree();
    await assert.rejects(publish(path.join(root, 'x.WORKING'), path.join(root, 'x')), /Nothing to publish/);
  });
});
