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
