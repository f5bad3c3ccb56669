/**
 * The `@azure/functions-core` module the Node worker gives the app: registration, hooks, the
 * programming model and a log sink. It is installed into the module loader before the app loads,
 * because the library looks it up lazily on its first `app.*` call and caches a failure.
 */
import Module from 'node:module';

export type HookName = 'appStart' | 'appTerminate' | 'preInvocation' | 'postInvocation' | 'log';

export interface FunctionMetadata {
  name: string;
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
  getResponse(context: unknown, result: unknown): Promise<{ invocationId: string; outputData?: Array<{ name: string; data: TypedData }>; returnValue?: TypedData }>;
}

export interface ProgrammingModelLike {
  name: string;
  version: string;
  getInvocationModel(coreContext: unknown): InvocationModelLike;
  getCapabilities?(capabilities: Record<string, string>): Promise<Record<string, string>>;
}

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
export type LogSink = (level: string, category: string, message: string) => void;

export class CoreRegistry {
  readonly functions = new Map<string, RegisteredFunction>();
  readonly hooks: Record<HookName, Hook[]> = { appStart: [], appTerminate: [], preInvocation: [], postInvocation: [], log: [] };
  programmingModel?: ProgrammingModelLike;
  /** Shared by every hook of the app's lifetime (the worker's appHookData). */
  readonly appHookData: Record<string, unknown> = {};
  private locked = false;

  constructor(private readonly sink: LogSink) {}

  lock(): void {
    this.locked = true;
  }

  /** The object `require('@azure/functions-core')` returns. */
  api(): Record<string, unknown> {
    return {
      version: '3.10.1',
      hostVersion: '4.1037.0',
      registerFunction: (metadata: FunctionMetadata, callback: RegisteredFunction['callback']) => {
        if (this.locked) throw new Error('A function can only be registered during app startup.');
        if (this.functions.has(metadata.name)) throw new Error(`A function with name "${metadata.name}" has already been registered.`);
        this.functions.set(metadata.name, { metadata, callback });
        return new Disposable(() => this.functions.delete(metadata.name));
      },
      registerHook: (name: string, callback: Hook) => {
        if (!(name in this.hooks)) throw new RangeError(`Unrecognized hook "${name}"`);
        const list = this.hooks[name as HookName];
        list.push(callback);
        return new Disposable(() => list.splice(list.indexOf(callback), 1));
      },
      setProgrammingModel: (model: ProgrammingModelLike) => {
        this.programmingModel = model;
      },
      getProgrammingModel: () => this.programmingModel,
      log: (level: string, category: string, message: string) => this.sink(level, category, message),
      Disposable,
    };
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

type RequireFn = (this: NodeJS.Module, id: string) => unknown;

/** Makes `require('@azure/functions-core')` answer with the registry's API, as the worker does. */
export function installCoreModule(registry: CoreRegistry): () => void {
  const proto = Module.prototype as unknown as { require: RequireFn };
  const original = proto.require;
  const api = registry.api();
  proto.require = function patched(this: NodeJS.Module, id: string) {
    if (id === '@azure/functions-core') return api;
    return original.call(this, id);
  };
  return () => {
    proto.require = original;
  };
}
