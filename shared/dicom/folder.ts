/**
 * Anonymises every `.dcm` under a working folder in place, a bounded number of files at a time and
 * a bounded number of bytes (each file holds twice its size while it is parsed, until it is written:
 * see byte-budget.ts; a file larger than the budget runs alone), so memory stays flat whatever the
 * study and its files' sizes. The parsing and encoding run in worker threads where the host has
 * more than one core (anonymise-pool.ts), the file system work on the main thread:
 * - each file is written to a temporary name in its own folder, fsynced, then renamed over the
 *   original (atomic per file: a crash leaves either the original or the anonymised file, plus at
 *   worst a `*.anonymising` leftover that the next run deletes);
 * - excluded instances (BurnedInAnnotation policy "exclude") are deleted;
 * - any path component under the folder that contains an original Study, Series or SOP Instance
 *   UID gets that UID replaced by its anonymised form (files right away, folders once every file is
 *   done). The pipeline already names anonymising jobs' files `<new SOPInstanceUID>.dcm` and series
 *   folders after the new SeriesInstanceUID, so for it this is a no-op; it protects other layouts.
 * - a file that `isDone` recognises as already anonymised (a run cut short by a crash) is counted
 *   and left alone, so running again over a half-done folder never anonymises a file twice.
 * Errors name the file relative to the folder, never its content.
 *
 * With `output` (anonymising pipelines: the folder is the job's private staging, the output its
 * `.WORKING`), nothing is rewritten in place: each file is anonymised to a temporary name beside the
 * original, fsynced, renamed into `output` (its path's UIDs replaced), and only then is the original
 * deleted. So every file that ever appears under `output` is complete and de-identified, and a run cut
 * short resumes with the originals still in staging (one anonymised twice, at worst, gives the same
 * file again). When staging is on another filesystem the rename becomes a copy to a temporary name in
 * `output`, then a rename there.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { Anonymiser, AnonymisedInstance } from './anonymiser';
import { sharedAnonymisePool, type AnonymisePool } from './anonymise-pool';
import { createByteBudget, type ByteBudget } from '../util/byte-budget';
import { emptyRecord, mergeRecord, type DeidentificationRecord } from './record';
import { forEachLimit } from '../util/concurrency';
import { filesUnder, writeAll } from '../util/files';

export interface FolderResult {
  instances: number;
  excluded: string[];
  warnings: string[];
  bytesIn: number;
  bytesOut: number;
  /** What was decided for the elements of every instance anonymised by this run (record.ts). */
  record: DeidentificationRecord;
}

const TEMPORARY_SUFFIX = '.anonymising';

async function walk(root: string): Promise<{ dicom: string[]; leftovers: string[] }> {
  const dicom: string[] = [];
  const leftovers: string[] = [];
  const files = await filesUnder(root).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return []; // staging already emptied by a run that completed
    throw error;
  });
  for (const full of files) {
    if (full.endsWith(TEMPORARY_SUFFIX)) leftovers.push(full);
    else if (full.toLowerCase().endsWith('.dcm')) dicom.push(full);
  }
  return { dicom: dicom.sort(), leftovers };
}

/**
 * Replaces whole UIDs only (not bounded by digits or dots), so `1.2.3` never matches inside `1.2.34`
 * or a new `2.25.…`. Plain string search: a UID comes from a file, so it never becomes a pattern.
 */
export function replaceUids(name: string, changes: Map<string, string>): string {
  let out = name;
  for (const [from, to] of [...changes].sort((a, b) => b[0].length - a[0].length)) {
    if (from === '') continue;
    let result = '';
    let start = 0;
    for (let at = out.indexOf(from); at !== -1; at = out.indexOf(from, at + 1)) {
      if (at < start) continue;
      const before = out[at - 1];
      const after = out.slice(at + from.length, at + from.length + 2);
      const boundedBefore = before === undefined || !/[0-9.]/.test(before);
      const boundedAfter = !/^[0-9]/.test(after) && !/^\.[0-9]/.test(after);
      if (!boundedBefore || !boundedAfter) continue;
      result += out.slice(start, at) + to;
      start = at + from.length;
    }
    out = result + out.slice(start);
  }
  return out;
}

/** The SOP Instance UID of a Part 10 file's meta header, or undefined when it has none or is unreadable. */
export function metaSopInstanceUid(input: Buffer): string | undefined {
  try {
    const buffer = input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer;
    const { meta } = dcmjs.data.DicomMessage.readFile(buffer, { untilTag: '00080005', includeUntilTagValue: false });
    const value = meta['00020003']?.Value?.[0];
    return typeof value === 'string' ? value.replace(/\0+$/, '').trim() : undefined;
  } catch {
    return undefined;
  }
}

