/**
 * Child processes and temporary folders for tests: every process is killed and every folder removed
 * when the test process exits, also when a test fails or is interrupted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ManagedProcess {
  child: ChildProcess;
  pid: number;
  output(): string;
  running(): boolean;
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
const folders = new Set<string>();

function cleanup(): void {
  for (const child of live) child.kill('SIGKILL');
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
}
process.once('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    cleanup();
    process.exit(130);
  });
}

const MAX_LOG = 2_000_000;

export function spawnManaged(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; name?: string } = {}): ManagedProcess {
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const append = (chunk: Buffer) => {
    log += chunk.toString('utf8');
    if (log.length > MAX_LOG) log = log.slice(-MAX_LOG / 2);
    if (process.env.TEST_VERBOSE) process.stderr.write(`[${options.name ?? path.basename(command)}] ${chunk.toString('utf8')}`);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      // A grandchild may still hold the pipes; they must not keep the test process alive.
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve(code);
    });
    child.once('error', (error) => {
      log += `\nspawn error: ${error.message}`;
      live.delete(child);
      resolve(null);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    output: () => log,
    running: () => child.exitCode === null && child.signalCode === null && live.has(child),
    exited,
    async stop(signal = 'SIGTERM', timeoutMs = 15_000) {
      if (!live.has(child)) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  folders.add(dir);
  return dir;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor(predicate: () => boolean | Promise<boolean>, options: { timeoutMs?: number; intervalMs?: number; description: string; onTimeout?: () => string }): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await predicate()) return;
    } catch (error) {
      lastError = error;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
  const extra = options.onTimeout ? `\n${options.onTimeout()}` : '';
  const cause = lastError ? ` (last error: ${(lastError as Error).message})` : '';
  throw new Error(`Timed out after ${options.timeoutMs ?? 30_000} ms waiting for ${options.description}${cause}${extra}`);
}

/** A binary the tests need. Missing is always a loud failure: CI must never pass by skipping. */
export function requireBinary(binary: string, debianPackage: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' });
  const resolved = found.stdout.trim();
  if (found.status !== 0 || resolved === '') {
    throw new Error(`'${binary}' is not installed (Debian package '${debianPackage}'). Run: bash scripts/install-system-deps.sh${process.env.CI ? ' (CI must install it in .ci/run)' : ''}`);
  }
  return resolved;
}
