/**
 * What the host reads before the app loads: local.settings.json Values (environment variables win,
 * as with Core Tools) and host.json's HTTP route prefix and queue options, with the real defaults.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';

export interface QueueOptions {
  batchSize: number;
  newBatchThreshold: number;
  maxDequeueCount: number;
  visibilityTimeoutSeconds: number;
  maxPollingIntervalMs: number;
  messageEncoding: 'base64' | 'none';
}

export interface HostSettings {
  routePrefix: string;
  queues: QueueOptions;
  hostId: string;
  development: boolean;
}

/** "00:00:05" (TimeSpan), "5000" (ms, as the queue extension accepts) → milliseconds. */
export function parseTimeSpan(value: unknown, label: string): number {
  if (typeof value === 'number') return value;
  const text = String(value).trim();
  const match = /^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d+))?$/.exec(text);
  if (match) {
    const [, days = '0', h, m, s, frac = '0'] = match;
    return ((Number(days) * 24 + Number(h)) * 3600 + Number(m) * 60 + Number(s)) * 1000 + Number(`0.${frac}`) * 1000;
  }
  if (/^\d+$/.test(text)) return Number(text);
  throw new Error(`host.json: ${label} must be a TimeSpan like "00:00:05", got ${JSON.stringify(value)}`);
}

export function applyLocalSettings(appDir: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const file = path.join(appDir, 'local.settings.json');
  if (!existsSync(file)) return [];
  const parsed = JSON.parse(readFileSync(file, 'utf8')) as { Values?: Record<string, string> };
  const applied: string[] = [];
  for (const [key, value] of Object.entries(parsed.Values ?? {})) {
    if (env[key] === undefined) {
      env[key] = String(value);
      applied.push(key);
    }
  }
  return applied;
}

export function readHostSettings(appDir: string, env: NodeJS.ProcessEnv = process.env): HostSettings {
  const file = path.join(appDir, 'host.json');
  const json = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const extensions = (json.extensions ?? {}) as Record<string, Record<string, unknown>>;
  const http = extensions.http ?? {};
  const queues = extensions.queues ?? {};
  const development = (env.AZURE_FUNCTIONS_ENVIRONMENT ?? 'Development') === 'Development';
  const cpus = env.WEBSITE_SKU === 'Dynamic' ? 1 : os.cpus().length;
  const batchSize = Math.min(32, Math.max(1, Number(queues.batchSize ?? 16)));
  const maxPolling = queues.maxPollingInterval !== undefined ? parseTimeSpan(queues.maxPollingInterval, 'extensions.queues.maxPollingInterval') : development ? 2000 : 60_000;
  const hostId = (env.AzureFunctionsWebHost__hostid ?? `${os.hostname()}-${createHash('sha256').update(path.resolve(appDir)).digest('hex').slice(0, 10)}`).toLowerCase().slice(0, 32);
  return {
    routePrefix: typeof http.routePrefix === 'string' ? http.routePrefix.replace(/^\/+|\/+$/g, '') : 'api',
    hostId,
    development,
    queues: {
      batchSize,
      newBatchThreshold: queues.newBatchThreshold !== undefined ? Number(queues.newBatchThreshold) : Math.floor(batchSize / 2) * cpus,
      maxDequeueCount: Number(queues.maxDequeueCount ?? 5),
      visibilityTimeoutSeconds: queues.visibilityTimeout !== undefined ? parseTimeSpan(queues.visibilityTimeout, 'extensions.queues.visibilityTimeout') / 1000 : 0,
      maxPollingIntervalMs: Math.max(100, maxPolling),
      messageEncoding: queues.messageEncoding === 'none' ? 'none' : 'base64',
    },
  };
}