/**
 * An `isDone` for folders anonymised in place (the pipeline itself anonymises from staging): files
 * named after their future SOP Instance UID (the keyed replacement of the original) are done once
 * their content carries that UID; an original never does (its UID would be its own keyed hash).
 */
export function alreadyAnonymised(file: string, input: Buffer): boolean {
  const sop = metaSopInstanceUid(input);
  return sop !== undefined && sop === path.basename(file, '.dcm');
}

/** Bytes held in flight by default: a 256 MB file still runs (alone); ordinary instances run four at a time. */
export const DEFAULT_MEMORY_BUDGET_BYTES = 128 * 1024 * 1024;
let processBudget: ByteBudget | undefined;
/** One budget for the process, as the worker pool is: steps that run side by side share it. */
export function sharedMemoryBudget(): ByteBudget {
  processBudget ??= createByteBudget(DEFAULT_MEMORY_BUDGET_BYTES);
  return processBudget;
}

/** Below this many files the worker threads' start-up would cost more than they save. */
const POOL_FROM_FILES = 8;

/** The whole file in a buffer that is all of its memory (handed to a worker thread as it is). */
async function readWhole(handle: fs.FileHandle, size: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafeSlow(size);
  let read = 0;
  while (read < size) {
    const { bytesRead } = await handle.read(buffer, read, size - read, read);
    if (bytesRead === 0) return buffer.subarray(0, read);
    read += bytesRead;
  }
  return buffer;
}

