/**
 * Anonymises every `.dcm` under a working folder in place: each file is rewritten to a temporary
 * name in the same folder and renamed over the original (atomic per file), a bounded number at a
 * time, so memory stays flat. Excluded instances are deleted. Errors name the file relative to the
 * folder (names there are already pseudonymous).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Anonymiser } from './anonymiser';
import { forEachLimit } from '../util/concurrency';

export interface FolderResult {
  instances: number;
  excluded: string[];
  warnings: string[];
  bytesIn: number;
  bytesOut: number;
}

async function dicomFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(root, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.toLowerCase().endsWith('.dcm')) out.push(path.join(entry.parentPath ?? (entry as unknown as { path: string }).path, entry.name));
  }
  return out.sort();
}

export async function anonymiseFolder(root: string, anonymiser: Anonymiser, options: { concurrency: number; progress?: (done: number, total: number) => Promise<void> }): Promise<FolderResult> {
  const files = await dicomFiles(root);
  const result: FolderResult = { instances: 0, excluded: [], warnings: [], bytesIn: 0, bytesOut: 0 };
  let done = 0;
  await forEachLimit(files, options.concurrency, async (file) => {
    const name = path.relative(root, file);
    const input = await fs.readFile(file);
    const outcome = anonymiser.anonymiseBuffer(input, name);
    result.bytesIn += input.length;
    result.warnings.push(...outcome.warnings);
    if (outcome.excluded !== undefined || !outcome.output) {
      result.excluded.push(outcome.excluded ?? name);
      await fs.rm(file);
    } else {
      const temporary = `${file}.anonymising`;
      await fs.writeFile(temporary, outcome.output);
      await fs.rename(temporary, file);
      result.bytesOut += outcome.output.length;
      result.instances += 1;
    }
    done += 1;
    await options.progress?.(done, files.length);
  });
  return result;
}
