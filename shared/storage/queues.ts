/**
 * Sending queue messages the way the Functions host reads them: JSON, base64 on the wire.
 * Queues are created on first use (the host's output binding does the same).
 */
import type { QueueClient, QueueServiceClient } from '@azure/storage-queue';
import { queueService } from './connection';

export interface QueueSender {
  send(queueName: string, message: unknown, options?: { delaySeconds?: number }): Promise<void>;
  /** Approximate number of visible messages; undefined when the queue does not exist. */
  depth(queueName: string): Promise<number | undefined>;
}

export function createQueueSender(connectionString: string): QueueSender {
  const service: QueueServiceClient = queueService(connectionString);
  const ready = new Map<string, Promise<QueueClient>>();

  function queue(name: string): Promise<QueueClient> {
    let client = ready.get(name);
    if (!client) {
      const q = service.getQueueClient(name);
      client = q.createIfNotExists().then(() => q);
      client.catch(() => ready.delete(name));
      ready.set(name, client);
    }
    return client;
  }

  return {
    async send(queueName, message, options = {}) {
      const client = await queue(queueName);
      const body = Buffer.from(JSON.stringify(message), 'utf8').toString('base64');
      // -1: messages never expire; the default of 7 days would silently drop a long-deferred job.
      await client.sendMessage(body, { visibilityTimeout: options.delaySeconds ?? 0, messageTimeToLive: -1 });
    },
    async depth(queueName) {
      try {
        const properties = await service.getQueueClient(queueName).getProperties();
        return properties.approximateMessagesCount ?? 0;
      } catch (error) {
        if ((error as { statusCode?: number }).statusCode === 404) return undefined;
        throw error;
      }
    },
  };
}
