import type { InvocationContext } from '@azure/functions';
import { redactedLogger, type Redact } from '../pipeline/redact';
import type { Logger } from '../vocabulary';

/**
 * The domain's logger, backed by the invocation's log (so the host correlates lines with invocations).
 * Every line passes AUTOMATION_LOG_PHI's redaction (`services.redaction.anywhere`): unless it is true,
 * an output name under the storage root, where a plain pipeline puts the patient's ID and name, is
 * written `<output>`. The runner redacts a job's lines more precisely (its id, the study's values).
 */
export function loggerFor(context: InvocationContext, redact: Redact): Logger {
  return redactedLogger(
    { info: (m) => context.log(m), warn: (m) => context.warn(m), error: (m) => context.error(m) },
    redact,
  );
}
