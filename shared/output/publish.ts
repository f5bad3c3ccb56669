/**
 * Atomic publication. Work happens under a `.WORKING` name; `NAME` appears only by rename(2), which is
 * atomic within a filesystem, so a watcher sees either nothing, the previous complete result or the
 * new complete result, never a partial one. Replacing an existing result moves it aside first
 * (`NAME.REPLACED-<time>.WORKING`, a name watchers skip) and deletes it after the new one is in place.
 *
 * What a watcher such as hurahura sees (inotify, one folder, not recursive): a folder renamed from
 * `NAME.WORKING` is "moved in"; a file renamed inside the folder is only "moved", which hurahura
 * ignores, so a zip is built outside the rule folder and renamed in, which the folder's watch reports
 * as "created". Should that rename cross filesystems (EXDEV), the result is copied into a hidden
 * `.publishing.WORKING-…` folder inside the rule folder and renamed from there: still "created" for a
 * watch on the rule folder alone (not recursive, as hurahura's is).
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface Owner {
  uid: number;
  gid: number;
}

export type PublishOutcome = 'published' | 'replaced' | 'already-published';

/** Whether a path exists (a dangling symlink counts: it is lstat'ed). */
export async function exists(target: string): Promise<boolean> {
  try {
    await fs.lstat(target);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

async function removeReplaced(final: string): Promise<void> {
  const dir = path.dirname(final);
  const prefix = replacedPrefix(final);
  for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
    if (entry.startsWith(prefix)) await fs.rm(path.join(dir, entry), { recursive: true, force: true });
  }
}

/**
 * Renames `working` to `final`. Idempotent: when `working` is gone and `final` exists (a crash
 * after the rename, before the ledger heard of it), the result is already published.
 */
export async function publish(working: string, final: string, owner?: Owner): Promise<PublishOutcome> {
  if (!(await exists(working))) {
    if (await exists(final)) {
      await removeReplaced(final);
      return 'already-published';
    }
    throw new Error(`Nothing to publish: ${path.basename(working)} is missing (the download must run again)`);
  }
  if (owner) await chownTree(working, owner);
  let outcome: PublishOutcome = 'published';
  if (await exists(final)) {
    await fs.rename(final, path.join(path.dirname(final), `${replacedPrefix(final)}${Date.now()}.WORKING`));
    outcome = 'replaced';
  }
  await moveInto(working, final);
  await removeReplaced(final);
  return outcome;
}

function replacedPrefix(final: string): string {
  return `${path.basename(final)}.REPLACED-`;
}

/** rename(2), or across filesystems a copy into the target's folder (hidden, `.WORKING`) and a rename from there. */
async function moveInto(source: string, final: string): Promise<void> {
  try {
    await fs.rename(source, final);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    const hidden = await fs.mkdtemp(path.join(path.dirname(final), '.publishing.WORKING-'));
    const copy = path.join(hidden, 'result.WORKING');
    try {
      await fs.cp(source, copy, { recursive: true, preserveTimestamps: true });
      await fs.rename(copy, final);
    } finally {
      await fs.rm(hidden, { recursive: true, force: true });
    }
    await fs.rm(source, { recursive: true, force: true });
  }
}

/**
 * How long until `final` may be replaced: a result published less than `quietMs` ago may be in a
 * watcher's hands (hurahura waits 60 s for it to settle, then moves it away), so it stays until it
 * has been left alone that long. 0 when there is nothing to replace or nothing to publish.
 */
export async function replaceableInMs(
  working: string,
  final: string,
  quietMs: number,
  now = Date.now(),
): Promise<number> {
  if (quietMs <= 0 || !(await exists(working))) return 0;
  let changed: number;
  try {
    // rename and chown set ctime, so it is the moment the result was published.
    changed = (await fs.lstat(final)).ctimeMs;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
  return Math.max(0, changed + quietMs - now);
}

/** Gives the whole tree to UID:GID (autorthanc runs as root and hands results to the site's user). */
export async function chownTree(root: string, owner: Owner): Promise<void> {
  await fs.lchown(root, owner.uid, owner.gid);
  const stat = await fs.lstat(root);
  if (!stat.isDirectory()) return;
  for (const entry of await fs.readdir(root)) await chownTree(path.join(root, entry), owner);
}

/** Total files and bytes under a folder (for the ledger's counts). */
export async function measureTree(root: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await fs.readdir(root, { withFileTypes: true })) {
    const full = path.join(root, entry.name);
    if (entry.isDirectory()) {
      const inner = await measureTree(full);
      files += inner.files;
      bytes += inner.bytes;
    } else if (entry.isFile()) {
      files += 1;
      bytes += (await fs.stat(full)).size;
    }
  }
  return { files, bytes };
}
