/**
 * The `@azure/functions-core` module the Node worker gives the app: registration, hooks, the
 * programming model and a log sink (worker src/setupCoreModule.ts, src/WorkerContext.ts).
 *
 * Why it is installed into the module loader before the app loads: the library looks the module up
 * lazily on its first `app.*` call, from CommonJS, and caches the answer, a failure included (it then
 * silently switches to "test mode" and registers nothing). So the shim must already answer then.
 *
 * Why one process-wide shim that forwards to the *current* registry: the library (and its cached
 * core API) stays in Node's module caches after a host stops, ESM caches cannot be cleared at all, so
 * a second in-process host must be reachable through the very same object the library cached.
 */
import Module from 'node:module';

export type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation' | 'log';
export type LogLevel = 'trace' | 'debug' | 'information' | 'warning' | 'error' | 'critical' | 'none';
export type LogCategory = 'user' | 'system' | 'customMetric';

export interface FunctionMetadata {
  name: string;
  functionId?: string;
  bindings: Record<string, { type: string; direction: 'in' | 'out'; [key: string]: unknown }>;
  retryOptions?: unknown;
}

export interface RegisteredFunction {
  metadata: FunctionMetadata;
  callback: (...args: unknown[]) => unknown;
}

export interface InvocationModelLike {
  getArguments(): Promise<{ context: unknown; inputs: unknown[] }>;
  invokeFunction(context: unknown, inputs: unknown[], handler: (...args: unknown[]) => unknown): Promise<unknown>;
  getResponse(
    context: unknown,
    result: unknown,
  ): Promise<{ invocationId: string; outputData?: Array<{ name: string; data: TypedData }>; returnValue?: TypedData }>;
}

export interface ProgrammingModelLike {
  name: string;
  version: string;
  getInvocationModel(coreContext: unknown): InvocationModelLike;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

/** The RPC TypedData the library converts from and to (lib src/converters/*RpcTypedData.ts). */
export interface TypedData {
  string?: string;
  json?: string;
  bytes?: Uint8Array;
  stream?: Uint8Array;
  http?: unknown;
  int?: number;
  double?: number;
}

type Hook = (context: Record<string, unknown>) => unknown;
export type LogSink = (level: LogLevel, category: LogCategory, message: string, functionName?: string) => void;

/** What a log hook may see of the invocation that logged (worker InvocationLogContext). */
export interface InvocationLogContext {
  hookData: Record<string, unknown>;
  invocationContext: unknown;
  functionName?: string;
}

export class CoreRegistry {
  readonly functions = new Map<string, RegisteredFunction>();
  readonly hooks: Record<HookName, Hook[]> = {
    appStart: [],
    appTerminate: [],
    preInvocation: [],
    postInvocation: [],
    log: [],
  };
  programmingModel?: ProgrammingModelLike;
  /** Shared by every hook of the app's lifetime (the worker's appHookData). */
  readonly appHookData: Record<string, unknown> = {};
  /** Shared by appStart and appTerminate only (the worker's appLevelOnlyHookData). */
  readonly appLevelOnlyHookData: Record<string, unknown> = {};
  private locked = false;

  constructor(private readonly sink: LogSink) {}

  /** The host asked for function metadata: from now on registering is an error, as in the worker. */
  lock(): void {
    this.locked = true;
  }

  /**
   * One log line through the `log` hooks, then to the sink. Hooks may change the level and message
   * of user logs only, and a throwing hook cannot suppress the log (worker WorkerContext.log).
   */
  log(level: LogLevel, category: LogCategory, message: string, invocation?: InvocationLogContext): void {
    const appHookData = this.appHookData;
    const hookData = invocation?.hookData ?? {};
    const context = {
      level,
      message,
      get category() {
        return category;
      },
      get hookData() {
        return hookData;
      },
      get appHookData() {
        return appHookData;
      },
      get invocationContext() {
        return invocation?.invocationContext;
      },
    };
    try {
      for (const hook of this.hooks.log) void hook(context);
      if (category === 'user') {
        level = context.level;
        message = context.message;
      }
    } catch {
      // user hooks must not prevent logs
    }
    this.sink(level, category, message, invocation?.functionName);
  }

