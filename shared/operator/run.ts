/**
 * The manual run's request (POST /api/studies/{id}/run, /api/series/{id}/run): validated like every
 * other operator input, so an unknown field is refused rather than silently ignored.
 */
import { z } from 'zod';

/** Optional body `{"rules": ["ruleId", ...]}`: run only these rules (all active ones when absent). */
export const runBodySchema = z.object({ rules: z.array(z.string().min(1)).min(1).optional() }).strict();
