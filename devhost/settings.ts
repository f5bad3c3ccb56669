/**
 * What the host reads before the app loads: local.settings.json Values (environment variables win,
 * as with Core Tools) and host.json's HTTP route prefix and queue options, with the real defaults.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { SingletonSettings } from './singleton';

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
  /** host.json `singleton`: the timer listeners' lease (devhost/singleton.ts). */
  singleton: SingletonSettings;
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
  let parsed: { Values?: Record<string, string> };
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as { Values?: Record<string, string> };
  } catch (error) {
    throw new Error(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  const applied: string[] = [];
  for (const [key, value] of Object.entries(parsed.Values ?? {})) {
    if (env[key] === undefined) {
      env[key] = String(value);
      applied.push(key);
    }
  }
  return applied;
}

/**
 * App settings named `AzureFunctionsJobHost__a__b` override host.json's `a.b`, as in the real host
 * (keys match case-insensitively). Tests and operators tune a setting without editing host.json.
 */
export function applyHostJsonOverrides(json: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const prefix = 'azurefunctionsjobhost__';
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined || !key.toLowerCase().startsWith(prefix)) continue;
    const pathParts = key.slice(prefix.length).split('__').filter(Boolean);
    if (pathParts.length === 0) continue;
    let node: Record<string, unknown> = json;
    for (const [i, part] of pathParts.entries()) {
      const existing = Object.keys(node).find((k) => k.toLowerCase() === part.toLowerCase()) ?? part;
      if (i === pathParts.length - 1) node[existing] = value;
      else {
        if (typeof node[existing] !== 'object' || node[existing] === null) node[existing] = {};
        node = node[existing] as Record<string, unknown>;
      }
    }
  }
  return json;
}

function pick(obj: Record<string, unknown>, key: string): unknown {
  const found = Object.keys(obj).find((k) => k.toLowerCase() === key.toLowerCase());
  return found === undefined ? undefined : obj[found];
}

function section(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = pick(obj, key);
  return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {};
}

/** `<machine>-<hash of the app path>`, lowercased, [a-z0-9-] only, at most 32 characters (ScriptHostIdProvider). */
export function defaultHostId(appDir: string): string {
  const machine = os
    .hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '');
  const hash = createHash('sha256').update(path.resolve(appDir).toLowerCase()).digest('hex').slice(0, 10);
  return `${machine}-${hash}`.slice(0, 32).replace(/-+$/, '');
}

/** SingletonOptions: a lease of 15 to 60 s (60 by default); lock recovery every minute, never under 15 s. */
function readSingletonSettings(singleton: Record<string, unknown>): SingletonSettings {
  const span = (key: string, fallback: number): number => {
    const value = pick(singleton, key);
    return value === undefined ? fallback : parseTimeSpan(value, `singleton.${key}`);
  };
  const period = span('listenerLockPeriod', 60_000);
  if (period < 15_000 || period > 60_000)
    throw new Error('host.json: singleton.listenerLockPeriod must be between 00:00:15 and 00:01:00');
  const recovery = span('listenerLockRecoveryPollingInterval', 60_000);
  if (recovery < 15_000)
    throw new Error('host.json: singleton.listenerLockRecoveryPollingInterval must be at least 00:00:15');
  return { listenerLockPeriodMs: period, listenerLockRecoveryPollingIntervalMs: recovery };
}

export function readHostSettings(appDir: string, env: NodeJS.ProcessEnv = process.env): HostSettings {
  const file = path.join(appDir, 'host.json');
  let json: Record<string, unknown> = {};
  if (existsSync(file)) {
    try {
      json = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (error) {
      throw new Error(`${file} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  applyHostJsonOverrides(json, env);
  // .NET configuration keys are case-insensitive: "MaxPollingInterval" works as well as "maxPollingInterval".
  const extensions = section(json, 'extensions');
  const http = section(extensions, 'http');
  const queues = section(extensions, 'queues');
  const q = (key: string): unknown => pick(queues, key);
  const development = (env.AZURE_FUNCTIONS_ENVIRONMENT ?? 'Development').toLowerCase() === 'development';
  const cpus = env.WEBSITE_SKU === 'Dynamic' ? 1 : os.cpus().length;
  const batchSize = Math.min(32, Math.max(1, Number(q('batchSize') ?? 16)));
  const maxPolling =
    q('maxPollingInterval') !== undefined
      ? parseTimeSpan(q('maxPollingInterval'), 'extensions.queues.maxPollingInterval')
      : development
        ? 2000
        : 60_000;
  const hostId = (env.AzureFunctionsWebHost__hostid ?? defaultHostId(appDir)).toLowerCase().slice(0, 32);
  const routePrefix = pick(http, 'routePrefix');
  const singleton = section(json, 'singleton');
  return {
    singleton: readSingletonSettings(singleton),
    routePrefix: typeof routePrefix === 'string' ? routePrefix.replace(/^\/+|\/+$/g, '') : 'api',
    hostId,
    development,
    queues: {
      batchSize,
      newBatchThreshold:
        q('newBatchThreshold') !== undefined ? Number(q('newBatchThreshold')) : Math.floor(batchSize / 2) * cpus,
      maxDequeueCount: Number(q('maxDequeueCount') ?? 5),
      visibilityTimeoutSeconds:
        q('visibilityTimeout') !== undefined
          ? parseTimeSpan(q('visibilityTimeout'), 'extensions.queues.visibilityTimeout') / 1000
          : 0,
      maxPollingIntervalMs: Math.max(100, maxPolling),
      messageEncoding:
        (typeof q('messageEncoding') === 'string' ? (q('messageEncoding') as string) : 'base64').toLowerCase() ===
        'none'
          ? 'none'
          : 'base64',
    },
  };
}
