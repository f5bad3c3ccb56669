/**
 * Anonymises every `.dcm` under a working folder in place, a bounded number of files at a time (one
 * file in memory per worker, so memory stays flat whatever the study size):
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
import type { Anonymiser } from './anonymiser';
import { emptyRecord, mergeRecord, type DeidentificationRecord } from './record';
import { forEachLimit } from '../util/concurrency';
import { filesUnder } from '../util/files';

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

async function writeAtomically(file: string, data: Buffer, temporary = `${file}${TEMPORARY_SUFFIX}`): Promise<void> {
  const handle = await fs.open(temporary, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
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
  await forEachLimit(files, options.concurrency, async (file) => {
    const name = path.relative(root, file);
    const input = await fs.readFile(file);
    result.bytesIn += input.length;
    const outcome = options.isDone?.(file, input) ? undefined : anonymiser.anonymiseBuffer(input, name);
    result.warnings.push(...(outcome?.warnings ?? []));
    if (outcome)
      mergeRecord(
        result.record,
        outcome.record
          ? { ...outcome.record, instances: 1 }
          : { counts: {}, fallbacks: {}, characterSets: {}, warnings: outcome.warnings, excluded: 1 },
      );
    if (outcome === undefined) {
      result.bytesOut += input.length; // done by an earlier run
      result.instances += 1;
      earlierRun += 1;
    } else if (outcome.excluded !== undefined || !outcome.output) {
      result.excluded.push(outcome.excluded ?? name);
      await fs.rm(file);
    } else if (output !== undefined) {
      const target = path.join(output, renamedPath(name, outcome.uidChanges ?? new Map<string, string>()));
      try {
        await fs.mkdir(path.dirname(target), { recursive: true });
        await writeAtomically(target, outcome.output, `${file}${TEMPORARY_SUFFIX}`);
      } catch (error) {
        throw new Error(
          `${name}: could not be written (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
          { cause: error },
        );
      }
      await fs.rm(file);
      written.add(target);
      result.bytesOut += outcome.output.length;
      result.instances += 1;
    } else {
      try {
        await writeAtomically(file, outcome.output);
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
      result.bytesOut += outcome.output.length;
      result.instances += 1;
    }
    done += 1;
    await options.progress?.(done, files.length);
  });
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
