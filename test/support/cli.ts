/** Runs the built `autorthanc` CLI (or any command) as a child process and keeps what it printed. */
import { spawn, type SpawnOptions } from 'node:child_process';
import path from 'node:path';

export const CLI_BIN = path.resolve(__dirname, '../../dist/shared/cli/bin.js');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCommand(command: string, argv: string[], options: SpawnOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `autorthanc ARGS…` with this Node. */
export const runCli = (args: string[], options: SpawnOptions = {}): Promise<Run> =>
  runCommand(process.execPath, [CLI_BIN, ...args], options);
