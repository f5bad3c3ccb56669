/**
 * A real PostgreSQL (Debian's server binaries) on a free loopback port, in a temporary cluster with
 * password (scram-sha-256) authentication. PostgreSQL refuses to run as root, so as root the cluster
 * belongs to, and the server runs as, the `postgres` OS user. The server is our direct child (spawned
 * with that uid, not through runuser), so signals and the exit cleanup reach the postmaster itself.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FatalWaitError, freePort, makeTempDir, onExit, spawnManaged, waitFor, type ManagedProcess } from './process';

export interface PostgresServer {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  /** libpq URI, e.g. for psql. */
  uri: string;
  dataDir: string;
  stop(): Promise<void>;
  logs(): string;
}

export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base)
    ? readdirSync(base)
        .filter((v) => existsSync(path.join(base, v, 'bin/initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error(
      `Required PostgreSQL server binaries are missing (no ${base}/<version>/bin/initdb; Debian package 'postgresql'). Install the system dependencies with: bash scripts/install-system-deps.sh`,
    );
  }
  return path.join(base, versions[0], 'bin');
}

function postgresUser(): { uid: number; gid: number } {
  try {
    return {
      uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
      gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
    };
  } catch {
    throw new Error(
      "Running as root, but there is no 'postgres' OS user to run PostgreSQL as (Debian package 'postgresql' creates it). Install the system dependencies with: bash scripts/install-system-deps.sh",
    );
  }
}

export async function startPostgres(options: { database?: string; username?: string } = {}): Promise<PostgresServer> {
  const bin = postgresBinDir();
  const database = options.database ?? 'orthanc';
  const username = options.username ?? 'orthanc';
  const password = 'orthanc-pg-test';
  const dir = makeTempDir('postgres-');
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const user = process.getuid?.() === 0 ? postgresUser() : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, password, { mode: 0o600 });
  if (user) chownSync(pwfile, user.uid, user.gid);
  const asUser = { uid: user?.uid, gid: user?.gid, env: { ...process.env, LC_ALL: 'C.UTF-8', PGPASSWORD: password } };

  try {
    // The superuser is the test user, so createdb below needs no second role.
    execFileSync(
      path.join(bin, 'initdb'),
      ['-D', dataDir, '-U', username, '--pwfile', pwfile, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale', 'C.UTF-8'],
      { ...asUser, stdio: 'pipe', cwd: dir },
    );
  } catch (error) {
    const e = error as { stderr?: Buffer; message: string };
    throw new Error(`initdb failed in ${dataDir}: ${e.stderr?.toString() || e.message}`, { cause: error });
  }
  const proc: ManagedProcess = spawnManaged(
    path.join(bin, 'postgres'),
    [
      '-D',
      dataDir,
      '-p',
      String(port),
      '-h',
      '127.0.0.1',
      '-k',
      dir,
      '-c',
      'fsync=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'synchronous_commit=off',
    ],
    { ...asUser, cwd: dir, name: 'postgres' },
  );
  // On exit, SIGQUIT makes the postmaster take its backends down with it (their own sessions are
  // outside our process group). SIGKILL alone would leave them running.
  const removeHook = onExit(() => {
    if (proc.running()) process.kill(proc.pid, 'SIGQUIT');
  });
  await waitFor(
    () => {
      if (!proc.running()) throw new FatalWaitError(`PostgreSQL exited during startup:\n${proc.output().slice(-3000)}`);
      return proc.output().includes('ready to accept connections');
    },
    {
      timeoutMs: 30_000,
      description: `PostgreSQL to start on port ${port}`,
      onTimeout: () => proc.output().slice(-3000),
    },
  );
  try {
    execFileSync(path.join(bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(port), '-U', username, database], {
      ...asUser,
      stdio: 'pipe',
      cwd: dir,
    });
  } catch (error) {
    await proc.stop('SIGQUIT');
    const e = error as { stderr?: Buffer; message: string };
    throw new Error(`createdb ${database} failed on port ${port}: ${e.stderr?.toString() || e.message}`, {
      cause: error,
    });
  }

  return {
    host: '127.0.0.1',
    port,
    database,
    username,
    password,
    uri: `postgresql://${username}:${password}@127.0.0.1:${port}/${database}`,
    dataDir,
    // SIGINT is PostgreSQL's "fast shutdown": backends are told to quit, then the postmaster exits.
    async stop() {
      await proc.stop('SIGINT', 20_000);
      removeHook();
    },
    logs: () => proc.output(),
  };
}
