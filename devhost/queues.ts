/**
 * Storage-queue triggers and queue output bindings with the host's semantics (queue extension 5.x):
 * base64 messages, batches of `batchSize` with `batchSize + newBatchThreshold` in flight, a 10-minute
 * lease renewed while the handler runs, retry after `visibilityTimeout`, `<queue>-poison` after
 * `maxDequeueCount` (or at once for an undecodable message), randomised exponential back-off polling
 * from 100 ms to `maxPollingInterval`, an immediate poll after a write from this host.
 */
import { QueueServiceClient, type DequeuedMessageItem, type QueueClient } from '@azure/storage-queue';
import type { TypedData } from './core';
import type { QueueOptions } from './settings';

/**
 * Messages are received invisible for 10 minutes (QueueListener) ... A crash leaves its messages
 * invisible that long; DEVHOST_QUEUE_LEASE_SECONDS shortens it so fault-injection tests can restart
 * the host without waiting 10 minutes per crash (the real host has no such setting).
 */
const LEASE_SECONDS = leaseSeconds(process.env.DEVHOST_QUEUE_LEASE_SECONDS);
/** ... and the lease is renewed at half that while the handler runs (UpdateQueueMessageVisibilityCommand). */
const RENEW_EVERY_MS = (LEASE_SECONDS * 1000) / 2;

function leaseSeconds(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return 600;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 2 || value > 600)
    throw new Error(`DEVHOST_QUEUE_LEASE_SECONDS: expected whole seconds between 2 and 600, got '${raw}'`);
  return value;
}
const MIN_POLL_MS = 100;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export function decodeMessage(text: string, encoding: QueueOptions['messageEncoding']): string | undefined {
  if (encoding === 'none') return text;
  const compact = text.trim();
  if (compact.length % 4 !== 0 || !BASE64.test(compact)) return undefined;
  return Buffer.from(compact, 'base64').toString('utf8');
}

export function encodeMessage(text: string, encoding: QueueOptions['messageEncoding']): string {
  return encoding === 'none' ? text : Buffer.from(text, 'utf8').toString('base64');
}

/**
 * The messages a queue output value becomes. Arrays fan out to one message per element; objects are
 * re-serialised as indented JSON (JToken.ToString()); strings that look like JSON are parsed first.
 */
export function outputMessages(data: TypedData): string[] {
  let value: unknown;
  if (data.json !== undefined) value = JSON.parse(data.json);
  else if (data.string !== undefined) {
    const trimmed = data.string.trim();
    const looksJson =
      (trimmed.startsWith('{') && trimmed.endsWith('}')) || (trimmed.startsWith('[') && trimmed.endsWith(']'));
    value = data.string;
    if (looksJson) {
      try {
        value = JSON.parse(trimmed);
      } catch {
        value = data.string;
      }
    }
  } else if (data.bytes !== undefined) return [Buffer.from(data.bytes).toString('utf8')];
  else if (data.int !== undefined) value = data.int;
  else if (data.double !== undefined) value = data.double;
  else return [];
  const one = (v: unknown): string =>
    typeof v === 'string'
      ? v
      : typeof v === 'boolean'
        ? v
          ? 'True'
          : 'False'
        : typeof v === 'number'
          ? String(v)
          : JSON.stringify(v, null, 2);
  return Array.isArray(value) ? value.map(one) : [one(value)];
}

/** A DateTimeOffset as the host serialises it (Json.NET): `2026-01-02T03:04:05+00:00`, fraction only when non-zero. */
export function dotnetDate(date: Date): string {
  return date.toISOString().replace(/\.000Z$|Z$/, '+00:00');
}

export interface QueueMessageContext {
  text: string;
  message: DequeuedMessageItem;
}

export type QueueInvoker = (messageText: string, triggerMetadata: Record<string, TypedData>) => Promise<void>;

export class QueueService {
  private readonly service: QueueServiceClient;
  private readonly wakers = new Map<string, Set<() => void>>();
  private readonly created = new Set<string>();

  constructor(
    connectionString: string,
    private readonly options: QueueOptions,
  ) {
    this.service = QueueServiceClient.fromConnectionString(connectionString);
  }

  client(name: string): QueueClient {
    return this.service.getQueueClient(name.toLowerCase());
  }

