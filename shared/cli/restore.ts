/**
 * `autorthanc restore FILE`: puts back what `backup` saved. Everything is checked before anything is
 * written: the archive unpacks (into a private temporary folder; tar refuses absolute and `..` paths),
 * the manifest is ours and of a known version, its counts match the contents; then what is in the way
 * (a ledger that already holds jobs, rule files or a .env that differ from the backup's) is refused
 * unless `--force`. Rows are upserted with their properties and types, in transactions per partition;
 * rows and files not in the backup are kept.
 */
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, rename } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { TableClient, TransactionAction } from '@azure/data-tables';
import { extract } from 'tar';
import {
  BACKUP_FORMAT_VERSION,
  fromStoredEntity,
  LEDGER_JOB_PARTITION,
  LEDGER_TABLE,
  manifestSchema,
  openAppStorage,
  STORAGE_NAME,
  storageError,
  storedEntitySchema,
  type Manifest,
  type StoredEntity,
} from './automationState';
import { isStatus } from '../storage/table';
import { listFiles, removeWork, type StateLocation } from './backup';
import { CliError, EXIT, printJson, type ExitCode, type Io } from './io';

export interface RestoreOptions extends StateLocation {
  file: string;
  force: boolean;
  json: boolean;
}

/** Azure's limits on one transaction: 100 operations, 4 MiB of body (kept well under). */
const BATCH_ROWS = 100;
const BATCH_CHARS = 2_000_000;

async function readManifest(work: string): Promise<Manifest> {
  const file = path.join(work, 'manifest.json');
  if (!existsSync(file)) throw new CliError('restore: the file has no manifest.json: it is not an autorthanc backup');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    throw new CliError('restore: manifest.json is not JSON');
  }
  const format = (raw as { format?: unknown })?.format;
  const version = (raw as { formatVersion?: unknown })?.formatVersion;
  if (typeof version === 'number' && version > BACKUP_FORMAT_VERSION)
    throw new CliError(
      `restore: the backup is format version ${version}; this autorthanc reads up to ${BACKUP_FORMAT_VERSION} (update it first)`,
    );
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success)
    throw new CliError(
      `restore: manifest.json is not a valid autorthanc backup manifest (${typeof format === 'string' ? `format '${format}': ` : ''}${parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ')})`,
    );
  return parsed.data;
}

async function* storedRows(file: string): AsyncGenerator<StoredEntity> {
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (line === '') continue;
    const parsed = storedEntitySchema.safeParse(JSON.parse(line));
    if (!parsed.success) throw new CliError(`restore: ${path.basename(file)} line ${n} is not a stored row`);
    yield parsed.data;
  }
}

/** Checks that the contents are what the manifest says, before anything is written. */
async function verifyContents(work: string, manifest: Manifest): Promise<void> {
  const problems: string[] = [];
  for (const table of manifest.tables) {
    if (!STORAGE_NAME.test(table.name)) {
      problems.push(`table name '${table.name}' is not a table name`);
      continue;
    }
    const file = path.join(work, 'tables', `${table.name}.jsonl`);
    if (!existsSync(file)) {
      problems.push(`tables/${table.name}.jsonl is missing`);
      continue;
    }
    let rows = 0;
    for await (const row of storedRows(file)) {
      void row;
      rows++;
    }
    if (rows !== table.rows) problems.push(`table ${table.name}: ${rows} rows, the manifest says ${table.rows}`);
  }
  const rules = existsSync(path.join(work, 'rules')) ? listFiles(path.join(work, 'rules')) : [];
  if (rules.join('\n') !== [...manifest.rules.files].sort().join('\n'))
    problems.push(`rules: ${rules.length} file(s), the manifest lists ${manifest.rules.files.length}`);
  if (manifest.env.included && !existsSync(path.join(work, 'env', '.env'))) problems.push('env/.env is missing');
  for (const file of manifest.rules.files)
    if (!safeRelative(file)) problems.push(`rule file name '${file}' leaves the rules folder`);
  for (const container of manifest.containers) {
    if (!STORAGE_NAME.test(container.name)) problems.push(`container name '${container.name}' is not a container name`);
    for (const blob of container.blobs.filter((b) => !safeRelative(b.name)))
      problems.push(`blob name '${blob.name}' cannot be a file of the backup`);
    for (const blob of container.blobs.filter((b) => safeRelative(b.name)))
      if (!existsSync(path.join(work, 'blobs', container.name, ...blob.name.split('/'))))
        problems.push(`blob ${container.name}/${blob.name} is missing`);
  }
  if (problems.length > 0)
    throw new CliError(
      `restore: the backup does not match its manifest (damaged?):\n  ${problems.slice(0, 10).join('\n  ')}`,
    );
}

