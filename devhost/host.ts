/**
 * The local Functions host: loads any @azure/functions v4 app folder through the real library and
 * runs its HTTP, storage-queue and timer triggers with the host's semantics, against the storage
 * account in the app's `AzureWebJobsStorage` (Azurite locally). It knows nothing of the app.
 *
 * Start-up follows the worker and the host: local.settings.json → environment, host.json, the
 * `@azure/functions-core` shim, the `main` files, `appStart` hooks, the worker capabilities (which
 * is where HTTP streaming would start its proxy), then the metadata read that locks registration,
 * then listeners. Shutdown: stop HTTP and timers, stop fetching messages, let handlers finish within
 * a bound, make the rest visible again, run `appTerminate`.
 */
import http from 'node:http';
import path from 'node:path';
import {
  activateRegistry,
  CoreRegistry,
  programmingModelOf,
  type LogCategory,
  type LogLevel,
  type RegisteredFunction,
  type TypedData,
} from './core';
import {
  authorised,
  compareRoutes,
  compileRoute,
  emptyAnswer,
  loopbackHost,
  matchRoute,
  readBody,
  requestKey,
  toRpcHttpInput,
  writeRpcResponse,
  type HttpRoute,
} from './http';
import { invoke } from './invoke';
import { loadKeys, sameKey, type Keys } from './keys';
import { loadApp } from './loader';
import { QueueService, outputMessages, type QueueListener } from './queues';
import { applyLocalSettings, readHostSettings, type HostSettings } from './settings';
import { BlobLeaseLock, SingletonListener, type InnerListener } from './singleton';
import { ScheduleMonitor, TimerListener, parseSchedule, usesMonitor } from './timers';

export interface HostOptions {
  appDir: string;
  port: number;
  /** Environment for the app, set on process.env before anything loads (wins over local.settings.json). */
  env?: Record<string, string>;
  /** Check keys on `function`/`admin` routes and the admin API (the container does; `func start` does not). */
  enforceAuth?: boolean;
  /** JSON file `{masterKey, functionKeys: {name: key}}`; created with random keys when absent. Default `<app>/.devhost/secrets.json`. */
  secretsFile?: string;
  /** How long running handlers may take to finish at shutdown before their messages are released. */
  shutdownGraceMs?: number;
  /** Host names served besides loopback ones (default `DEVHOST_ALLOWED_HOSTS`, comma-separated). */
  allowedHosts?: string[];
  log?: (line: string) => void;
}