  /** Writes an output binding's messages (the target queue is created if needed), then wakes local listeners. */
  async write(queueName: string, messages: string[]): Promise<void> {
    const name = queueName.toLowerCase();
    const client = this.client(name);
    if (!this.created.has(name)) {
      await client.createIfNotExists();
      this.created.add(name);
    }
    for (const text of messages)
      await client.sendMessage(encodeMessage(text, this.options.messageEncoding), { messageTimeToLive: -1 });
    for (const wake of this.wakers.get(name) ?? []) wake();
  }

  onWrite(queueName: string, wake: () => void): () => void {
    const name = queueName.toLowerCase();
    const set = this.wakers.get(name) ?? new Set();
    set.add(wake);
    this.wakers.set(name, set);
    return () => set.delete(wake);
  }

  listen(queueName: string, invoker: QueueInvoker, log: (line: string) => void): QueueListener {
    return new QueueListener(this, queueName.toLowerCase(), this.options, invoker, log);
  }
}

export class QueueListener {
  private stopped = false;
  private released = false;
  private inFlight = new Map<string, { message: DequeuedMessageItem; popReceipt: string; done: Promise<void> }>();
  private wake?: () => void;
  /** Set by a write from this host, cleared as a poll starts (the extension's immediate poll). */
  private written = false;
  private delayMs = MIN_POLL_MS;
  private exponent = 1;
  private readonly loop: Promise<void>;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly queues: QueueService,
    readonly queueName: string,
    private readonly options: QueueOptions,
    private readonly invoker: QueueInvoker,
    private readonly log: (line: string) => void,
  ) {
    this.unsubscribe = queues.onWrite(queueName, () => {
      this.written = true;
      this.resetBackoff();
      this.wake?.();
    });
    this.loop = this.run();
  }

  private sleep(ms: number): Promise<void> {
    // A write that came while the last poll was on its way (too late for it) is polled for now.
    if (this.written) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * The extension's RandomizedExponentialBackoffStrategy: after n empty polls the delay is
   * min + rand(0.8..1.2) x 2^(n-1) x min, capped at maxPollingInterval; any hit resets it.
   */
  private backoff(): number {
    const max = this.options.maxPollingIntervalMs;
    if (this.delayMs !== max) {
      const next = MIN_POLL_MS + (0.8 + Math.random() * 0.4) * 2 ** (this.exponent - 1) * MIN_POLL_MS;
      if (next < max) {
        this.delayMs = next;
        this.exponent += 1;
      } else this.delayMs = max;
    }
    return this.delayMs;
  }

  private resetBackoff(): void {
    this.delayMs = MIN_POLL_MS;
    this.exponent = 1;
  }

  private async run(): Promise<void> {
    const client = this.queues.client(this.queueName);
    const maxInFlight = this.options.batchSize + this.options.newBatchThreshold;
    while (!this.stopped) {
      if (this.inFlight.size > this.options.newBatchThreshold) {
        await Promise.race([...this.inFlight.values()].map((f) => f.done));
        continue;
      }
      let received: DequeuedMessageItem[];
      try {
        const wanted = Math.min(this.options.batchSize, maxInFlight - this.inFlight.size);
        this.written = false;
        received = (
          await client.receiveMessages({ numberOfMessages: Math.max(1, wanted), visibilityTimeout: LEASE_SECONDS })
        ).receivedMessageItems;
      } catch (error) {
        // A missing queue is not created by a trigger; poll again later, as the host does.
        if ((error as { statusCode?: number }).statusCode !== 404)
          this.log(`Queue '${this.queueName}': ${(error as Error).message}`);
        await this.sleep(this.backoff());
        continue;
      }
      if (this.stopped) {
        await Promise.all(
          received.map((m) => client.updateMessage(m.messageId, m.popReceipt, undefined, 0).catch(() => undefined)),
        );
        break;
      }
      if (received.length === 0) {
        await this.sleep(this.backoff());
        continue;
      }
      this.resetBackoff();
      for (const message of received) {
        const entry = { message, popReceipt: message.popReceipt, done: Promise.resolve() };
        entry.done = this.process(client, entry)
          .catch((error: Error) =>
            this.log(`Queue '${this.queueName}': message '${message.messageId}': ${error.message}`),
          )
          .finally(() => this.inFlight.delete(message.messageId));
        this.inFlight.set(message.messageId, entry);
      }
    }
  }

  private async poison(
    client: QueueClient,
    entry: { message: DequeuedMessageItem; popReceipt: string },
    why: string,
  ): Promise<void> {
    const poisonName = `${this.queueName}-poison`;
    if (this.queueName.endsWith('-poison')) return; // no poison queue for a poison queue: the message stays invisible
    const poison = this.queues.client(poisonName);
    await poison.createIfNotExists();
    await poison.sendMessage(entry.message.messageText, { messageTimeToLive: -1 });
    await client.deleteMessage(entry.message.messageId, entry.popReceipt);
    this.log(`${why} Moving message to queue '${poisonName}'.`);
    await this.queues.write(poisonName, []);
  }

  private async process(
    client: QueueClient,
    entry: { message: DequeuedMessageItem; popReceipt: string },
  ): Promise<void> {
    const { message } = entry;
    if (message.dequeueCount > this.options.maxDequeueCount) {
      await this.poison(client, entry, `Message has reached MaxDequeueCount of ${this.options.maxDequeueCount}.`);
      return;
    }
    const text = decodeMessage(message.messageText, this.options.messageEncoding);
    if (text === undefined) {
      await this.poison(
        client,
        entry,
        `Message '${message.messageId}' on '${this.queueName}' is not valid base64 (MessageDecodingFailed).`,
      );
      return;
    }
    // A renewal still in flight when the handler ends would change the pop receipt under the
    // completion (Azure answers a mismatch with an error): completion waits for it.
    let renewing: Promise<void> = Promise.resolve();
    const renew = setInterval(() => {
      renewing = renewing.then(() =>
        client.updateMessage(message.messageId, entry.popReceipt, undefined, LEASE_SECONDS).then(
          (r) => {
            if (r.popReceipt) entry.popReceipt = r.popReceipt;
          },
          () => undefined,
        ),
      );
    }, RENEW_EVERY_MS);
    const metadata: Record<string, TypedData> = {
      QueueTrigger: { string: text },
      DequeueCount: { int: message.dequeueCount },
      Id: { string: message.messageId },
      PopReceipt: { string: message.popReceipt },
      InsertionTime: { json: JSON.stringify(dotnetDate(message.insertedOn)) },
      ExpirationTime: { json: JSON.stringify(dotnetDate(message.expiresOn)) },
      NextVisibleTime: { json: JSON.stringify(dotnetDate(message.nextVisibleOn)) },
    };
    // Top-level non-array properties of a JSON object message are merged into the binding data.
    try {
      const parsed = JSON.parse(text) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        for (const [key, value] of Object.entries(parsed)) {
          if (!Array.isArray(value))
            metadata[key] = typeof value === 'string' ? { string: value } : { json: JSON.stringify(value) };
        }
      }
    } catch {
      // not JSON: nothing to merge
    }
    let failed = false;
    try {
      await this.invoker(text, metadata);
    } catch {
      failed = true; // the invocation already logged why
    } finally {
      clearInterval(renew);
      await renewing;
    }
    // Released at shutdown: the message is someone else's now, whatever the handler did.
    if (this.released) return;
    try {
      if (!failed) await client.deleteMessage(message.messageId, entry.popReceipt);
      else if (message.dequeueCount >= this.options.maxDequeueCount) {
        await this.poison(client, entry, `Message has reached MaxDequeueCount of ${this.options.maxDequeueCount}.`);
      } else {
        // Visible again after visibilityTimeout (0 by default: retried at once).
        await client.updateMessage(
          message.messageId,
          entry.popReceipt,
          undefined,
          this.options.visibilityTimeoutSeconds,
        );
      }
    } catch (error) {
      this.log(
        `Queue '${this.queueName}': cannot complete message '${message.messageId}': ${(error as Error).message}`,
      );
    }
  }

  /** Stops fetching; waits for running handlers up to `graceMs`, then makes the rest visible again. */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    this.wake?.();
    const all = Promise.all([...this.inFlight.values()].map((f) => f.done));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    const client = this.queues.client(this.queueName);
    const unfinished = [...this.inFlight.values()];
    this.released = true;
    if (unfinished.length > 0)
      this.log(`Queue '${this.queueName}': releasing ${unfinished.length} unfinished message(s) (visible again now)`);
    await Promise.all(
      unfinished.map((f) =>
        client.updateMessage(f.message.messageId, f.popReceipt, undefined, 0).catch(() => undefined),
      ),
    );
    await Promise.race([this.loop, new Promise((resolve) => setTimeout(resolve, 2000))]);
  }
}