/** A relative path that stays below its folder: no empty, `.` or `..` segment, no backslash. */
const safeRelative = (name: string) =>
  name !== '' && !name.includes('\\') && name.split('/').every((part) => part !== '' && part !== '.' && part !== '..');

const sameFile = (a: string, b: string) => existsSync(b) && readFileSync(a).equals(readFileSync(b));

async function ledgerHoldsJobs(table: TableClient): Promise<boolean> {
  try {
    const page = await table
      .listEntities({ queryOptions: { filter: `PartitionKey eq '${LEDGER_JOB_PARTITION}'`, select: ['RowKey'] } })
      .byPage({ maxPageSize: 1 })
      .next();
    return !page.done && page.value.length > 0;
  } catch (error) {
    if ((error as { statusCode?: number }).statusCode === 404) return false;
    throw error;
  }
}

async function upsertAll(
  table: TableClient,
  rows: AsyncIterable<StoredEntity>,
  onRows: (n: number) => void,
): Promise<number> {
  let batch: TransactionAction[] = [];
  let partition: string | undefined;
  let chars = 0;
  let written = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    await table.submitTransaction(batch);
    written += batch.length;
    onRows(written);
    batch = [];
    chars = 0;
  };
  for await (const row of rows) {
    const size = JSON.stringify(row).length;
    if (row.partitionKey !== partition || batch.length >= BATCH_ROWS || chars + size > BATCH_CHARS) await flush();
    partition = row.partitionKey;
    batch.push(['upsert', fromStoredEntity(row), 'Replace']);
    chars += size;
  }
  await flush();
  return written;
}