export interface RunningHost {
  url: string;
  keys: Keys;
  masterKey: string;
  /** The `default` function key (any function key works for `function`-level routes). */
  functionKey: string;
  hostId: string;
  functions: string[];
  /** One line per function, as `func start` prints them. */
  listing: string[];
  stop(): Promise<void>;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;
const SUPPORTED_TRIGGERS = new Set(['httpTrigger', 'queueTrigger', 'timerTrigger']);

function triggerOf(fn: RegisteredFunction): [string, Record<string, unknown>] {
  const entry = Object.entries(fn.metadata.bindings).find(([, b]) => b.direction === 'in' && /Trigger$/i.test(b.type));
  if (!entry) throw new Error(`Function '${fn.metadata.name}' has no trigger binding`);
  return entry;
}

/** `%Setting%` in binding properties names an app setting (the host's name resolver). */
function resolveSettings(text: string, what: string): string {
  return text.replace(/%([^%]+)%/g, (_m, name: string) => {
    const value = process.env[name];
    if (value === undefined) throw new Error(`${what} refers to app setting '${name}', which is not set`);
    return value;
  });
}

function levelPrefix(level: LogLevel): string {
  return level === 'error' || level === 'critical' ? 'ERROR ' : level === 'warning' ? 'WARN ' : '';
}

export async function startHost(options: HostOptions): Promise<RunningHost> {
  const log = options.log ?? ((line: string) => console.log(`[${new Date().toISOString()}] ${line}`));
  const appDir = path.resolve(options.appDir);
  for (const [key, value] of Object.entries(options.env ?? {})) process.env[key] = value;
  applyLocalSettings(appDir);
  const settings: HostSettings = readHostSettings(appDir);
  const enforceAuth = options.enforceAuth ?? /^(1|true|yes)$/i.test(process.env.DEVHOST_ENFORCE_AUTH ?? '');
  const keys = loadKeys(
    options.secretsFile ?? process.env.DEVHOST_SECRETS_FILE ?? path.join(appDir, '.devhost', 'secrets.json'),
    log,
  );
  const shutdownGraceMs =
    options.shutdownGraceMs ?? (Number(process.env.DEVHOST_SHUTDOWN_GRACE_MS) || DEFAULT_SHUTDOWN_GRACE_MS);
  const allowedHosts =
    options.allowedHosts ?? (process.env.DEVHOST_ALLOWED_HOSTS ?? '').split(',').filter((h) => h.trim() !== '');

  // Debug-level system lines (the library's own chatter) stay out of the console, as in func start.
  const registry = new CoreRegistry(
    (level: LogLevel, category: LogCategory, message: string, functionName?: string) => {
      if (category === 'system' && (level === 'debug' || level === 'trace')) return;
      log(`${levelPrefix(level)}${functionName && category === 'user' ? `${functionName}: ` : ''}${message}`);
    },
  );
  const deactivate = activateRegistry(registry);
  let started = false;
  try {
    await loadApp(appDir, (line) => registry.log('debug', 'system', line));
    for (const hook of registry.hooks.appStart)
      await hook({
        hookData: registry.appLevelOnlyHookData,
        appHookData: registry.appHookData,
        functionAppDirectory: appDir,
      });
    const model = programmingModelOf(registry);
    if (!model) throw new Error(`The app in ${appDir} loaded but registered nothing (no @azure/functions app.* calls)`);
    const capabilities = (await model.getCapabilities?.({})) ?? {};
    if (capabilities.HttpUri !== undefined) {
      throw new Error(
        'This app enables HTTP streaming (app.setup({ enableHttpStream: true })), which the devhost does not implement: requests would hang. Remove enableHttpStream (or make it conditional) to run the app locally.',
      );
    }
    registry.lock();
    const running = await startListeners(
      registry,
      settings,
      { enforceAuth, allowedHosts, keys },
      shutdownGraceMs,
      options.port,
      log,
    );
    started = true;
    let stopping: Promise<void> | undefined;
    return {
      ...running,
      keys,
      masterKey: keys.masterKey,
      functionKey: keys.functionKeys.default ?? Object.values(keys.functionKeys)[0] ?? '',
      hostId: settings.hostId,
      stop() {
        stopping ??= running.stop().finally(deactivate);
        return stopping;
      },
    };
  } finally {
    if (!started) deactivate();
  }
}

/** What the listeners share: the registry, the settings, the log and storage (when a trigger needs it). */
interface ListenerContext {
  registry: CoreRegistry;
  settings: HostSettings;
  log: (line: string) => void;
  queues?: QueueService;
  monitor?: ScheduleMonitor;
  /** The blob lease that makes a timer's listener a singleton among instances with this host id. */
  listenerLock?: (functionName: string) => BlobLeaseLock;
  url: string;
}

/** Each function bound to its trigger: HTTP routes, queue listeners and timers, and `func start`'s listing. */
interface Bindings {
  routes: HttpRoute[];
  queueListeners: QueueListener[];
  timers: Map<string, TimerListener>;
  /** What starts and stops the timers: each timer behind its singleton lock. */
  timerListeners: InnerListener[];
  byName: Map<string, RegisteredFunction>;
  listing: string[];
}

/** Queue and timer triggers and queue outputs need the storage account; without them none is opened. */
function openStorage(functions: RegisteredFunction[], settings: HostSettings) {
  const usesStorage = functions.some((fn) => {
    const type = triggerOf(fn)[1].type;
    return (
      type === 'queueTrigger' ||
      type === 'timerTrigger' ||
      Object.values(fn.metadata.bindings).some((b) => b.type === 'queue')
    );
  });
  const connection = process.env.AzureWebJobsStorage;
  if (usesStorage && !connection)
    throw new Error(
      'AzureWebJobsStorage is not set: queue and timer triggers and queue outputs need a storage account (Azurite locally, e.g. UseDevelopmentStorage=true)',
    );
  return {
    queues: connection ? new QueueService(connection, settings.queues) : undefined,
    monitor: connection ? new ScheduleMonitor(connection, settings.hostId) : undefined,
    listenerLock: connection
      ? (name: string) =>
          BlobLeaseLock.forListener(connection, settings.hostId, name, settings.singleton.listenerLockPeriodMs)
      : undefined,
  };
}

/** Queue outputs ($return or extraOutputs), written after the handler succeeded, in binding order. */
async function writeOutputs(
  context: ListenerContext,
  fn: RegisteredFunction,
  outputData: Array<{ name: string; data: TypedData }>,
  returnValue?: TypedData,
): Promise<void> {
  const all = [...outputData];
  if (returnValue !== undefined && fn.metadata.bindings.$return?.type === 'queue')
    all.push({ name: '$return', data: returnValue });
  for (const { name, data } of all) {
    const binding = fn.metadata.bindings[name];
    if (binding?.type !== 'queue') continue;
    await context.queues!.write(
      resolveSettings(String(binding.queueName), `Function '${fn.metadata.name}' output '${name}'`),
      outputMessages(data),
    );
  }
}

/** Runs one invocation and writes its queue outputs, as the host does after success. */
async function invokeAndWrite(
  context: ListenerContext,
  fn: RegisteredFunction,
  inputData: Parameters<typeof invoke>[2],
  reason: string,
  withReturn = true,
) {
  const result = await invoke(context.registry, fn, inputData, context.log, reason);
  await writeOutputs(context, fn, result.outputData, withReturn ? result.returnValue : undefined);
  return result;
}

function bindTriggers(context: ListenerContext, functions: RegisteredFunction[]): Bindings {
  const { settings, log, url } = context;
  const prefix = settings.routePrefix ? `/${settings.routePrefix}` : '';
  const bindings: Bindings = {
    routes: [],
    queueListeners: [],
    timers: new Map(),
    timerListeners: [],
    byName: new Map(),
    listing: [],
  };
  for (const fn of functions) {
    const name = fn.metadata.name;
    bindings.byName.set(name.toLowerCase(), fn);
    const [triggerName, trigger] = triggerOf(fn);
    if (trigger.type === 'httpTrigger') {
      const route = compileRoute(fn)!;
      bindings.routes.push(route);
      bindings.listing.push(`${name}: [${route.methods.join(',')}] ${url}${prefix}/${route.template}`);
    } else if (trigger.type === 'queueTrigger') {
      // The host lowercases queue names and resolves %settings% (QueueTriggerAttributeBindingProvider).
      const queueName = resolveSettings(String(trigger.queueName), `Function '${name}' queueName`).toLowerCase();
      bindings.listing.push(`${name}: queueTrigger (${queueName})`);
      bindings.queueListeners.push(
        context.queues!.listen(
          queueName,
          async (text, triggerMetadata) => {
            await invokeAndWrite(
              context,
              fn,
              { inputData: [{ name: triggerName, data: { string: text } }], triggerMetadata },
              `New queue message detected on '${queueName}'.`,
            );
          },
          log,
        ),
      );
    } else if (trigger.type === 'timerTrigger') {
      const schedule = parseSchedule(String(trigger.schedule));
      bindings.listing.push(`${name}: timerTrigger (${schedule.text})`);
      const listener = new TimerListener(
        name,
        schedule,
        {
          runOnStartup: trigger.runOnStartup === true,
          monitor: usesMonitor(schedule, trigger.useMonitor as boolean | undefined) ? context.monitor : undefined,
        },
        async (input) => {
          await invokeAndWrite(
            context,
            fn,
            { inputData: [{ name: triggerName, data: { json: JSON.stringify(input) } }] },
            input.IsPastDue ? 'Timer fired (past due)' : 'Timer fired',
          );
        },
        log,
      );
      bindings.timers.set(name.toLowerCase(), listener);
      bindings.timerListeners.push(
        context.listenerLock
          ? new SingletonListener(context.listenerLock(name), listener, settings.singleton, log)
          : listener,
      );
    } else if (!SUPPORTED_TRIGGERS.has(String(trigger.type))) {
      // Not silently: the function exists in production but never runs here.
      bindings.listing.push(
        `${name}: ${String(trigger.type)} (NOT SUPPORTED by the devhost: never triggered; POST /admin/functions/${name} invokes it)`,
      );
    }
  }
  bindings.routes.sort(compareRoutes);
  return bindings;
}

/** The admin API's invoke (POST /admin/functions/{name}, body {"input": "..."}), answered 202 like the host. */
async function adminInvoke(
  context: ListenerContext,
  bindings: Bindings,
  fn: RegisteredFunction,
  input: string,
): Promise<void> {
  const timer = bindings.timers.get(fn.metadata.name.toLowerCase());
  if (timer) return timer.runNow();
  const [triggerName] = triggerOf(fn);
  await invokeAndWrite(
    context,
    fn,
    { inputData: [{ name: triggerName, data: { string: input } }] },
    'This function was programmatically called via the host APIs.',
  );
}

interface Access {
  enforceAuth: boolean;
  allowedHosts: string[];
  keys: Keys;
}

function refuseForeignHost(request: http.IncomingMessage, response: http.ServerResponse, context: ListenerContext) {
  context.log(
    `WARN Refused a request for Host ${JSON.stringify(String(request.headers.host ?? '(none)').slice(0, 100))}: not a loopback name (DEVHOST_ALLOWED_HOSTS adds names)`,
  );
  const text = 'This host serves only requests addressed to a loopback name (localhost, 127.0.0.1, [::1]).\n';
  response
    .writeHead(403, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)) })
    .end(text);
}

