import type { InvocationContext } from '@azure/functions';
import { getConfig } from '../config';
import { createRedaction, type Redact } from '../pipeline/redact';
import type { Logger } from '../vocabulary';

/**
 * Every log line passes AUTOMATION_LOG_PHI's redaction: unless it is true, an output name under the
 * storage root (where a plain pipeline puts the patient's ID and name) is written `<output>`. The
 * runner redacts a job's lines more precisely (its id, the study's values); this is the net for all
 * other lines. A configuration that does not load cannot say PHI may be logged, so it redacts nothing
 * only in the sense that it knows no storage root: the functions fail on that configuration anyway.
 */
function processRedaction(): Redact {
  try {
    const config = getConfig();
    return createRedaction({ storagePath: config.storagePath, logPhi: config.logPhi }).anywhere;
  } catch {
    return (text) => text;
  }
}

/** The domain's logger, backed by the invocation's log (so the host correlates lines with invocations). */
export function loggerFor(context: InvocationContext, redact: Redact = processRedaction()): Logger {
  return {
    info: (message) => context.log(redact(message)),
    warn: (message) => context.warn(redact(message)),
    error: (message) => context.error(redact(message)),
  };
}
