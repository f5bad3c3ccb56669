/**
 * The few words every room of the code shares: resource levels, pipeline step names, the logger
 * and the error kinds. They live here, importing nothing, so no module has to import the runner,
 * the rules or the messages just to name a level or throw a permanent failure.
 */

/** The levels a rule checks on and an evaluation looks at (Orthanc's stable study and series). */
export const RESOURCE_LEVELS = ['Study', 'Series'] as const;
export type ResourceLevel = (typeof RESOURCE_LEVELS)[number];

/**
 * What a rule's `CheckOn` can name: a level, or `Result`, the results an AI node (a rule's
 * ExpectResults.From) sent back for a forwarded study. A Result rule runs only on those.
 */
export const RULE_TARGETS = [...RESOURCE_LEVELS, 'Result'] as const;
export type RuleTarget = (typeof RULE_TARGETS)[number];

/**
 * Every pipeline step, in the order a job runs them. Step names map to queues `step-<name>`; a new
 * step is a new function plus a new handler.
 */
export const PIPELINE_STEPS = ['download', 'anonymise', 'zip', 'forward', 'publish'] as const;
export type PipelineStep = (typeof PIPELINE_STEPS)[number];

/** The steps a rule names in `Steps`: publish is never written, it ends every pipeline that writes files. */
export type RuleStep = Exclude<PipelineStep, 'publish'>;
export const RULE_STEPS: readonly RuleStep[] = PIPELINE_STEPS.filter((s): s is RuleStep => s !== 'publish');

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** An error that retrying cannot fix (bad data, bad rule): the job fails at once. */
export class PermanentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentError';
  }
}

/** The message of anything thrown, which need not be an Error. */
export function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
