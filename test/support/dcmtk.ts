/** Real DICOM peers from dcmtk: storescu (C-STORE), storescp (a receiving PACS), dcmdump. */
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort, makeTempDir, requireBinary, spawnManaged, waitFor, type ManagedProcess } from './process';

const run = promisify(execFile);

export async function storescu(files: string[], target: { host: string; port: number; calledAet: string; callingAet?: string }): Promise<void> {
  const binary = requireBinary('storescu', 'dcmtk');
  // Batches keep the command line short for large studies; one association per batch.
  for (let i = 0; i < files.length; i += 200) {
    const batch = files.slice(i, i + 200);
    try {
      await run(binary, ['-aec', target.calledAet, '-aet', target.callingAet ?? 'STORESCU', target.host, String(target.port), ...batch], { maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`storescu failed: ${e.stderr || e.message}`, { cause: error });
    }
  }
}

export interface Storescp {
  port: number;
  aet: string;
  dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Received files (named by SOP Instance UID via +uf). */
  receivedFiles(): string[];
}

export async function startStorescp(options: { aet?: string; port?: number } = {}): Promise<Storescp> {
  const binary = requireBinary('storescp', 'dcmtk');
  const port = options.port ?? (await freePort());
  const aet = options.aet ?? 'SINK';
  const dir = makeTempDir('storescp-');
  let proc: ManagedProcess | undefined;
  const server: Storescp = {
    port,
    aet,
    dir,
    async start() {
      if (proc?.running()) return;
      // +uf: files named <modality prefix>.<SOP Instance UID>; -aet: our AE title; +xa: accept all transfer syntaxes.
      proc = spawnManaged(binary, ['-aet', aet, '+xa', '-od', dir, '+uf', '--fork', String(port)], { name: 'storescp' });
      await waitFor(async () => {
        if (!proc!.running()) throw new Error(`storescp exited: ${proc!.output()}`);
        const echo = await run(requireBinary('echoscu', 'dcmtk'), ['-aec', aet, '127.0.0.1', String(port)]).then(() => true, () => false);
        return echo;
      }, { timeoutMs: 15_000, intervalMs: 100, description: 'storescp to accept associations' });
    },
    async stop() {
      await proc?.stop('SIGTERM', 5_000);
    },
    receivedFiles: () => readdirSync(dir).filter((f) => !f.startsWith('.')).map((f) => path.join(dir, f)),
  };
  await server.start();
  return server;
}

export async function dcmdump(file: string): Promise<string> {
  const { stdout } = await run(requireBinary('dcmdump', 'dcmtk'), ['+U8', file], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}
