/**
 * Zips a folder one file at a time through archiver (memory stays flat whatever the study size: at
 * most two files of up to 16 MiB are held, larger ones are streamed), with a SHA-256 of every file computed on the way and a MANIFEST.json as the last entry:
 * files, sizes, hashes, instances per series folder and totals. ZIP64 is used when the archive may
 * pass 4 GiB or 65,535 entries.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import { once } from 'node:events';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import archiver from 'archiver';
import { filesUnder } from '../util/files';
import type { Logger } from '../vocabulary';
import { useNativeCrc32 } from './native-crc32';

export interface ManifestEntry {
  path: string;
  size: number;
  sha256: string;
}

export interface Manifest {
  format: 'autorthanc-functions/zip-manifest@1';
  name: string;
  createdAt: string;
  files: ManifestEntry[];
  series: Record<string, number>;
  totals: { files: number; bytes: number };
  /** Documents written beside MANIFEST.json (e.g. DEIDENTIFICATION.json), not counted in totals. */
  extras?: ManifestEntry[];
}

async function listFiles(root: string): Promise<string[]> {
  return (await filesUnder(root)).map((f) => path.relative(root, f).split(path.sep).join('/')).sort();
}

const SMALL_FILE_BYTES = 16 * 1024 * 1024;
const ZIP64_BYTES = 3.5 * 1024 ** 3;

/**
 * Reads a file of up to SMALL_FILE_BYTES whole (undefined for a larger one). With `reuseBuffers`,
 * files go into two buffers used in turn, the next file's while archiver compresses the current one:
 * a fresh buffer per file (263 MB of them for a 500-slice CT) made V8 run a full garbage collection
 * every 20 MB or so, each marking the host's whole heap (37 in three zips of that study, 1 with two
 * buffers). A buffer is read into again only after archiver's `entry` event for the file it held,
 * and a deflated entry has been compressed by then. A stored one (level 0) is still queued for the
 * output at that point, so level 0 does not reuse buffers.
 */
function wholeFileReader(
  source: string,
  sizes: ReadonlyMap<string, number>,
  { reuseBuffers }: { reuseBuffers: boolean },
): (rel: string) => Promise<Buffer | undefined> {
  const buffers = [Buffer.alloc(0), Buffer.alloc(0)];
  let turn = 0;
  const bufferFor = (size: number) => {
    const slot = turn++ % 2;
    if (buffers[slot].length < size) buffers[slot] = Buffer.allocUnsafeSlow(Math.max(size, 1 << 20));
    return buffers[slot].subarray(0, size);
  };
  return async (rel) => {
    const size = sizes.get(rel) ?? 0;
    if (size > SMALL_FILE_BYTES) return undefined;
    const file = await fs.open(path.join(source, rel));
    try {
      const buffer = reuseBuffers ? bufferFor(size) : Buffer.allocUnsafe(size);
      let read = 0;
      while (read < size) {
        const { bytesRead } = await file.read(buffer, read, size - read, read);
        if (bytesRead === 0) break; // the file shrank since it was listed: what is there is what is zipped
        read += bytesRead;
      }
      return buffer.subarray(0, read);
    } finally {
      await file.close();
    }
  };
}

export interface ZipOptions {
  level: number;
  name: string;
  progress?: (done: number, total: number) => Promise<void>;
  /** Small documents to place beside MANIFEST.json, by file name (e.g. DEIDENTIFICATION.json). */
  extras?: Record<string, string>;
  /** Where a zip that cannot use the native CRC-32 (so runs slower) says so. */
  log?: Pick<Logger, 'warn'>;
}

export async function zipFolder(source: string, target: string, options: ZipOptions): Promise<Manifest> {
  useNativeCrc32(options.log);
  const sizes = new Map<string, number>();
  for (const f of await listFiles(source)) sizes.set(f, (await fs.stat(path.join(source, f))).size);
  const total = [...sizes.values()].reduce((sum, size) => sum + size, 0);
  const archive = archiver('zip', {
    zlib: { level: options.level },
    forceZip64: total > ZIP64_BYTES || sizes.size > 65_000,
  });
  const output = createWriteStream(target);
  const finished = once(output, 'close');
  // A write error (ENOSPC, EROFS) rejects `finished` too, before anything awaits it: without this
  // handler that rejection is unhandled and kills the whole host. `failed` reports the error.
  finished.catch(() => undefined);
  const failed = new Promise<never>((_, reject) => {
    archive.on('error', reject);
    archive.on('warning', reject);
    output.on('error', reject);
  });
  archive.pipe(output);
  const reading = new Set<Readable>();
  try {
    return await writeEntries(archive, source, sizes, options, failed, finished, reading);
  } catch (error) {
    // Close everything, the file being read included: archiver stops reading on error, which would
    // leave that file open in the host for good (and its filesystem impossible to remount).
    for (const stream of reading) stream.destroy();
    archive.abort();
    output.destroy();
    throw error;
  }
}

