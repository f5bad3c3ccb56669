/**
 * The native CRC-32 given to archiver's `crc-32`: every result equals the pure-JS one it replaces,
 * for the ways archiver calls it (a fresh checksum, a chained unsigned one, crc32-stream's initial
 * 4-byte Buffer seed) and for odd seeds, and it reaches the module copies archiver really uses.
 * (Whole archives are checked by Info-ZIP's unzip in zip.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { archiverCrc32Modules, nativeCrc32Buf, useNativeCrc32 } from '../../shared/archive/native-crc32';

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
});
