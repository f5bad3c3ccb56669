/**
 * Real DICOM peers from dcmtk: storescu (C-STORE sender), storescp (a receiving PACS), findscu
 * (C-FIND), getscu (C-GET), echoscu (C-ECHO) and dcmdump. Failures quote dcmtk's own stderr.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import {
  FatalWaitError,
  freePort,
  makeTempDir,
  requireBinary,
  spawnManaged,
  waitFor,
  type ManagedProcess,
} from './process';

const run = promisify(execFile);

export interface DicomPeer {
  host: string;
  port: number;
  calledAet: string;
  callingAet?: string;
}

function dcmtkError(tool: string, args: string[], error: unknown): Error {
  const e = error as { stderr?: string | Buffer; stdout?: string | Buffer; code?: number | string; message: string };
  // A Buffer when the tool ran with encoding 'buffer' (findscu).
  const detail = String(e.stderr || e.stdout || e.message).trim();
  return new Error(
    `${tool} ${args.filter((a) => !a.endsWith('.dcm')).join(' ')} failed (exit ${String(e.code)}): ${detail}`,
    { cause: error },
  );
}

/**
 * Sends files (or folders, recursively) to a DICOM node with C-STORE. One association per batch of
 * 200 files keeps the command line short for large studies. Rejects on any failed store.
 */
