/**
 * archiver takes every entry's CRC-32 from the pure-JS `crc-32` package (through compress-commons and
 * crc32-stream). On a DICOM folder that checksum was a third of the zip step's time: about 0.6 GB/s
 * on the main thread, where Info-ZIP uses zlib's native one. Node has that same native CRC-32 as
 * `zlib.crc32` (from 20.15), so `useNativeCrc32` points the `buf` of the copies of `crc-32` that
 * archiver's own chain resolves at it: same results (signed 32-bit, seed chaining as before), several
 * times faster. Where that cannot be done, archiver keeps its own and every zip logs why (the zips are
 * still correct, only slower, so nothing else would show it). `str` and `bstr` are left as they are.
 */
import { createRequire } from 'node:module';
import zlib from 'node:zlib';
import type { Logger } from '../vocabulary';

interface Crc32Module {
  buf: (data: ArrayLike<number>, seed?: unknown) => number;
}

/** The packages through which archiver reaches `crc-32`, each resolved from the one before it. */
const ARCHIVER_CRC32_USERS = [
  ['archiver', 'zip-stream', 'compress-commons'],
  ['archiver', 'zip-stream', 'compress-commons', 'crc32-stream'],
];

/** The `crc-32` module objects archiver's zip writer uses, as Node resolves them from inside archiver. */
export function archiverCrc32Modules(): Crc32Module[] {
  const modules = ARCHIVER_CRC32_USERS.map((chain) => {
    let from = createRequire(__filename);
    for (const name of chain) from = createRequire(from.resolve(name));
    return from('crc-32') as Crc32Module;
  });
  return [...new Set(modules)];
}

/**
 * crc-32's `buf` semantics on zlib's native CRC: a seed is taken as crc-32 takes it (ToInt32, so
 * `undefined` or a non-number is 0), the result is signed. Empty data returns the seed: zlib.crc32
 * answers 0 for it whatever the seed.
 */
export function nativeCrc32Buf(fallback: Crc32Module['buf']): Crc32Module['buf'] {
  return (data, seed) => {
    if (!ArrayBuffer.isView(data)) return fallback(data, seed);
    return data.byteLength === 0
      ? Number(seed) | 0
      : zlib.crc32(data as NodeJS.ArrayBufferView, Number(seed) >>> 0) | 0;
  };
}

let fallback: { reason: string | undefined } | undefined;

/**
 * Installs once, on the first call; returns whether the native CRC-32 is in use, and when it is not,
 * says why on `log` at every call, so each zip that runs slower is visible in its job's log.
 */
export function useNativeCrc32(log?: Pick<Logger, 'warn'>): boolean {
  fallback ??= { reason: installNativeCrc32() };
  if (fallback.reason !== undefined)
    log?.warn(`zip: archiver's pure-JS CRC-32 in use, several times slower (${fallback.reason})`);
  return fallback.reason === undefined;
}

/**
 * Points archiver's `crc-32` copies at zlib's CRC-32; returns why it could not (Node without
 * `zlib.crc32`, archiver's chain not resolvable as in a bundle), or undefined. The options are for tests.
 */
export function installNativeCrc32({
  hasZlibCrc32 = typeof zlib.crc32 === 'function',
  modules = archiverCrc32Modules,
}: { hasZlibCrc32?: boolean; modules?: () => Crc32Module[] } = {}): string | undefined {
  if (!hasZlibCrc32) return `Node ${process.version} has no zlib.crc32`;
  let found: Crc32Module[];
  try {
    found = modules();
  } catch (error) {
    return `archiver's crc-32 not found: ${String((error as Error).message).split('\n')[0]}`;
  }
  for (const crc32 of found) crc32.buf = nativeCrc32Buf(crc32.buf.bind(crc32));
  return undefined;
}
