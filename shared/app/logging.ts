import type { InvocationContext } from '@azure/functions';
import type { Logger } from '../pipeline/runner';

/** The domain's logger, backed by the invocation's log (so the host correlates lines with invocations). */
export function loggerFor(context: InvocationContext): Logger {
  return {
    info: (message) => context.log(message),
    warn: (message) => context.warn(message),
    error: (message) => context.error(message),
  };
}
