/**
 * Queue names and the small JSON messages that travel between functions, validated with zod on
 * both ends. The job record holds the state; a message only says what to look at next.
 */
import { z } from 'zod';
import { describeIssues } from '../util/issues';
import { RESOURCE_LEVELS } from '../vocabulary';

export const QUEUES = {
  evaluate: 'evaluate',
  step: (step: string) => `step-${step}`,
  poison: (queue: string) => `${queue}-poison`,
} as const;

/** Orthanc's Orthanc ids: SHA-1 hex in five dash-separated groups. */
export const orthancIdSchema = z
  .string()
  .regex(
    /^[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/,
    'expected an Orthanc id (8-8-8-8-8 lowercase hex)',
  );

export const resourceLevelSchema = z.enum(RESOURCE_LEVELS);

/** What the Lua hook posts: `{changeType, resourceId}`. */
export const orthancEventSchema = z
  .object({
    changeType: z.enum(['StableStudy', 'StableSeries']),
    resourceId: orthancIdSchema,
  })
  .strict();
export type OrthancEvent = z.infer<typeof orthancEventSchema>;

export const eventSourceSchema = z.enum(['webhook', 'changeFeed', 'sweep', 'manual', 'retry']);
export type EventSource = z.infer<typeof eventSourceSchema>;

export const evaluateMessageSchema = z
  .object({
    level: resourceLevelSchema,
    resourceId: orthancIdSchema,
    source: eventSourceSchema,
    /** Manual runs make a new job even when one exists for this exact state of the resource. */
    force: z.boolean().default(false),
    /** Sweep: also evaluate Series rules against every series of the study. */
    includeSeries: z.boolean().default(false),
    /** Restrict to these rule ids (manual run from the dashboard). */
    ruleIds: z.array(z.string()).optional(),
    /** A delayed re-evaluation of a rule's Completion: the conditions that were not met before. */
    waitedFor: z.array(z.string()).optional(),
  })
  .strict();
export type EvaluateMessage = z.infer<typeof evaluateMessageSchema>;

/** Job ids as the ledger makes them (and as messages and the API carry them). */
export const jobIdSchema = z.string().regex(/^[A-Za-z0-9_-]{8,80}$/);

/** A destination as a rule names it: only ever a key into the job's record, never a path or a pattern. */
export const destinationNameSchema = z.string().min(1).max(200);

export const stepMessageSchema = z
  .object({
    jobId: jobIdSchema,
    step: z.string().regex(/^[a-z]+$/),
    /**
     * A step that fans out (forward) sends one message per destination; `attempt` is the attempt it
     * is to make, so a stale duplicate of an earlier attempt is told apart and does nothing.
     */
    destination: destinationNameSchema.optional(),
    attempt: z.number().int().min(1).max(10_000).optional(),
  })
  .strict();
export type StepMessage = z.infer<typeof stepMessageSchema>;

export function eventToEvaluateMessage(event: OrthancEvent, source: EventSource): EvaluateMessage {
  return {
    level: event.changeType === 'StableStudy' ? 'Study' : 'Series',
    resourceId: event.resourceId,
    source,
    force: false,
    includeSeries: false,
  };
}

/** Parses a queue message, naming the queue in the error (the message then goes to poison). */
export function parseMessage<S extends z.ZodType>(schema: S, queue: string, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new Error(`Malformed message on queue '${queue}': ${describeIssues(parsed.error, 'message')}`);
  }
  return parsed.data;
}