async function writeEntries(
  archive: archiver.Archiver,
  source: string,
  sizes: ReadonlyMap<string, number>,
  options: ZipOptions,
  failed: Promise<never>,
  finished: Promise<unknown>,
  reading: Set<Readable>,
): Promise<Manifest> {
  const manifest: Manifest = {
    format: 'autorthanc-functions/zip-manifest@1',
    name: options.name,
    createdAt: new Date().toISOString(),
    files: [],
    series: {},
    totals: { files: 0, bytes: 0 },
  };
  let done = 0;
  // Small files (nearly every DICOM instance) are read whole and handed to archiver as one buffer:
  // one CRC and one hash call, no stream per file. The next file is read and hashed while zlib
  // deflates the current one on the thread pool, so the main thread's SHA-256 overlaps the deflate
  // instead of following it. Large ones (multi-frame) are streamed, so memory stays bounded by
  // SMALL_FILE_BYTES.
  const files = [...sizes.keys()];
  const load = wholeFileReader(source, sizes, { reuseBuffers: options.level > 0 });
  const loadHashed = async (rel: string) => {
    const whole = await load(rel);
    return whole && { bytes: whole, sha256: createHash('sha256').update(whole).digest('hex') };
  };
  const loadNext = (i: number) => {
    const loading = i + 1 < files.length ? loadHashed(files[i + 1]) : undefined;
    loading?.catch(() => undefined);
    return loading;
  };
  let next = files.length > 0 ? loadHashed(files[0]) : undefined;
  for (let i = 0; i < files.length; i += 1) {
    const rel = files[i];
    const whole = await next;
    let size = 0;
    let sha256: string;
    if (whole) {
      size = whole.bytes.length;
      sha256 = whole.sha256;
      archive.append(whole.bytes, { name: `${options.name}/${rel}` });
      const entry = Promise.race([once(archive, 'entry'), failed]);
      // The previous file's entry has been emitted, so its buffer is free for the next one.
      next = loadNext(i);
      await entry;
    } else {
      next = loadNext(i);
      const hash = createHash('sha256');
      const tee = new PassThrough({ highWaterMark: 1 << 20 });
      tee.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        size += chunk.length;
      });
      const file = createReadStream(path.join(source, rel), { highWaterMark: 1 << 20 });
      reading.add(file).add(tee);
      file.on('close', () => reading.delete(file));
      tee.on('close', () => reading.delete(tee));
      file.on('error', (e) => tee.destroy(e)).pipe(tee);
      archive.append(tee, { name: `${options.name}/${rel}` });
      await Promise.race([once(archive, 'entry'), failed]);
      sha256 = hash.digest('hex');
    }
    manifest.files.push({ path: `${options.name}/${rel}`, size, sha256 });
    const folder = rel.includes('/') ? rel.slice(0, rel.indexOf('/')) : '.';
    if (rel.toLowerCase().endsWith('.dcm')) manifest.series[folder] = (manifest.series[folder] ?? 0) + 1;
    manifest.totals.files += 1;
    manifest.totals.bytes += size;
    done += 1;
    await options.progress?.(done, files.length);
  }
  for (const [file, content] of Object.entries(options.extras ?? {})) {
    const bytes = Buffer.from(content);
    archive.append(bytes, { name: `${options.name}/${file}` });
    await Promise.race([once(archive, 'entry'), failed]);
    (manifest.extras ??= []).push({
      path: `${options.name}/${file}`,
      size: bytes.length,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
  }
  archive.append(`${JSON.stringify(manifest, null, 2)}\n`, { name: `${options.name}/MANIFEST.json` });
  await Promise.race([archive.finalize(), failed]);
  await Promise.race([finished, failed]);
  return manifest;
}