export async function runRestore(options: RestoreOptions, io: Io): Promise<ExitCode> {
  const progress = (line: string) => {
    if (!options.json) io.err(line);
  };
  const source = path.resolve(options.file);
  if (!existsSync(source)) throw new CliError(`restore: ${source} does not exist`);
  const work = await mkdtemp(path.join(tmpdir(), 'autorthanc-restore-'));
  try {
    try {
      await extract({ file: source, cwd: work, strict: true });
    } catch (error) {
      throw new CliError(`restore: ${source} is not a readable .tar.gz (${(error as Error).message.split('\n')[0]})`);
    }
    const manifest = await readManifest(work);
    await verifyContents(work, manifest);
    progress(
      `backup of ${manifest.createdAt} (autorthanc-functions ${manifest.appVersion}): ${manifest.rules.files.length} rule file(s), ` +
        `${manifest.tables.map((t) => `${t.name} ${t.rows} rows`).join(', ') || 'no tables'}${manifest.env.included ? ', .env' : ''}`,
    );

    // --- what is in the way -----------------------------------------------------------------------
    const storage = openAppStorage(options.storageConnection);
    const conflicts: string[] = [];
    try {
      if (
        manifest.tables.some((t) => t.name === LEDGER_TABLE && t.rows > 0) &&
        (await ledgerHoldsJobs(storage.table(LEDGER_TABLE)))
      )
        conflicts.push(`the job ledger (${LEDGER_TABLE}) already holds jobs`);
    } catch (error) {
      throw storageError(storage, error);
    }
    for (const file of manifest.rules.files) {
      const target = path.join(options.rulesDir, ...file.split('/'));
      if (existsSync(target) && !sameFile(path.join(work, 'rules', file), target))
        conflicts.push(`rule file ${file} differs from the one in ${options.rulesDir}`);
    }
    const restoreEnv = manifest.env.included && options.includeEnv;
    const envDiffers =
      restoreEnv && existsSync(options.envFile) && !sameFile(path.join(work, 'env', '.env'), options.envFile);
    if (envDiffers) conflicts.push(`${options.envFile} differs from the backup's .env`);
    if (conflicts.length > 0 && !options.force) {
      const message = `restore refused, nothing was written: ${conflicts.join('; ')}. Restore over them with --force (rows and files not in the backup are kept${envDiffers ? '; the current .env is saved beside it' : ''}).`;
      if (options.json) printJson(io, { restored: false, conflicts, error: message });
      io.err(`autorthanc: ${message}`);
      return EXIT.problems;
    }

    // --- tables and blobs -------------------------------------------------------------------------
    const restored: Record<string, number> = {};
    try {
      for (const table of manifest.tables) {
        const client = storage.table(table.name);
        await client.createTable().catch((error: unknown) => {
          if (!isStatus(error, 409)) throw error;
        });
        restored[table.name] = await upsertAll(
          client,
          storedRows(path.join(work, 'tables', `${table.name}.jsonl`)),
          (n) => {
            if (n % 1000 < BATCH_ROWS && n < table.rows) progress(`table ${table.name}: ${n}/${table.rows} rows…`);
          },
        );
        progress(`table ${table.name}: ${restored[table.name]} rows restored`);
      }
      for (const container of manifest.containers) {
        const client = storage.blobs.getContainerClient(container.name);
        await client.createIfNotExists();
        for (const blob of container.blobs)
          await client
            .getBlockBlobClient(blob.name)
            .uploadFile(path.join(work, 'blobs', container.name, ...blob.name.split('/')), {
              blobHTTPHeaders: blob.contentType ? { blobContentType: blob.contentType } : undefined,
            });
        progress(`container ${container.name}: ${container.blobs.length} blob(s) restored`);
      }
    } catch (error) {
      if (error instanceof CliError) throw error;
      throw storageError(storage, error);
    }

    // --- rules and .env ---------------------------------------------------------------------------
    let rulesWritten = 0;
    for (const file of manifest.rules.files) {
      const from = path.join(work, 'rules', file);
      const target = path.join(options.rulesDir, ...file.split('/'));
      if (sameFile(from, target)) continue;
      await mkdir(path.dirname(target), { recursive: true });
      // Copied beside and renamed: the rules loader never reads half a file.
      await copyFile(from, `${target}.restore-tmp`);
      await rename(`${target}.restore-tmp`, target);
      rulesWritten++;
    }
    progress(`rules: ${rulesWritten} file(s) written to ${options.rulesDir}`);
    let envRestored = false;
    let envSavedAs: string | undefined;
    if (restoreEnv && !sameFile(path.join(work, 'env', '.env'), options.envFile)) {
      if (existsSync(options.envFile)) {
        envSavedAs = `${options.envFile}.before-restore-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        await copyFile(options.envFile, envSavedAs);
        await chmod(envSavedAs, 0o600);
      }
      await copyFile(path.join(work, 'env', '.env'), `${options.envFile}.restore-tmp`);
      await chmod(`${options.envFile}.restore-tmp`, 0o600);
      await rename(`${options.envFile}.restore-tmp`, options.envFile);
      envRestored = true;
      progress(`env: ${options.envFile} restored (mode 600)${envSavedAs ? `; the one before is ${envSavedAs}` : ''}`);
    }

    const summary = {
      restored: true,
      tables: restored,
      rulesWritten,
      envRestored,
      envSavedAs,
      conflictsOverwritten: conflicts,
    };
    if (options.json) printJson(io, summary);
    else
      io.out(
        `Restored ${
          Object.entries(restored)
            .map(([n, r]) => `${n} ${r} rows`)
            .join(', ') || 'no tables'
        }, ${rulesWritten} rule file(s)${envRestored ? ' and .env' : ''} from ${source}`,
      );
    return EXIT.ok;
  } finally {
    await removeWork(work, io);
  }
}
