/**
 * The native CRC-32 given to archiver's `crc-32`: every result equals the pure-JS one it replaces,
 * for the ways archiver calls it (a fresh checksum, a chained unsigned one, crc32-stream's initial
 * 4-byte Buffer seed) and for odd seeds, and it reaches the module copies archiver really uses.
 * (Whole archives are checked by Info-ZIP's unzip in zip.test.ts.) Where it cannot be installed, a zip
 * says so on its log and still checks out.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  archiverCrc32Modules,
  installNativeCrc32,
  nativeCrc32Buf,
  useNativeCrc32,
} from '../../shared/archive/native-crc32';

describe('native CRC-32 for archiver', () => {
  const modules = archiverCrc32Modules();
  const pure = modules.map((m) => m.buf.bind(m));
  const native = nativeCrc32Buf(pure[0]);

  it('gives the pure-JS results: fresh, chained, Buffer-seeded and odd seeds', () => {
    assert.equal(native(Buffer.from('123456789')) >>> 0, 0xcbf43926, 'the CRC-32 check value');
    for (const size of [0, 1, 7, 64, 1000, 65_537, 524_288 + 3]) {
      const data = randomBytes(size);
      assert.equal(native(data), pure[0](data), `fresh, ${size} bytes`);
      for (const seed of [
        0,
        1,
        0x7fffffff,
        0x80000000,
        0xffffffff,
        -1,
        -123456,
        2 ** 32 + 5,
        1.5,
        NaN,
        undefined,
        '42',
        Buffer.alloc(4),
      ]) {
        assert.equal(native(data, seed), pure[0](data, seed), `${size} bytes, seed ${String(seed)}`);
      }
      // crc32-stream's way: each chunk seeded with the previous result, unsigned.
      let chainedPure: unknown = Buffer.alloc(4);
      let chainedNative: unknown = Buffer.alloc(4);
      for (let at = 0; at < size; at += 4099) {
        chainedPure = pure[0](data.subarray(at, at + 4099), chainedPure) >>> 0;
        chainedNative = native(data.subarray(at, at + 4099), chainedNative) >>> 0;
      }
      assert.equal(Number(chainedNative) >>> 0, Number(chainedPure) >>> 0, `chained, ${size} bytes`);
    }
    assert.equal(native(new Uint8Array([1, 2, 3]), 9), pure[0](new Uint8Array([1, 2, 3]), 9), 'a plain Uint8Array');
    assert.equal(native([1, 2, 3]), pure[0]([1, 2, 3]), 'a plain array goes to the pure-JS function');
  });

  it('reaches the crc-32 copies archiver resolves, once however often it is called', () => {
    assert.ok(modules.length >= 1);
    assert.equal(useNativeCrc32(), true, 'Node has zlib.crc32');
    const installed = modules.map((m) => m.buf);
    modules.forEach((m, i) => assert.notEqual(m.buf, pure[i], 'buf replaced'));
    useNativeCrc32();
    assert.deepEqual(
      modules.map((m) => m.buf),
      installed,
      'a second call changes nothing',
    );
    const data = randomBytes(100_000);
    modules.forEach((m, i) => assert.equal(m.buf(data, 77), pure[i](data, 77)));
  });

  it('says why when it cannot install, and touches nothing', () => {
    const before = modules.map((m) => m.buf);
    assert.match(installNativeCrc32({ hasZlibCrc32: false }) ?? '', /has no zlib\.crc32/);
    const missing = installNativeCrc32({
      modules: () => {
        throw new Error("Cannot find module 'crc-32'\nRequire stack: ...");
      },
    });
    assert.equal(missing, "archiver's crc-32 not found: Cannot find module 'crc-32'");
    assert.deepEqual(
      modules.map((m) => m.buf),
      before,
    );
  });

  it('makes a zip on a Node without zlib.crc32 log the fallback, and the zip still checks out', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'crc32-fallback-'));
    writeFileSync(path.join(dir, 'a.dcm'), randomBytes(10_000));
    // A child process, so that this one keeps its native CRC-32: zlib.crc32 removed before archiver loads.
    const script = `
      require('node:zlib').crc32 = undefined;
      const { zipFolder } = require(${JSON.stringify(path.resolve(__dirname, '../../shared/archive/zip.ts'))});
      const warnings = [];
      zipFolder(${JSON.stringify(dir)}, ${JSON.stringify(path.join(dir, 'out.zip'))}, {
        level: 1, name: 'x', log: { warn: (m) => warnings.push(m) },
      }).then(() => console.log(JSON.stringify(warnings)));`;
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '-e', script]);
      const warnings = JSON.parse(stdout) as string[];
      assert.equal(warnings.length, 1, stdout);
      assert.match(
        warnings[0],
        /^zip: archiver's pure-JS CRC-32 in use, several times slower \(Node v[\d.]+ has no zlib\.crc32\)$/,
      );
      await promisify(execFile)('unzip', ['-tq', path.join(dir, 'out.zip')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('logs nothing when the native CRC-32 is in use', () => {
    const warnings: string[] = [];
    assert.equal(useNativeCrc32({ warn: (m) => warnings.push(m) }), true);
    assert.deepEqual(warnings, []);
  });
});
