import { promises as fs } from 'node:fs';
import path from 'node:path';

/**
 * The full path of every regular file below `root`, in readdir's order (callers sort as they need).
 * Node before 20.12 names an entry's folder `path`, not `parentPath`, and package.json allows any 20.
 */
export async function filesUnder(root: string): Promise<string[]> {
  const entries = await fs.readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

/** All `chunks`, in order (writev may write part of them: the rest follows). */
export async function writeAll(handle: fs.FileHandle, chunks: Buffer[]): Promise<void> {
  let pending = chunks.filter((c) => c.length > 0);
  while (pending.length > 0) {
    let { bytesWritten } = await handle.writev(pending);
    while (pending.length > 0 && bytesWritten >= pending[0].length) {
      bytesWritten -= pending[0].length;
      pending = pending.slice(1);
    }
    if (bytesWritten > 0) pending = [pending[0].subarray(bytesWritten), ...pending.slice(1)];
  }
}