async function answerAdmin(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  requestUrl: URL,
  functionName: string,
  { context, bindings, access }: { context: ListenerContext; bindings: Bindings; access: Access },
): Promise<void> {
  if (request.method !== 'POST') return emptyAnswer(response, 404);
  if (access.enforceAuth && !sameKey(requestKey(request, requestUrl), access.keys.masterKey))
    return emptyAnswer(response, 401);
  const fn = bindings.byName.get(decodeURIComponent(functionName).toLowerCase());
  if (!fn) return emptyAnswer(response, 404);
  const text = (await readBody(request)).toString('utf8');
  let input: string;
  try {
    const given = (JSON.parse(text || '{}') as { input?: unknown }).input;
    input = typeof given === 'string' ? given : given === undefined ? '' : JSON.stringify(given);
  } catch {
    return emptyAnswer(response, 400);
  }
  response.writeHead(202, { 'Content-Length': '0' }).end();
  await adminInvoke(context, bindings, fn, input).catch(() => undefined); // failures are logged by the invocation
}

async function answerRoute(
  request: http.IncomingMessage,
  response: http.ServerResponse,
  requestUrl: URL,
  pathname: string,
  { context, bindings, access }: { context: ListenerContext; bindings: Bindings; access: Access },
): Promise<void> {
  const prefix = context.settings.routePrefix ? `/${context.settings.routePrefix}` : '';
  if (prefix && !(pathname === prefix || pathname.startsWith(`${prefix}/`))) return emptyAnswer(response, 404);
  const parts = pathname
    .slice(prefix.length)
    .split('/')
    .filter((p) => p !== '');
  let found: { route: HttpRoute; params: Record<string, string> } | undefined;
  for (const route of bindings.routes) {
    const params = matchRoute(route, parts);
    if (params && route.methods.includes(request.method ?? 'GET')) {
      found = { route, params };
      break;
    }
  }
  if (!found) return emptyAnswer(response, 404);
  if (access.enforceAuth && !authorised(found.route.authLevel, requestKey(request, requestUrl), access.keys))
    return emptyAnswer(response, 401);
  const body = await readBody(request);
  const { fn, triggerName } = found.route;
  // Outputs are written before the HTTP response, and only on success (WorkerFunctionInvoker).
  const result = await invokeAndWrite(
    context,
    fn,
    { inputData: [{ name: triggerName, data: toRpcHttpInput(request, requestUrl, found.params, body) }] },
    'This function was programmatically called via the host APIs.',
    false,
  );
  writeRpcResponse(response, result.returnValue);
}

