/**
 * A real PostgreSQL (Debian's server binaries) on a free loopback port, in a temporary cluster.
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` user.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freePort, makeTempDir, spawnManaged, waitFor, type ManagedProcess } from './process';

export interface PostgresServer {
  host: string;
  port: number;
  database: string;
  username: string;
  password: string;
  stop(): Promise<void>;
}

function binDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(path.join(base, v, 'bin/initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error("PostgreSQL server binaries are missing (Debian package 'postgresql'). Run: bash scripts/install-system-deps.sh");
  return path.join(base, versions[0], 'bin');
}

export async function startPostgres(): Promise<PostgresServer> {
  const bin = binDir();
  const dir = makeTempDir('postgres-');
  const data = path.join(dir, 'data');
  const port = await freePort();
  const asRoot = process.getuid?.() === 0;
  const run = (binary: string, args: string[]) => (asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(bin, binary), ...args]] : [path.join(bin, binary), args]) as [string, string[]];
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const password = 'orthanc-pg-test';
  const pwfile = path.join(dir, 'pw');
  writeFileSync(pwfile, password);
  if (asRoot) execFileSync('chown', ['postgres', pwfile]);
  const [initCmd, initArgs] = run('initdb', ['-D', data, '-U', 'orthanc', '--pwfile', pwfile, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale', 'C.UTF-8']);
  execFileSync(initCmd, initArgs, { stdio: 'pipe' });
  const [cmd, args] = run('postgres', ['-D', data, '-p', String(port), '-h', '127.0.0.1', '-k', dir, '-c', 'fsync=off']);
  const proc: ManagedProcess = spawnManaged(cmd, args, { name: 'postgres' });
  await waitFor(() => proc.output().includes('ready to accept connections'), { timeoutMs: 30_000, description: 'PostgreSQL to start', onTimeout: () => proc.output() });
  const [createCmd, createArgs] = run('createdb', ['-h', '127.0.0.1', '-p', String(port), '-U', 'orthanc', 'orthanc']);
  execFileSync(createCmd, createArgs, { env: { ...process.env, PGPASSWORD: password }, stdio: 'pipe' });
  async function stop(): Promise<void> {
    // runuser does not pass signals on to postgres: stop the postmaster itself (fast shutdown).
    const pidFile = path.join(data, 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        // already gone
      }
    }
    await proc.stop('SIGINT');
  }
  return { host: '127.0.0.1', port, database: 'orthanc', username: 'orthanc', password, stop };
}
