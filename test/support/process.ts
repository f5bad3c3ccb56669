/**
 * Child processes and temporary folders for tests: every process is killed and every folder removed
 * when the test process exits, also when a test fails, throws or is interrupted (SIGINT/SIGTERM).
 *
 * Each child runs in its own process group (detached), so that stopping it also reaches what it
 * forked (storescp --fork workers, PostgreSQL backends, a stack's own children), and so that a
 * Ctrl-C in the terminal reaches the test process first, which then cleans up in order.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export interface ManagedProcess {
  child: ChildProcess;
  pid: number;
  /** Everything the process wrote to stdout and stderr (the last ~2 MB). */
  output(): string;
  running(): boolean;
  /** Sends `signal` to the process; after `timeoutMs` kills its whole group. Resolves once it exited. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  /** Resolves with the exit code (null when killed by a signal or when spawning failed). */
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Prefix for TEST_VERBOSE output and error messages; defaults to the command's base name. */
  name?: string;
  /** Also append the output to this file (useful to keep logs of a failed CI run). */
  logFile?: string;
  /** Run as this user/group (needs root), e.g. PostgreSQL, which refuses to run as root. */
  uid?: number;
  gid?: number;
}

const live = new Set<ChildProcess>();
const folders = new Set<string>();
const exitHooks = new Set<() => void>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // group already gone; fall back to the process itself
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Synchronous last-resort cleanup: runs on process exit, so nothing here may be async. */
export function cleanupAll(): void {
  for (const hook of exitHooks) {
    try {
      hook();
    } catch {
      // best effort: the other hooks and kills must still run
    }
  }
  exitHooks.clear();
  for (const child of live) killGroup(child, 'SIGKILL');
  live.clear();
  for (const dir of folders) rmSync(dir, { recursive: true, force: true });
  folders.clear();
}

/** A synchronous action for process exit (e.g. telling a server to shut down its own children). */
export function onExit(hook: () => void): () => void {
  exitHooks.add(hook);
  return () => exitHooks.delete(hook);
}

process.once('exit', cleanupAll);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(signal, () => {
    process.stderr.write(`\ntest support: ${signal} received, stopping ${live.size} child process(es)\n`);
    cleanupAll();
    process.exit(130);
  });
}

const MAX_LOG = 2_000_000;

export function spawnManaged(command: string, args: string[], options: SpawnOptions = {}): ManagedProcess {
  const name = options.name ?? path.basename(command);
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    uid: options.uid,
    gid: options.gid,
  });
  let log = '';
  const append = (chunk: Buffer) => {
    const text = chunk.toString('utf8');
    log += text;
    if (log.length > MAX_LOG) log = log.slice(-MAX_LOG / 2);
    if (options.logFile) appendFileSync(options.logFile, text);
    if (process.env.TEST_VERBOSE) process.stderr.write(`[${name}] ${text}`);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  live.add(child);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => {
      live.delete(child);
      // Whatever it forked and left behind goes too (same process group).
      killGroup(child, 'SIGKILL');
      // A grandchild may still hold the pipes; they must not keep the test process alive.
      child.stdout?.destroy();
      child.stderr?.destroy();
      resolve(code);
    });
    child.once('error', (error) => {
      log += `\nspawn error (${name}): ${error.message}`;
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
      const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A fresh folder under the OS temp dir, removed when the test process exits (or earlier via `removeTempDir`). */
export function makeTempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  folders.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  folders.delete(dir);
}

/** A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it, so parallel test files do not collide). */
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

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, host, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** What is awaited, for the timeout message ("Orthanc to answer /system"). */
  description: string;
  /** Extra context for the timeout message, e.g. the tail of a server log. */
  onTimeout?: () => string;
}

/**
 * Polls `predicate` until it returns true. Errors thrown by the predicate count as "not yet" and the
 * last one is quoted in the timeout error, unless it is a `FatalWaitError`, which ends the wait at once.
 */
export async function waitFor(predicate: () => boolean | Promise<boolean>, options: WaitOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      if (await predicate()) return;
    } catch (error) {
      if (error instanceof FatalWaitError) throw error;
      lastError = error;
    }
    if (Date.now() >= deadline) break;
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
  const extra = options.onTimeout ? `\n${options.onTimeout()}` : '';
  const cause = lastError ? ` (last error: ${(lastError as Error).message})` : '';
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${options.description}${cause}${extra}`);
}

/** Thrown from a `waitFor` predicate when waiting longer cannot help (e.g. the server process died). */
export class FatalWaitError extends Error {
  override name = 'FatalWaitError';
}

/**
 * The absolute path of a binary the tests need. Missing is always a loud failure, never a skip:
 * the message names the Debian package and the script that installs it.
 */
export function requireBinary(binary: string, debianPackage: string): string {
  const found = binary.includes('/')
    ? { status: spawnSync('test', ['-x', binary]).status, stdout: binary }
    : spawnSync('sh', ['-c', 'command -v "$1"', 'sh', binary], { encoding: 'utf8' });
  const resolved = String(found.stdout ?? '').trim();
  if (found.status !== 0 || resolved === '') {
    const where = process.env.CI ? ' CI must install it: .ci/run runs that script before the tests.' : '';
    throw new Error(
      `Required binary '${binary}' is not installed (Debian package '${debianPackage}'). Install the system dependencies with: bash scripts/install-system-deps.sh (as root, or it prints the apt-get command).${where}`,
    );
  }
  return resolved;
}
