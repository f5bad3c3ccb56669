/**
 * Worker threads for the anonymiser: parsing, deciding and encoding a file is all CPU, so on a host
 * with more than one core, files of a folder are de-identified side by side. One pool per process,
 * made on first use (see sharedAnonymisePool); its threads are unref'd (they never keep a process
 * alive) and ended after a minute unused. Each file's bytes are transferred to a worker and its
 * output transferred back, never copied. A worker that dies fails the file it held (the step's
 * retry runs it again) and is replaced.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { anonymiserOptionsOf, type Anonymiser, type AnonymisedInstance } from './anonymiser';
import type { AnonymiseSettings } from './options';

export interface AnonymiseTask {
  id: number;
  /** Which anonymiser: the same number for every file anonymised with one anonymiser object. */
  key: number;
  options: {
    secret: string;
    settings: AnonymiseSettings;
    mapping?: { rows: Array<[string, string]>; source: string };
  };
  input: Uint8Array;
  name: string;
}

export type WorkerResult = Omit<AnonymisedInstance, 'output' | 'chunks'> & { chunks?: Uint8Array[] };
export type AnonymiseAnswer = { id: number; result: WorkerResult } | { id: number; error: string };

export interface AnonymisePool {
  readonly size: number;
  /** Whether a file given now would start at once (a worker is free or may be started). */
  hasIdleWorker(): boolean;
  /** anonymiser.anonymiseToChunks(input, name) in a worker; `input` is handed over (empty afterwards). */
  anonymise(anonymiser: Anonymiser, input: Buffer, name: string): Promise<Omit<AnonymisedInstance, 'output'>>;
}

const IDLE_MS = 60_000;
const keys = new WeakMap<Anonymiser, { key: number; options: AnonymiseTask['options'] }>();
let nextKey = 1;

function taskOptions(anonymiser: Anonymiser): { key: number; options: AnonymiseTask['options'] } {
  let known = keys.get(anonymiser);
  if (!known) {
    const { secret, settings, mapping } = anonymiserOptionsOf(anonymiser);
    known = {
      key: nextKey++,
      options: { secret, settings, mapping: mapping ? { rows: mapping.rows(), source: mapping.source } : undefined },
    };
    keys.set(anonymiser, known);
  }
  return known;
}

/**
 * A small young generation: the worker's objects (one file's dataset at a time) die young, and the
 * default semi-spaces grew the host's resident memory by tens of MB for nothing.
 */
const WORKER_OPTIONS = { resourceLimits: { maxYoungGenerationSizeMb: 4 } };

/** Under tsx (tests, bench) the worker is TypeScript: it loads tsx's require hook first. */
function startWorker(): Worker {
  const file = path.join(__dirname, `anonymise-worker${path.extname(__filename)}`);
  if (!file.endsWith('.ts')) return new Worker(file, WORKER_OPTIONS);
  const tsx = createRequire(__filename).resolve('tsx/cjs');
  return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(file)});`, {
    ...WORKER_OPTIONS,
    eval: true,
  });
}

interface Slot {
  worker: Worker;
  busy?: { id: number; resolve: (r: WorkerResult) => void; reject: (e: Error) => void };
}

export function createAnonymisePool(size: number): AnonymisePool {
  const slots: Slot[] = [];
  const queue: Array<{ task: AnonymiseTask; resolve: (r: WorkerResult) => void; reject: (e: Error) => void }> = [];
  let nextId = 1;
  let idleTimer: NodeJS.Timeout | undefined;

  const remove = (slot: Slot) => {
    const at = slots.indexOf(slot);
    if (at !== -1) slots.splice(at, 1);
  };

  const spawn = (): Slot => {
    const slot: Slot = { worker: startWorker() };
    slot.worker.unref();
    slot.worker.on('message', (answer: AnonymiseAnswer) => {
      const busy = slot.busy;
      slot.busy = undefined;
      if (busy && busy.id === answer.id) {
        if ('error' in answer) busy.reject(new Error(answer.error));
        else busy.resolve(answer.result);
      }
      dispatch();
    });
    const fail = (reason: string) => {
      remove(slot);
      slot.busy?.reject(new Error(`the anonymiser's worker thread ${reason}`));
      slot.busy = undefined;
      dispatch();
    };
    slot.worker.on('error', (error) => fail(`failed (${error.message.slice(0, 200)})`));
    slot.worker.on('exit', (code) => fail(`exited with code ${code}`));
    slots.push(slot);
    return slot;
  };

  const dispatch = () => {
    clearTimeout(idleTimer);
    while (queue.length > 0) {
      const slot = slots.find((s) => !s.busy) ?? (slots.length < size ? spawn() : undefined);
      if (!slot) return;
      const { task, resolve, reject } = queue.shift()!;
      slot.busy = { id: task.id, resolve, reject };
      slot.worker.postMessage(task, [task.input.buffer as ArrayBuffer]);
    }
    if (slots.every((s) => !s.busy)) {
      idleTimer = setTimeout(() => {
        for (const slot of slots.splice(0)) {
          slot.worker.removeAllListeners('exit');
          void slot.worker.terminate();
        }
      }, IDLE_MS);
      idleTimer.unref();
    }
  };

  return {
    size,
    hasIdleWorker: () => queue.length === 0 && (slots.length < size || slots.some((s) => !s.busy)),
    async anonymise(anonymiser, input, name) {
      const { key, options } = taskOptions(anonymiser);
      // Only a buffer that is all of its memory can be handed over; a pooled slice is copied.
      const whole =
        input.byteOffset === 0 && input.byteLength === input.buffer.byteLength && input.buffer instanceof ArrayBuffer
          ? new Uint8Array(input.buffer)
          : new Uint8Array(input);
      const result = await new Promise<WorkerResult>((resolve, reject) => {
        queue.push({ task: { id: nextId++, key, options, input: whole, name }, resolve, reject });
        dispatch();
      });
      const { chunks, ...rest } = result;
      return chunks ? { ...rest, chunks: chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)) } : rest;
    },
  };
}

let shared: AnonymisePool | undefined | null;

/**
 * The process's pool: a worker per core but one (the main thread anonymises too when every worker is
 * busy, so two cores need one worker and its memory only), at most three; undefined on one core.
 */
export function sharedAnonymisePool(): AnonymisePool | undefined {
  if (shared === undefined) {
    const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
    shared = cores > 1 ? createAnonymisePool(Math.min(cores - 1, 3)) : null;
  }
  return shared ?? undefined;
}
