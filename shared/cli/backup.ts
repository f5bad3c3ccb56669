/**
 * `autorthanc backup FILE`: the automation state (automationState.ts) into one .tar.gz, written
 * privately (mode 600, since it holds .env's secrets) and renamed into place only when complete.
 * Progress goes to stderr per table and container; `--json` prints only the manifest.
 */
import { createWriteStream, existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { create as createTar } from 'tar';
import { secretProblem } from '../config';
import {
  BACKUP_FORMAT,
  BACKUP_FORMAT_VERSION,
  openAppStorage,
  storageError,
  toStoredEntity,
  type Manifest,
} from './automationState';
import { EnvFile } from './envFile';
import { CliError, EXIT, printJson, type ExitCode, type Io } from './io';
import { SETUP_SECRETS } from './setup';

export interface StateLocation {
  rulesDir: string;
  envFile: string;
  /** false: leave .env out (--no-env). */
  includeEnv: boolean;
  storageConnection: string;
}

export interface BackupOptions extends StateLocation {
  file: string;
  json: boolean;
}

/** Every regular file below `dir`, as relative paths with forward slashes (symbolic links are not followed). */
export function listFiles(dir: string, prefix = ''): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory()) files.push(...listFiles(dir, relative));
    else if (entry.isFile()) files.push(relative);
  }
  return files.sort();
}

/**
 * Removes the private working folder, retrying while a failed unpack may still be writing into it;
 * a folder that stays is named (it may hold secrets) rather than hiding the command's own error.
 */
export async function removeWork(work: string, io: Io): Promise<void> {
  try {
    await rm(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  } catch (error) {
    io.err(
      `autorthanc: could not remove the temporary folder ${work} (${(error as NodeJS.ErrnoException).code}); delete it`,
    );
  }
}

export function appVersion(): string {
  for (let dir = __dirname; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '0.0.0';
  }
  return '0.0.0';
}

export async function runBackup(options: BackupOptions, io: Io): Promise<ExitCode> {
  const progress = (line: string) => {
    if (!options.json) io.err(line);
  };
  const target = path.resolve(options.file);
  if (!existsSync(path.dirname(target)))
    throw new CliError(`backup: the folder ${path.dirname(target)} does not exist`);
  if (!existsSync(options.rulesDir) || !lstatSync(options.rulesDir).isDirectory())
    throw new CliError(
      `backup: the rules folder ${options.rulesDir} does not exist (--rules, or ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH in ${options.envFile})`,
    );
  const storage = openAppStorage(options.storageConnection);
  // Private from the start: the tables hold job records, and .env holds every secret.
  const work = await mkdtemp(path.join(tmpdir(), 'autorthanc-backup-'));
  const problems: string[] = [];
  try {
    const ruleFiles = listFiles(options.rulesDir);
    await mkdir(path.join(work, 'rules'));
    for (const file of ruleFiles) {
      await mkdir(path.dirname(path.join(work, 'rules', file)), { recursive: true });
      await copyFile(path.join(options.rulesDir, file), path.join(work, 'rules', file));
    }
    progress(`rules: ${ruleFiles.length} file(s) from ${options.rulesDir}`);

    let env: Manifest['env'] = { included: false, variables: 0, secrets: [] };
    if (options.includeEnv) {
      if (existsSync(options.envFile)) {
        const text = readFileSync(options.envFile, 'utf8');
        const values = EnvFile.parse(text).values();
        await mkdir(path.join(work, 'env'));
        await writeFile(path.join(work, 'env', '.env'), text, { mode: 0o600 });
        const secrets = SETUP_SECRETS.map((s) => s.name).filter((n) => values[n] && !secretProblem(values[n]));
        env = { included: true, variables: Object.keys(values).length, secrets };
        progress(
          `env: ${options.envFile} (${env.variables} variables). WARNING: the backup now holds its secrets (${secrets.join(', ') || 'none set'}); keep it as private as .env.`,
        );
      } else {
        problems.push(`${options.envFile} does not exist: the backup holds no keys or secrets (--env-path)`);
        progress(`env: ${options.envFile} not found; no keys in this backup`);
      }
    }

    const tables: Manifest['tables'] = [];
    const containers: Manifest['containers'] = [];
    try {
      await mkdir(path.join(work, 'tables'));
      for (const name of await storage.tables()) {
        const out = createWriteStream(path.join(work, 'tables', `${name}.jsonl`), { mode: 0o600 });
        let rows = 0;
        for await (const entity of storage.table(name).listEntities({ disableTypeConversion: true })) {
          if (!out.write(`${JSON.stringify(toStoredEntity(entity))}\n`))
            await new Promise<void>((r) => out.once('drain', () => r()));
          rows++;
          if (rows % 1000 === 0) progress(`table ${name}: ${rows} rows…`);
        }
        await new Promise<void>((resolve, reject) =>
          out.end((error?: Error | null) => (error ? reject(error) : resolve())),
        );
        tables.push({ name, rows });
        progress(`table ${name}: ${rows} rows`);
      }
      for (const name of await storage.containers()) {
        const container = storage.blobs.getContainerClient(name);
        const blobs: Manifest['containers'][number]['blobs'] = [];
        for await (const blob of container.listBlobsFlat()) {
          const local = path.join(work, 'blobs', name, ...blob.name.split('/'));
          if (!local.startsWith(path.join(work, 'blobs', name) + path.sep))
            throw new CliError(`backup: blob name '${blob.name}' in ${name} cannot be stored as a file`);
          await mkdir(path.dirname(local), { recursive: true });
          await container.getBlobClient(blob.name).downloadToFile(local);
          blobs.push({
            name: blob.name,
            contentType: blob.properties.contentType,
            bytes: blob.properties.contentLength ?? 0,
          });
        }
        containers.push({ name, blobs });
        progress(`container ${name}: ${blobs.length} blob(s)`);
      }
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw storageError(storage, error);
    }

    const manifest: Manifest = {
      format: BACKUP_FORMAT,
      formatVersion: BACKUP_FORMAT_VERSION,
      appVersion: appVersion(),
      createdAt: new Date().toISOString(),
      rules: { files: ruleFiles, masterJson: ruleFiles.includes('master.json') },
      env,
      tables,
      containers,
    };
    await writeFile(path.join(work, 'manifest.json'), JSON.stringify(manifest, null, 2));

    const partial = `${target}.partial-${process.pid}`;
    const entries = [
      'manifest.json',
      'rules',
      'tables',
      ...(env.included ? ['env'] : []),
      ...(containers.length ? ['blobs'] : []),
    ];
    if (!existsSync(path.join(work, 'blobs')) && entries.includes('blobs')) await mkdir(path.join(work, 'blobs'));
    try {
      await pipeline(
        createTar({ gzip: true, cwd: work, portable: true }, entries),
        createWriteStream(partial, { mode: 0o600 }),
      );
      await rename(partial, target);
    } catch (error) {
      await rm(partial, { force: true });
      throw new CliError(
        `backup: cannot write ${target} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
    progress(`backup written to ${target} (mode 600)`);
    if (options.json) printJson(io, { file: target, manifest, problems });
    else {
      io.out(
        `Backed up ${ruleFiles.length} rule file(s), ${tables.map((t) => `${t.name} ${t.rows} rows`).join(', ') || 'no tables'}, ` +
          `${containers.reduce((n, c) => n + c.blobs.length, 0)} blob(s)${env.included ? ' and .env' : ''} to ${target}`,
      );
      for (const problem of problems) io.out(`Problem: ${problem}`);
    }
    return problems.length === 0 ? EXIT.ok : EXIT.problems;
  } finally {
    await removeWork(work, io);
  }
}
