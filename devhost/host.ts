/**
 * The local Functions host: loads any @azure/functions v4 app folder through the real library and
 * runs its HTTP, storage-queue and timer triggers with the host's semantics, against the storage
 * account in the app's `AzureWebJobsStorage` (Azurite locally). It knows nothing of the app.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import fg from 'fast-glob';
import { CoreRegistry, installCoreModule, type RegisteredFunction, type TypedData } from './core';
import { authorised, compileRoute, emptyAnswer, matchRoute, readBody, requestKey, toRpcHttpInput, writeRpcResponse, type HttpRoute, type Keys } from './http';
import { invoke } from './invoke';
import { QueueService, outputMessages, type QueueListener } from './queues';
import { applyLocalSettings, readHostSettings, type HostSettings } from './settings';
import { ScheduleMonitor, TimerListener, parseSchedule, usesMonitor } from './timers';

export interface HostOptions {
  appDir: string;
  port: number;
  enforceAuth?: boolean;
  /** JSON file `{masterKey, functionKeys: {name: key}}`; created with random keys when absent. */
  secretsFile?: string;
  log?: (line: string) => void;
}

export interface RunningHost {
  url: string;
  keys: Keys;
  functions: string[];
  listing: string[];
  stop(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 30_000;

function loadKeys(file: string, log: (line: string) => void): Keys {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Keys;
  const keys: Keys = { masterKey: randomBytes(24).toString('base64url'), functionKeys: { default: randomBytes(24).toString('base64url') } };
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(keys, null, 2), { mode: 0o600 });
  log(`Created function keys in ${file}`);
  return keys;
}

async function loadApp(appDir: string, registry: CoreRegistry): Promise<void> {
  const pkg = JSON.parse(readFileSync(path.join(appDir, 'package.json'), 'utf8')) as { main?: string; type?: string };
  if (!pkg.main) throw new Error(`${appDir}/package.json has no "main" (a glob of the function files)`);
  const files = (await fg(pkg.main, { cwd: appDir, absolute: true })).sort();
  if (files.length === 0) throw new Error(`Found zero files matching the supplied pattern "${pkg.main}" in ${appDir} (did you build?)`);
  for (const file of files) {
    const esm = file.endsWith('.mjs') || (pkg.type === 'module' && !file.endsWith('.cjs'));
    if (esm) await import(pathToFileURL(file).href);
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- CommonJS app files load through require, as in the worker
    else require(file);
  }
  registry.lock();
}

function bindingsOf(fn: RegisteredFunction, type: string) {
  return Object.entries(fn.metadata.bindings).filter(([, b]) => b.type === type);
}

function triggerOf(fn: RegisteredFunction): [string, Record<string, unknown>] {
  const entry = Object.entries(fn.metadata.bindings).find(([, b]) => b.direction === 'in' && /Trigger$/.test(b.type));
  if (!entry) throw new Error(`Function '${fn.metadata.name}' has no trigger`);
  return entry;
}

export async function startHost(options: HostOptions): Promise<RunningHost> {
  const log = options.log ?? ((line: string) => console.log(`[${new Date().toISOString()}] ${line}`));
  const appDir = path.resolve(options.appDir);
  applyLocalSettings(appDir);
  const settings: HostSettings = readHostSettings(appDir);
  const keys = loadKeys(options.secretsFile ?? path.join(appDir, '.devhost', 'secrets.json'), log);

  const registry = new CoreRegistry((level, category, message) => {
    if (category !== 'user') log(`${level === 'error' ? 'ERROR ' : level === 'warning' ? 'WARN ' : ''}${message}`);
  });
  installCoreModule(registry);
  await loadApp(appDir, registry);
  const model = registry.programmingModel;
  if (!model) throw new Error('The app loaded but registered nothing (no @azure/functions app.* calls)');
  const capabilities = (await model.getCapabilities?.({})) ?? {};
  if (capabilities.HttpUri !== undefined) throw new Error('This app enables HTTP streaming (app.setup({ enableHttpStream: true })), which the devhost does not support; remove it to run locally');

  const functions = [...registry.functions.values()];
  const needsStorage = functions.some((fn) => !bindingsOf(fn, 'httpTrigger').length) || functions.some((fn) => bindingsOf(fn, 'queue').length > 0);
  const connection = process.env.AzureWebJobsStorage;
  if (needsStorage && !connection) throw new Error('AzureWebJobsStorage is not set: queue and timer triggers need a storage account (Azurite locally)');
  const queues = connection ? new QueueService(connection, settings.queues) : undefined;
  const monitor = connection ? new ScheduleMonitor(connection, settings.hostId) : undefined;

  async function writeOutputs(fn: RegisteredFunction, outputData: Array<{ name: string; data: TypedData }>, returnValue?: TypedData): Promise<void> {
    const all = [...outputData];
    if (returnValue !== undefined && fn.metadata.bindings.$return?.type === 'queue') all.push({ name: '$return', data: returnValue });
    for (const { name, data } of all) {
      const binding = fn.metadata.bindings[name];
      if (binding?.type !== 'queue') continue;
      if (!queues) throw new Error('queue output without storage');
      await queues.write(String(binding.queueName), outputMessages(data));
    }
  }

  for (const hook of registry.hooks.appStart) await hook({ hookData: {}, appHookData: registry.appHookData, functionAppDirectory: appDir });

  const listing: string[] = [];
  const url = `http://127.0.0.1:${options.port}`;
  const prefix = settings.routePrefix ? `/${settings.routePrefix}` : '';

  // HTTP
  const routes: HttpRoute[] = functions.map(compileRoute).filter((r): r is HttpRoute => r !== undefined);
  for (const route of routes) listing.push(`${route.fn.metadata.name}: [${route.methods.join(',')}] ${url}${prefix}/${route.template}`);

  // Queues
  const queueListeners: QueueListener[] = [];
  const byName = new Map<string, RegisteredFunction>();
  for (const fn of functions) {
    byName.set(fn.metadata.name.toLowerCase(), fn);
    const [triggerName, trigger] = triggerOf(fn);
    if (trigger.type !== 'queueTrigger') continue;
    const queueName = String(trigger.queueName).replace(/%([^%]+)%/g, (_m, s: string) => process.env[s] ?? '').toLowerCase();
    listing.push(`${fn.metadata.name}: queueTrigger (${queueName})`);
    queueListeners.push(
      queues!.listen(queueName, async (text, triggerMetadata) => {
        const result = await invoke(registry, fn, { inputData: [{ name: triggerName, data: { string: text } }], triggerMetadata }, log, `New queue message detected on '${queueName}'.`);
        await writeOutputs(fn, result.outputData, result.returnValue);
      }, log),
    );
  }

  // Timers
  const timers = new Map<string, TimerListener>();
  for (const fn of functions) {
    const [triggerName, trigger] = triggerOf(fn);
    if (trigger.type !== 'timerTrigger') continue;
    const schedule = parseSchedule(String(trigger.schedule));
    listing.push(`${fn.metadata.name}: timerTrigger (${schedule.text})`);
    const listener = new TimerListener(fn.metadata.name, schedule, { runOnStartup: trigger.runOnStartup === true, monitor: usesMonitor(schedule, trigger.useMonitor as boolean | undefined) ? monitor : undefined }, async (input) => {
      const result = await invoke(registry, fn, { inputData: [{ name: triggerName, data: { json: JSON.stringify(input) } }] }, log, input.IsPastDue ? 'Timer fired (past due)' : 'Timer fired');
      await writeOutputs(fn, result.outputData, result.returnValue);
    }, log);
    timers.set(fn.metadata.name.toLowerCase(), listener);
  }

  const server = http.createServer((request, response) => {
    void (async () => {
      const requestUrl = new URL(request.url ?? '/', url);
      const pathname = requestUrl.pathname.replace(/\/+$/, '');
      try {
        // Admin API: invoke a non-HTTP function (master key), as the host's /admin/functions/{name}.
        const admin = /^\/admin\/functions\/([^/]+)$/i.exec(pathname);
        if (admin && request.method === 'POST') {
          if (requestKey(request, requestUrl) !== keys.masterKey && options.enforceAuth !== false) return emptyAnswer(response, 401);
          const fn = byName.get(decodeURIComponent(admin[1]).toLowerCase());
          if (!fn) return emptyAnswer(response, 404);
          const body = JSON.parse((await readBody(request)).toString('utf8') || '{}') as { input?: string };
          const timer = timers.get(fn.metadata.name.toLowerCase());
          const [triggerName] = triggerOf(fn);
          response.writeHead(202, { 'Content-Length': '0' }).end();
          if (timer) await timer.runNow();
          else await invoke(registry, fn, { inputData: [{ name: triggerName, data: { string: body.input ?? '' } }] }, log, 'Manually invoked').then((r) => writeOutputs(fn, r.outputData, r.returnValue));
          return;
        }
        if (prefix && !(pathname === prefix || pathname.startsWith(`${prefix}/`))) return emptyAnswer(response, 404);
        const parts = pathname.slice(prefix.length).split('/').filter((p) => p !== '');
        let found: { route: HttpRoute; params: Record<string, string> } | undefined;
        for (const route of routes) {
          const params = matchRoute(route, parts);
          if (params && route.methods.includes(request.method ?? 'GET')) {
            found = { route, params };
            break;
          }
        }
        if (!found) return emptyAnswer(response, 404);
        if (options.enforceAuth && !authorised(found.route.authLevel, requestKey(request, requestUrl), keys)) return emptyAnswer(response, 401);
        const body = await readBody(request);
        const { fn, triggerName } = found.route;
        const result = await invoke(registry, fn, { inputData: [{ name: triggerName, data: toRpcHttpInput(request, requestUrl, found.params, body) }] }, log, `This function was programmatically called via the host APIs.`);
        // Outputs are written before the HTTP response, and only on success.
        await writeOutputs(fn, result.outputData);
        writeRpcResponse(response, result.returnValue);
      } catch (error) {
        if (!response.headersSent) emptyAnswer(response, (error as { status?: number }).status ?? 500);
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  for (const timer of timers.values()) await timer.start();

  let stopping: Promise<void> | undefined;
  return {
    url,
    keys,
    functions: functions.map((f) => f.metadata.name),
    listing,
    stop() {
      stopping ??= (async () => {
        server.close();
        await Promise.all([...timers.values()].map((t) => t.stop()));
        await Promise.all(queueListeners.map((q) => q.stop(SHUTDOWN_GRACE_MS)));
        for (const hook of registry.hooks.appTerminate) await hook({ hookData: {}, appHookData: registry.appHookData });
        server.closeAllConnections();
      })();
      return stopping;
    },
  };
}
