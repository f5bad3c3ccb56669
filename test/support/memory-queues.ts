/**
 * A QueueSender (shared/storage/queues.ts) in memory, for unit tests: it records what was sent, as the
 * JSON the wire carries (so a message that would not survive JSON fails here too), with its delay.
 */
import type { QueueSender } from '../../shared/storage/queues';

export interface SentMessage {
  queue: string;
  message: unknown;
  delaySeconds: number;
  /** When the message becomes visible, by the sender's clock. */
  visibleAt: number;
}

export interface MemoryQueues extends QueueSender {
  readonly sent: SentMessage[];
  /** The messages sent to one queue, oldest first. */
  on(queue: string): SentMessage[];
}

export function createMemoryQueues(options: { now?: () => Date } = {}): MemoryQueues {
  const now = options.now ?? (() => new Date());
  const sent: SentMessage[] = [];
  return {
    sent,
    on: (queue) => sent.filter((m) => m.queue === queue),
    async send(queue, message, { delaySeconds = 0 } = {}) {
      const wire = JSON.stringify(message);
      if (wire === undefined) throw new Error(`A message for '${queue}' is not JSON`);
      sent.push({
        queue,
        message: JSON.parse(wire) as unknown,
        delaySeconds,
        visibleAt: now().getTime() + delaySeconds * 1000,
      });
    },
    async depth(queue) {
      // A queue exists once something was sent to it (the real sender creates queues on first use).
      if (!sent.some((m) => m.queue === queue)) return undefined;
      return sent.filter((m) => m.queue === queue && m.visibleAt <= now().getTime()).length;
    },
  };
}
