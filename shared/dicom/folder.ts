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
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import type { Anonymiser } from './anonymiser';
import { forEachLimit } from '../util/concurrency';

export interface FolderResult {
  instances: number;
  excluded: string[];
  warnings: string[];
  bytesIn: number;
  bytesOut: number;
}

const TEMPORARY_SUFFIX = '.anonymising';

async function walk(root: string): Promise<{ dicom: string[]; leftovers: string[] }> {
  const dicom: string[] = [];
  const leftovers: string[] = [];
  for (const entry of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name);
    if (entry.name.endsWith(TEMPORARY_SUFFIX)) leftovers.push(full);
    else if (entry.name.toLowerCase().endsWith('.dcm')) dicom.push(full);
  }
  return { dicom: dicom.sort(), leftovers };
}

/** Replaces whole UIDs only (not bounded by digits or dots), so `1.2.3` never matches inside `1.2.34` or a new `2.25.…`. */
function replaceUids(name: string, changes: Map<string, string>): string {
  let out = name;
  for (const [from, to] of [...changes].sort((a, b) => b[0].length - a[0].length)) {
    out = out.replace(new RegExp(`(?<![0-9.])${from.replace(/\./g, '\\.')}(?![0-9])(?!\\.[0-9])`, 'g'), to);
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

async function writeAtomically(file: string, data: Buffer): Promise<void> {
  const temporary = `${file}${TEMPORARY_SUFFIX}`;
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
  await fs.rename(temporary, file);
}

export async function anonymiseFolder(
  root: string,
  anonymiser: Anonymiser,
  options: {
    concurrency: number;
    progress?: (done: number, total: number) => Promise<void>;
    /** Recognises a file anonymised by an earlier, interrupted run (given its path and content). */
    isDone?: (file: string, input: Buffer) => boolean;
  },
): Promise<FolderResult> {
  root = path.resolve(root);
  const { dicom: files, leftovers } = await walk(root);
  await Promise.all(leftovers.map((f) => fs.rm(f, { force: true })));
  const result: FolderResult = { instances: 0, excluded: [], warnings: [], bytesIn: 0, bytesOut: 0 };
  const folderChanges = new Map<string, string>();
  let done = 0;
  await forEachLimit(files, options.concurrency, async (file) => {
    const name = path.relative(root, file);
    const input = await fs.readFile(file);
    result.bytesIn += input.length;
    const outcome = options.isDone?.(file, input) ? undefined : anonymiser.anonymiseBuffer(input, name);
    result.warnings.push(...(outcome?.warnings ?? []));
    if (outcome === undefined) {
      result.bytesOut += input.length; // done by an earlier run
      result.instances += 1;
    } else if (outcome.excluded !== undefined || !outcome.output) {
      result.excluded.push(outcome.excluded ?? name);
      await fs.rm(file);
    } else {
      try {
        await writeAtomically(file, outcome.output);
      } catch (error) {
        throw new Error(`${name}: could not be rewritten (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, { cause: error });
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
  return result;
}
