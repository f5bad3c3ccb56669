import type { z } from 'zod';

type Issue = z.ZodError['issues'][number];

/** One zod issue in plain English, naming where it is (`whole` when it is about the value itself). */
export function describeIssue(issue: Issue, whole: string): string {
  return `${issue.path.join('.') || whole}: ${issue.message}`;
}

export function describeIssues(error: z.ZodError, whole: string): string {
  return error.issues.map((i) => describeIssue(i, whole)).join('; ');
}
