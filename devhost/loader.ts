/**
 * Loads the app the way the Node worker does (wkr src/startApp.ts, src/loadScriptFile.ts): the
 * `main` of the app's package.json is a glob; matching files load one after the other, each awaited,
 * in the glob's own order (fast-glob, which the worker's globby wraps: shallow files first, so
 * `dist/src/{index.js,functions/*.js}` loads index.js, and its `app.setup()`, first). `.mjs` and
 * `"type": "module"` files are imported, `.cjs` and other files required.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import fg from 'fast-glob';

export interface AppPackage {
  main?: string;
  type?: string;
}

export function readAppPackage(appDir: string): AppPackage {
  const file = path.join(appDir, 'package.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as AppPackage;
  } catch (error) {
    throw new Error(`Cannot read the app's ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** How many times this process loaded an app: ESM files get a fresh URL each time, CJS a fresh cache. */
let generation = 0;

/**
 * Forgets the app's own CommonJS files and the `@azure/functions` library it resolves, so a second
 * in-process host registers afresh (the library remembers that its programming model was set and that
 * setup is locked). ESM caches cannot be cleared; see the file-URL query below.
 */
function forgetApp(appDir: string): void {
  const root = `${path.resolve(appDir)}${path.sep}`;
  let library: string | undefined;
  try {
    library = path.dirname(require.resolve('@azure/functions/package.json', { paths: [appDir] }));
  } catch {
    library = undefined;
  }
  for (const key of Object.keys(require.cache)) {
    const ownFile = key.startsWith(root) && !key.slice(root.length).split(path.sep).includes('node_modules');
    if (ownFile || (library && key.startsWith(`${library}${path.sep}`))) delete require.cache[key];
  }
}

export async function loadApp(appDir: string, log: (line: string) => void): Promise<string[]> {
  const pkg = readAppPackage(appDir);
  if (!pkg.main)
    throw new Error(
      `${path.join(appDir, 'package.json')} has no "main" (a glob of the function files, e.g. "dist/src/functions/*.js")`,
    );
  const files = await fg(pkg.main, { cwd: appDir, absolute: true });
  if (files.length === 0)
    throw new Error(`Found zero files matching the supplied pattern "${pkg.main}" in ${appDir} (not built yet?)`);
  if (generation > 0) forgetApp(appDir);
  generation += 1;
  for (const file of files) {
    const esm = file.endsWith('.mjs') || (pkg.type === 'module' && !file.endsWith('.cjs'));
    log(`Loading entry point file "${path.relative(appDir, file)}"`);
    try {
      if (esm) {
        const url = pathToFileURL(file);
        if (generation > 1) url.searchParams.set('devhost', String(generation));
        await import(url.href);
      } else {
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS app files load through require, as in the worker
        require(file);
      }
    } catch (error) {
      // On Node 20+ the worker treats a load error as fatal for the app; say which file.
      throw new Error(
        `Worker was unable to load entry point "${path.relative(appDir, file)}": ${(error as Error).stack ?? String(error)}`,
        { cause: error },
      );
    }
  }
  return files;
}
