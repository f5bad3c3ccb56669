/**
 * One invocation, in the worker's order: build the core context, let the library's InvocationModel
 * convert inputs, run preInvocation hooks, call the handler, run postInvocation hooks, convert
 * outputs. Conversions are the library's own, so inputs and outputs match production exactly.
 */
import { randomUUID, randomBytes } from 'node:crypto';
import type { CoreRegistry, RegisteredFunction, TypedData } from './core';

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

export async function invoke(registry: CoreRegistry, fn: RegisteredFunction, request: InvocationRequest, log: Logger, reason: string): Promise<InvocationResult> {
  const model = registry.programmingModel;
  if (!model) throw new Error('The app registered no programming model (is @azure/functions loaded?)');
  const invocationId = randomUUID();
  const name = fn.metadata.name;
  const started = Date.now();
  log(`Executing 'Functions.${name}' (Reason='${reason}', Id=${invocationId})`);
  const coreContext: Record<string, unknown> = {
    invocationId,
    request: {
      invocationId,
      functionId: name,
      inputData: request.inputData,
      triggerMetadata: request.triggerMetadata ?? {},
      traceContext: { traceParent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`, traceState: '', attributes: {} },
    },
    metadata: fn.metadata,
    state: undefined,
    log: (level: string, category: string, ...args: unknown[]) => {
      for (const hook of registry.hooks.log) hook({ level, category, message: args.join(' '), invocationContext: undefined, hookData: {} });
      log(`${level === 'error' ? 'ERROR ' : level === 'warning' ? 'WARN ' : ''}${name}: ${args.join(' ')}`);
    },
  };
  try {
    const invocationModel = model.getInvocationModel(coreContext);
    const { context, inputs } = await invocationModel.getArguments();
    const appHookData = registry.appHookData;
    const pre = { invocationContext: context, inputs, functionCallback: fn.callback, hookData: {}, appHookData };
    coreContext.state = 'preInvocationHooks';
    for (const hook of registry.hooks.preInvocation) await hook(pre);
    coreContext.state = 'invocation';
    let result: unknown;
    let error: unknown;
    try {
      result = await invocationModel.invokeFunction(context, pre.inputs, pre.functionCallback);
    } catch (e) {
      error = e;
    }
    const post = { invocationContext: context, inputs: pre.inputs, result, error, hookData: pre.hookData, appHookData };
    coreContext.state = 'postInvocationHooks';
    for (const hook of registry.hooks.postInvocation) await hook(post);
    coreContext.state = undefined;
    if (post.error !== undefined && post.error !== null) throw post.error;
    const response = await invocationModel.getResponse(context, post.result);
    log(`Executed 'Functions.${name}' (Succeeded, Id=${invocationId}, Duration=${Date.now() - started}ms)`);
    return { invocationId, outputData: response.outputData ?? [], returnValue: response.returnValue };
  } catch (error) {
    log(`Executed 'Functions.${name}' (Failed, Id=${invocationId}, Duration=${Date.now() - started}ms)\n  ${(error as Error)?.stack ?? String(error)}`);
    throw error;
  }
}