  registerFunction(metadata: FunctionMetadata, callback: RegisteredFunction['callback']): Disposable {
    if (this.locked) throw new Error('A function can only be registered during app startup.');
    // The worker keys functions by functionId, defaulting to the name (wkr coreApi/registerFunction.ts).
    const id = metadata.functionId ?? metadata.name;
    if (this.functions.has(id)) throw new Error(`A function with id "${id}" has already been registered.`);
    this.functions.set(id, { metadata: { ...metadata, functionId: id }, callback });
    return new Disposable(() => {
      if (this.locked) throw new Error('A function can only be disposed during app startup.');
      this.functions.delete(id);
    });
  }

  registerHook(name: string, callback: Hook): Disposable {
    if (!(name in this.hooks))
      throw Object.assign(new RangeError(`Unrecognized hook "${name}"`), { isAzureFunctionsSystemError: true });
    const list = this.hooks[name as HookName];
    list.push(callback);
    return new Disposable(() => {
      const at = list.indexOf(callback);
      if (at >= 0) list.splice(at, 1);
    });
  }
}

export class Disposable {
  constructor(private readonly callOnDispose: () => void) {}
  dispose(): void {
    this.callOnDispose();
  }
  static from(...items: Array<{ dispose(): void }>): Disposable {
    return new Disposable(() => items.forEach((i) => i.dispose()));
  }
}

interface Shim {
  current?: CoreRegistry;
  /** The last model any copy of the library set: a library copy loaded once sets it once per process. */
  lastModel?: ProgrammingModelLike;
  api: Record<string, unknown>;
}

const SHIM_KEY = Symbol.for('autorthanc.devhost.functions-core');
const CORE_ID = '@azure/functions-core';

function shim(): Shim {
  const holder = globalThis as unknown as Record<symbol, Shim | undefined>;
  const existing = holder[SHIM_KEY];
  if (existing) return existing;
  const state: Shim = { api: {} };
  const registry = (): CoreRegistry => {
    if (!state.current) throw new Error('@azure/functions-core: no devhost is running in this process');
    return state.current;
  };
  state.api = {
    version: '3.12.0',
    hostVersion: '4.1041.200',
    registerFunction: (metadata: FunctionMetadata, callback: RegisteredFunction['callback']) =>
      registry().registerFunction(metadata, callback),
    registerHook: (name: string, callback: Hook) => registry().registerHook(name, callback),
    setProgrammingModel: (model: ProgrammingModelLike) => {
      state.lastModel = model;
      if (state.current) state.current.programmingModel = model;
    },
    getProgrammingModel: () => state.current?.programmingModel ?? state.lastModel,
    log: (level: LogLevel, category: LogCategory, message: string) => state.current?.log(level, category, message),
    Disposable,
  };
  // Both entry points of CommonJS loading answer the built-in module: `Module.prototype.require`
  // (what the worker patches; every `require` goes through it) and `Module._load` (what
  // `createRequire()` functions and ESM-to-CJS interop call directly).
  const loader = Module as unknown as { _load: (request: string, parent: unknown, isMain: boolean) => unknown };
  const originalLoad = loader._load;
  loader._load = function load(request: string, parent: unknown, isMain: boolean) {
    if (request === CORE_ID) return state.api;
    return originalLoad.call(this, request, parent, isMain);
  };
  const proto = Module.prototype as unknown as { require: (id: string) => unknown };
  proto.require = new Proxy(proto.require, {
    apply(target, thisArg, args: [string]) {
      if (args[0] === CORE_ID) return state.api;
      return Reflect.apply<unknown, [string], unknown>(target, thisArg, args);
    },
  });
  holder[SHIM_KEY] = state;
  return state;
}

/**
 * Makes `require('@azure/functions-core')` answer for this registry (installing the shim once per
 * process). Returns a function that detaches the registry again.
 */
export function activateRegistry(registry: CoreRegistry): () => void {
  const state = shim();
  if (state.current && state.current !== registry)
    throw new Error(
      'Another devhost is already running in this process (one at a time in-process; use child processes for more)',
    );
  state.current = registry;
  return () => {
    if (state.current === registry) state.current = undefined;
  };
}

/** The model the app's library set, or the one a library copy cached in this process set earlier. */
export function programmingModelOf(registry: CoreRegistry): ProgrammingModelLike | undefined {
  return registry.programmingModel ?? shim().lastModel;
}
