/**
 * One invocation, in the worker's order (wkr src/eventHandlers/InvocationHandler.ts): build the core
 * context, let the library's InvocationModel convert inputs, run preInvocation hooks (which may swap
 * inputs and the handler), call the handler, run postInvocation hooks (which may swap the result or
 * the error), then convert outputs. The conversions are the library's own, so what a handler gets and
 * what the host gets back are exactly production's.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  programmingModelOf,
  type CoreRegistry,
  type InvocationLogContext,
  type LogCategory,
  type LogLevel,
  type RegisteredFunction,
  type TypedData,
} from './core';

export interface InvocationRequest {
  inputData: Array<{ name: string; data: TypedData }>;
  triggerMetadata?: Record<string, TypedData>;
}

export interface InvocationResult {
  invocationId: string;
  outputData: Array<{ name: string; data: TypedData }>;
  returnValue?: TypedData;
}

export type Logger = (line: string) => void;

export async function invoke(
  registry: CoreRegistry,
  fn: RegisteredFunction,
  request: InvocationRequest,
  log: Logger,
  reason: string,
): Promise<InvocationResult> {
  const model = programmingModelOf(registry);
  if (!model) throw new Error('The app registered no programming model (is @azure/functions loaded?)');
  const invocationId = randomUUID();
  const name = fn.metadata.name;
  const started = Date.now();
  // The host's own lines, worded as the host words them, so logs read like `func start`.
  log(`Executing 'Functions.${name}' (Reason='${reason}', Id=${invocationId})`);
  const hookData: Record<string, unknown> = {};
  const logContext: InvocationLogContext = { hookData, invocationContext: undefined, functionName: name };
  const coreContext = {
    invocationId,
    request: {
      invocationId,
      functionId: fn.metadata.functionId ?? name,
      inputData: request.inputData,
      triggerMetadata: request.triggerMetadata ?? {},
      // A W3C traceparent, as the host sends, so OpenTelemetry hooks have a parent to bind to.
      traceContext: {
        traceParent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`,
        traceState: '',
        attributes: {},
      },
      retryContext: undefined,
    },
    metadata: fn.metadata,
    state: undefined as string | undefined,
    log: (level: LogLevel, category: LogCategory, message: string) =>
      registry.log(level, category, message, logContext),
  };
  try {
    const invocationModel = model.getInvocationModel(coreContext);
    const { context, inputs } = await invocationModel.getArguments();
    logContext.invocationContext = context;
    const appHookData = registry.appHookData;
    const pre = { invocationContext: context, inputs, functionCallback: fn.callback, hookData, appHookData };
    coreContext.state = 'preInvocationHooks';
    for (const hook of registry.hooks.preInvocation) await hook(pre);
    coreContext.state = 'invocation';
    const post = {
      invocationContext: context,
      inputs: pre.inputs,
      result: null as unknown,
      error: null as unknown,
      hookData,
      appHookData,
    };
    try {
      post.result = await invocationModel.invokeFunction(context, pre.inputs, pre.functionCallback);
    } catch (e) {
      post.error = e;
    }
    coreContext.state = 'postInvocationHooks';
    for (const hook of registry.hooks.postInvocation) await hook(post);
    coreContext.state = undefined;
    // A postInvocation hook may clear the error, turning a failure into a success.
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows what the function threw, as the host does
    if (post.error !== null && post.error !== undefined) throw post.error;
    const response = await invocationModel.getResponse(context, post.result);
    log(`Executed 'Functions.${name}' (Succeeded, Id=${invocationId}, Duration=${Date.now() - started}ms)`);
    return { invocationId, outputData: response.outputData ?? [], returnValue: response.returnValue };
  } catch (error) {
    log(
      `Executed 'Functions.${name}' (Failed, Id=${invocationId}, Duration=${Date.now() - started}ms)\n  ${(error as Error)?.stack ?? String(error)}`,
    );
    throw error;
  }
}