function requestHandler(context: ListenerContext, bindings: Bindings, access: Access): http.RequestListener {
  const shared = { context, bindings, access };
  return (request, response) => {
    void (async () => {
      if (!loopbackHost(request.headers.host, access.allowedHosts))
        return refuseForeignHost(request, response, context);
      const requestUrl = new URL(request.url ?? '/', context.url);
      const pathname = requestUrl.pathname.replace(/\/+$/, '');
      try {
        const admin = /^\/admin\/functions\/([^/]+)$/i.exec(pathname);
        if (admin) await answerAdmin(request, response, requestUrl, admin[1], shared);
        else await answerRoute(request, response, requestUrl, pathname, shared);
      } catch (error) {
        if (!response.headersSent) emptyAnswer(response, (error as { status?: number }).status ?? 500);
      }
    })();
  };
}

async function listen(server: http.Server, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(error.code === 'EADDRINUSE' ? new Error(`Port ${port} is in use (--port to choose another)`) : error),
    );
    server.listen(port, '127.0.0.1', resolve);
  });
}

async function startListeners(
  registry: CoreRegistry,
  settings: HostSettings,
  access: Access,
  shutdownGraceMs: number,
  port: number,
  log: (line: string) => void,
): Promise<{ url: string; functions: string[]; listing: string[]; stop(): Promise<void> }> {
  const functions = [...registry.functions.values()];
  const url = `http://127.0.0.1:${port}`;
  const context: ListenerContext = { registry, settings, log, url, ...openStorage(functions, settings) };
  const bindings = bindTriggers(context, functions);
  const { timerListeners, queueListeners } = bindings;
  const server = http.createServer(requestHandler(context, bindings, access));
  await listen(server, port);
  try {
    for (const timer of timerListeners) await timer.start();
  } catch (error) {
    server.close();
    await Promise.all(queueListeners.map((q) => q.stop(0)));
    throw error;
  }

  return {
    url,
    functions: functions.map((f) => f.metadata.name),
    listing: bindings.listing,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // A hung timer handler must not hold shutdown forever either.
      await Promise.race([
        Promise.all(timerListeners.map((t) => t.stop())),
        new Promise((resolve) => setTimeout(resolve, shutdownGraceMs).unref()),
      ]);
      await Promise.all(queueListeners.map((q) => q.stop(shutdownGraceMs)));
      for (const hook of registry.hooks.appTerminate)
        await hook({ hookData: registry.appLevelOnlyHookData, appHookData: registry.appHookData });
      server.closeAllConnections();
      await closed;
    },
  };
}
