/**
 * Atomic publication. Work happens under `NAME.WORKING`; `NAME` appears only by rename(2), which is
 * atomic within a filesystem, so a watcher sees either nothing, the previous complete result or the
 * new complete result, never a partial one. Replacing an existing result moves it aside first
 * (`NAME.REPLACED-<time>`) and deletes it after the new one is in place.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';

export interface Owner {
  uid: number;
  gid: number;
}

export type PublishOutcome = 'published' | 'replaced' | 'already-published';

async function exists(target: string): Promise<boolean> {
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
  const prefix = `${path.basename(final)}.REPLACED-`;
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
    await fs.rename(final, `${final}.REPLACED-${Date.now()}`);
    outcome = 'replaced';
  }
  await fs.rename(working, final);
  await removeReplaced(final);
  return outcome;
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
