/**
 * A worker thread of anonymise-pool.ts: de-identifies the files it is sent with the anonymiser the
 * task names (made once per worker from its options and kept for the next files of the same job).
 * Answers the same result anonymiseToChunks gives, or the error's message alone (a message never
 * quotes a value: see anonymiser.ts). Small output parts are joined into one buffer of their own,
 * so every buffer handed back is transferred, not copied, and none is a slice of Node's shared pool.
 */
import { parentPort } from 'node:worker_threads';
import { createAnonymiser, type Anonymiser } from './anonymiser';
import { IdentityMapping } from './mapping';
import type { AnonymiseTask, AnonymiseAnswer } from './anonymise-pool';

const KEPT_ANONYMISERS = 4;
const anonymisers = new Map<number, Anonymiser>();

function anonymiserFor(task: AnonymiseTask): Anonymiser {
  let anonymiser = anonymisers.get(task.key);
  if (!anonymiser) {
    const { secret, settings, mapping } = task.options;
    anonymiser = createAnonymiser({
      secret,
      settings,
      mapping: mapping ? new IdentityMapping(new Map(mapping.rows), mapping.source) : undefined,
    });
    anonymisers.set(task.key, anonymiser);
    if (anonymisers.size > KEPT_ANONYMISERS) anonymisers.delete(anonymisers.keys().next().value!);
  }
  return anonymiser;
}

/** Parts below this size are joined; larger ones (the pixels) are the parsed dataset's own buffers. */
const JOIN_BELOW = 64 * 1024;

function transferable(chunks: Buffer[]): { chunks: Uint8Array[]; transfer: ArrayBuffer[] } {
  const out: Uint8Array[] = [];
  const transfer = new Set<ArrayBuffer>();
  let pending: Buffer[] = [];
  const join = () => {
    if (pending.length === 0) return;
    const size = pending.reduce((n, c) => n + c.length, 0);
    const joined = new Uint8Array(new ArrayBuffer(size));
    let at = 0;
    for (const c of pending) {
      joined.set(c, at);
      at += c.length;
    }
    out.push(joined);
    transfer.add(joined.buffer);
    pending = [];
  };
  for (const chunk of chunks) {
    if (chunk.length < JOIN_BELOW || !(chunk.buffer instanceof ArrayBuffer)) {
      pending.push(chunk);
      continue;
    }
    join();
    out.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    // Native pixels that end the file are a view of the input (charset.ts readDicom): the input's
    // buffer goes back, once (a set), however many parts point into it.
    transfer.add(chunk.buffer);
  }
  join();
  return { chunks: out, transfer: [...transfer] };
}

parentPort!.on('message', (task: AnonymiseTask) => {
  let answer: AnonymiseAnswer;
  let transfer: ArrayBuffer[] = [];
  try {
    const input = Buffer.from(task.input.buffer, task.input.byteOffset, task.input.byteLength);
    const { chunks, ...rest } = anonymiserFor(task).anonymiseToChunks(input, task.name);
    const sent = chunks ? transferable(chunks) : undefined;
    transfer = sent?.transfer ?? [];
    answer = { id: task.id, result: { ...rest, chunks: sent?.chunks } };
  } catch (error) {
    answer = { id: task.id, error: String((error as Error)?.message ?? error) };
  }
  parentPort!.postMessage(answer, transfer);
});