async function writeAtomically(file: string, data: Buffer[], temporary = `${file}${TEMPORARY_SUFFIX}`): Promise<void> {
  const handle = await fs.open(temporary, 'w');
  try {
    await writeAll(handle, data);
    // fdatasync: the data and the size are on disk before the rename, without also flushing the
    // inode's times as fsync does (one journal commit less per file).
    await handle.datasync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.rm(temporary, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.rename(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    // Staging on another filesystem (or mount) than the output: copy, then rename within the output.
    await fs.rm(temporary, { force: true });
    await writeAtomically(file, data);
  }
}

/** `relative` with every whole UID of `changes` replaced in each path component. */
function renamedPath(relative: string, changes: Map<string, string>): string {
  return relative
    .split(path.sep)
    .map((part) => replaceUids(part, changes))
    .join(path.sep);
}

export async function anonymiseFolder(
  root: string,
  anonymiser: Anonymiser,
  options: {
    concurrency: number;
    progress?: (done: number, total: number) => Promise<void>;
    /** Recognises a file anonymised by an earlier, interrupted run (given its path and content). */
    isDone?: (file: string, input: Buffer) => boolean;
    /** Write the anonymised files here (same relative paths, UIDs replaced) and delete the originals. */
    output?: string;
    /** Bytes of files in flight at most, for this call alone (by default the process's DEFAULT_MEMORY_BUDGET_BYTES, shared); a larger file runs alone. */
    memoryBudgetBytes?: number;
    /** Worker threads to anonymise in (the process's shared pool by default); null: this thread. */
    pool?: AnonymisePool | null;
  },
): Promise<FolderResult> {
  root = path.resolve(root);
  const output = options.output === undefined ? undefined : path.resolve(options.output);
  const { dicom: files, leftovers } = await walk(root);
  const outputLeftovers = output === undefined ? [] : (await walk(output)).leftovers;
  await Promise.all([...leftovers, ...outputLeftovers].map((f) => fs.rm(f, { force: true })));
  const result: FolderResult = {
    instances: 0,
    excluded: [],
    warnings: [],
    bytesIn: 0,
    bytesOut: 0,
    record: emptyRecord(anonymiser.profile),
  };
  let earlierRun = 0;
  const folderChanges = new Map<string, string>();
  const written = new Set<string>();
  let done = 0;
  const budget =
    options.memoryBudgetBytes === undefined ? sharedMemoryBudget() : createByteBudget(options.memoryBudgetBytes);
  const pool =
    options.pool === null || files.length < POOL_FROM_FILES ? undefined : (options.pool ?? sharedAnonymisePool());
  /** Reads the file within the budget and anonymises it; the input is not referenced once this returns. */
  const anonymiseFile = async (
    file: string,
    name: string,
  ): Promise<{ bytesIn: number; outcome?: Omit<AnonymisedInstance, 'output'>; release: () => void }> => {
    const handle = await fs.open(file, 'r');
    let release: (() => void) | undefined;
    let input: Buffer;
    try {
      const { size } = await handle.stat();
      // The input, and dcmjs's copy of its values where the pixels are not read as a view of it.
      release = await budget.acquire(2 * size);
      input = await readWhole(handle, size);
    } catch (error) {
      release?.();
      throw error;
    } finally {
      await handle.close();
    }
    try {
      const bytesIn = input.length;
      if (options.isDone?.(file, input)) return { bytesIn, release };
      // In a worker when one is free, else here: the main thread is the last core's worker.
      const outcome = pool?.hasIdleWorker()
        ? await pool.anonymise(anonymiser, input, name)
        : anonymiser.anonymiseToChunks(input, name);
      return { bytesIn, outcome, release };
    } catch (error) {
      release();
      throw error;
    }
  };
  await forEachLimit(files, options.concurrency, async (file) => {
    const name = path.relative(root, file);
    const { bytesIn, outcome, release } = await anonymiseFile(file, name);
    try {
      await storeOutcome(file, name, bytesIn, outcome);
    } finally {
      release();
    }
  });
  async function storeOutcome(
    file: string,
    name: string,
    bytesIn: number,
    outcome: Omit<AnonymisedInstance, 'output'> | undefined,
  ): Promise<void> {
    result.bytesIn += bytesIn;
    const bytesOut = (outcome?.chunks ?? []).reduce((n, c) => n + c.length, 0);
    result.warnings.push(...(outcome?.warnings ?? []));
    if (outcome)
      mergeRecord(
        result.record,
        outcome.record
          ? { ...outcome.record, instances: 1 }
          : { counts: {}, fallbacks: {}, characterSets: {}, warnings: outcome.warnings, excluded: 1 },
      );
    if (outcome === undefined) {
      result.bytesOut += bytesIn; // done by an earlier run
      result.instances += 1;
      earlierRun += 1;
    } else if (outcome.excluded !== undefined || !outcome.chunks) {
      result.excluded.push(outcome.excluded ?? name);
      await fs.rm(file);
    } else if (output !== undefined) {
      const target = path.join(output, renamedPath(name, outcome.uidChanges ?? new Map<string, string>()));
      try {
        await fs.mkdir(path.dirname(target), { recursive: true });
        await writeAtomically(target, outcome.chunks, `${file}${TEMPORARY_SUFFIX}`);
      } catch (error) {
        throw new Error(
          `${name}: could not be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
          { cause: error },
        );
      }
      await fs.rm(file);
      written.add(target);
      result.bytesOut += bytesOut;
      result.instances += 1;
    } else {
      try {
        await writeAtomically(file, outcome.chunks);
      } catch (error) {
        throw new Error(
          `${name}: could not be rewritten (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
          { cause: error },
        );
      }
      const changes = outcome.uidChanges ?? new Map<string, string>();
      const renamed = replaceUids(path.basename(file), changes);
      if (renamed !== path.basename(file)) await fs.rename(file, path.join(path.dirname(file), renamed));
      // Folders between the root and the file: renamed after all files, deepest first.
      let dir = path.dirname(file);
      while (dir.length > root.length && dir.startsWith(root)) {
        const target = replaceUids(path.basename(dir), changes);
        if (target !== path.basename(dir)) folderChanges.set(dir, target);
        dir = path.dirname(dir);
      }
      result.bytesOut += bytesOut;
      result.instances += 1;
    }
    done += 1;
    await options.progress?.(done, files.length);
  }
  for (const dir of [...folderChanges.keys()].sort((a, b) => b.length - a.length)) {
    await fs.rename(dir, path.join(path.dirname(dir), folderChanges.get(dir)!));
  }
  if (output !== undefined) {
    // Resumed after a crash: what the interrupted run already moved into the output counts too.
    for (const earlier of (await walk(output)).dicom.filter((f) => !written.has(f))) {
      result.instances += 1;
      result.bytesOut += (await fs.stat(earlier)).size;
      earlierRun += 1;
    }
  }
  if (earlierRun > 0) {
    // Their element counts were lost with the interrupted run; the record says so rather than guess.
    result.record.instances += earlierRun;
    result.record.warnings.push(
      `${earlierRun} instance(s) were anonymised by an earlier, interrupted run: they are counted in instances, not in the element counts`,
    );
  }
  return result;
}