export async function storescu(files: string[], target: DicomPeer): Promise<void> {
  const binary = requireBinary('storescu', 'dcmtk');
  if (files.length === 0) throw new Error('storescu: no files to send');
  const common = ['-aec', target.calledAet, '-aet', target.callingAet ?? 'STORESCU'];
  const dirs = files.filter((f) => statSync(f).isDirectory());
  const plain = files.filter((f) => !dirs.includes(f));
  const batches: string[][] = [];
  for (let i = 0; i < plain.length; i += 200) batches.push(plain.slice(i, i + 200));
  // +sd scans folders, +r recursively; -nh: no error for non-DICOM files is NOT wanted, so not used.
  for (const dir of dirs) batches.push(['+sd', '+r', dir]);
  for (const batch of batches) {
    const args = [...common, target.host, String(target.port), ...batch];
    try {
      await run(binary, args, { maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      throw dcmtkError('storescu', args, error);
    }
  }
}

/** C-ECHO; resolves true when the peer answers. */
export async function echoscu(target: DicomPeer): Promise<boolean> {
  const binary = requireBinary('echoscu', 'dcmtk');
  return run(binary, [
    '-aec',
    target.calledAet,
    '-aet',
    target.callingAet ?? 'ECHOSCU',
    target.host,
    String(target.port),
  ]).then(
    () => true,
    () => false,
  );
}

/**
 * C-FIND at the study root. `keys` are dcmtk `-k` keys, e.g. `{ QueryRetrieveLevel: 'STUDY',
 * PatientID: 'X', StudyInstanceUID: '' }` (an empty value asks for that attribute back).
 * Returns one object per match, keyed by the names dcmtk prints (StudyInstanceUID, PatientName...).
 * Orthanc answers C-FIND only from AETs it knows and grants it, from their registered host
 * (putModality with `allow: ['find']`, see shared/orthanc/peers.ts); a worklist query (`worklist: true`)
 * needs the peer's AllowFindWorklist (WORKLIST_CALLERS).
 */
export async function findscu(
  target: DicomPeer,
  keys: Record<string, string>,
  options: { worklist?: boolean } = {},
): Promise<Record<string, string>[]> {
  const binary = requireBinary('findscu', 'dcmtk');
  const args = [
    // -W: the Modality Worklist information model (keys like ScheduledProcedureStepSequence[0].Modality).
    options.worklist ? '-W' : '-S',
    '-aec',
    target.calledAet,
    '-aet',
    target.callingAet ?? 'FINDSCU',
    ...Object.entries(keys).flatMap(([k, v]) => ['-k', v === '' ? k : `${k}=${v}`]),
    target.host,
    String(target.port),
  ];
  let raw: Buffer;
  try {
    // findscu prints each response on stderr as "(gggg,eeee) VR [value] # len, vm Name" lines, in
    // the bytes the peer sent: Orthanc answers in its DefaultEncoding (Latin-1) unless told otherwise.
    raw = (await run(binary, args, { maxBuffer: 16 * 1024 * 1024, encoding: 'buffer' })).stderr;
  } catch (error) {
    throw dcmtkError('findscu', args, error);
  }
  // findscu exits 0 even when the association is refused or the query fails; it says so with "E:".
  const errors = raw
    .toString('utf8')
    .split('\n')
    .filter((l) => l.startsWith('E: ') && !l.startsWith('E: (') && !l.startsWith('E: #') && l.trim() !== 'E:');
  if (errors.length > 0)
    throw dcmtkError('findscu', args, { stderr: errors.join('\n'), code: 0, message: 'C-FIND failed' });
  const matches: Record<string, string>[] = [];
  for (const block of raw
    .toString('latin1')
    .split(/^.*Find Response:.*$/m)
    .slice(1)) {
    const utf8 = /\(0008,0005\)\s+CS\s+\[ISO_IR 192/.test(block);
    const text = utf8 ? Buffer.from(block, 'latin1').toString('utf8') : block;
    const match: Record<string, string> = {};
    for (const line of text.split('\n')) {
      const m =
        /\(([0-9a-f]{4}),([0-9a-f]{4})\)\s+\w\w\s+(?:\[(.*)\]|\(no value available\)|=?(\S+)).*#\s*\d+,\s*\d+\s+(\w+)\s*$/i.exec(
          line.replace(/^[IWE]: /, ''),
        );
      if (m) match[m[5]] = (m[3] ?? m[4] ?? '').replace(/[\s\0]+$/, '');
    }
    matches.push(match);
  }
  return matches;
}

/**
 * C-GET at the study root into `outDir`: the peer sends the instances back over the same association.
 * Returns the files received. Rejects when dcmtk reports an error (association refused, C-GET failed),
 * quoting its output; getscu exits 0 on some of those, so its "E:"/"F:" lines are checked too.
 */
export async function getscu(target: DicomPeer, keys: Record<string, string>, outDir: string): Promise<string[]> {
  const binary = requireBinary('getscu', 'dcmtk');
  mkdirSync(outDir, { recursive: true });
  const args = [
    '-S',
    '-aec',
    target.calledAet,
    '-aet',
    target.callingAet ?? 'GETSCU',
    '-od',
    outDir,
    ...Object.entries(keys).flatMap(([k, v]) => ['-k', `${k}=${v}`]),
    target.host,
    String(target.port),
  ];
  let output: string;
  try {
    const { stdout, stderr } = await run(binary, args, { maxBuffer: 16 * 1024 * 1024 });
    output = `${stdout}${stderr}`;
  } catch (error) {
    throw dcmtkError('getscu', args, error);
  }
  const errors = output.split('\n').filter((l) => /^[EF]: /.test(l));
  if (errors.length > 0) throw dcmtkError('getscu', args, { stderr: output, code: 0, message: 'C-GET failed' });
  return readdirSync(outDir).map((f) => path.join(outDir, f));
}

export interface Storescp {
  port: number;
  aet: string;
  dir: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Paths of the received files: one per SOP instance, named `<modality>.<SOP Instance UID>` (storescp -uf). */
  receivedFiles(): string[];
  logs(): string;
}

/**
 * A receiving DICOM node on a free loopback port. It accepts every storage SOP class dcmtk knows with
 * every transfer syntax it supports (+xa), names each file `<modality>.<SOP Instance UID>` (-uf; `+uf`
 * would make random names) and serves
 * concurrent associations (--fork: Orthanc may open several at once).
 */
export async function startStorescp(options: { aet?: string; port?: number; outDir?: string } = {}): Promise<Storescp> {
  const binary = requireBinary('storescp', 'dcmtk');
  const port = options.port ?? (await freePort());
  const aet = options.aet ?? 'SINK';
  const dir = options.outDir ?? makeTempDir('storescp-');
  mkdirSync(dir, { recursive: true });
  let proc: ManagedProcess | undefined;
  const server: Storescp = {
    port,
    aet,
    dir,
    async start() {
      if (proc?.running()) return;
      proc = spawnManaged(binary, ['-aet', aet, '+xa', '-od', dir, '-uf', '--fork', String(port)], {
        name: 'storescp',
      });
      await waitFor(
        async () => {
          if (!proc!.running()) throw new FatalWaitError(`storescp exited on port ${port}: ${proc!.output()}`);
          return echoscu({ host: '127.0.0.1', port, calledAet: aet });
        },
        { timeoutMs: 15_000, intervalMs: 100, description: `storescp ${aet} to accept associations on port ${port}` },
      );
    },
    async stop() {
      await proc?.stop('SIGTERM', 5_000);
    },
    receivedFiles: () =>
      readdirSync(dir)
        .filter((f) => !f.startsWith('.'))
        .map((f) => path.join(dir, f)),
    logs: () => proc?.output() ?? '',
  };
  await server.start();
  return server;
}

/** dcmdump's text for a file (UTF-8 output); rejects when dcmdump cannot parse it. */
export async function dcmdump(file: string, extraArgs: string[] = []): Promise<string> {
  const args = ['+U8', ...extraArgs, file];
  try {
    const { stdout, stderr } = await run(requireBinary('dcmdump', 'dcmtk'), args, { maxBuffer: 64 * 1024 * 1024 });
    // dcmdump exits 0 on some parse problems but reports them on stderr: treat those as failures.
    if (/^E: /m.test(stderr)) throw Object.assign(new Error(stderr), { stderr, code: 0 });
    return stdout;
  } catch (error) {
    throw dcmtkError('dcmdump', args, error);
  }
}
