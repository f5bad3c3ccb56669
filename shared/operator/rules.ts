/**
 * The rules as operators need to see them: every file with its validation state, and a dry run that
 * says which rules would run for a study or series and why, acting on nothing.
 */
import { z } from 'zod';
import type { Rule, RuleFileProblem, RuleSetSnapshot } from '../rules/model';
import { collectResourceTags, type OrthancTagSource, type ResourceTags } from '../rules/resource-tags';
import { matchRule, type MatchResult } from '../rules/matcher';
import type { ResourceLevel } from '../vocabulary';

/** `?rules=a,b` of a dry run: which rules to try (all active ones when absent). */
export const dryRunQuerySchema = z.object({ rules: z.string().max(2000).optional() }).strict();

export interface RuleReport {
  id: string;
  file: string;
  valid: boolean;
  active?: boolean;
  checkOn?: string;
  steps?: string[];
  destinations?: string[];
  comment?: string;
  errors: string[];
  warnings: string[];
}

export interface RulesReport {
  loadedAt: string;
  rules: RuleReport[];
  /** Problems not tied to a rule file (the folder itself, master.json). */
  other: RuleFileProblem[];
  ignored: string[];
  master: RuleSetSnapshot['master'];
}

function describe(p: RuleFileProblem): string {
  return p.path ? `${p.path}: ${p.message}` : p.message;
}

export function rulesReport(snapshot: RuleSetSnapshot): RulesReport {
  const byFile = new Map<string, RuleFileProblem[]>();
  for (const p of snapshot.problems) byFile.set(p.file, [...(byFile.get(p.file) ?? []), p]);
  const reports: RuleReport[] = snapshot.rules.map((r) => {
    const problems = byFile.get(r.file) ?? [];
    byFile.delete(r.file);
    return {
      id: r.id,
      file: r.file,
      valid: true,
      active: r.active,
      checkOn: r.checkOn,
      steps: r.steps,
      destinations: r.destinations,
      comment: r.comment,
      errors: [],
      warnings: problems.filter((p) => p.severity === 'warning').map(describe),
    };
  });
  const other: RuleFileProblem[] = [];
  for (const [file, problems] of byFile) {
    if (!file.toLowerCase().endsWith('.json') || file.toLowerCase().startsWith('master')) {
      other.push(...problems);
      continue;
    }
    reports.push({
      id: file.replace(/\.json$/i, ''),
      file,
      valid: !problems.some((p) => p.severity === 'error'),
      errors: problems.filter((p) => p.severity === 'error').map(describe),
      warnings: problems.filter((p) => p.severity === 'warning').map(describe),
    });
  }
  reports.sort((a, b) => a.file.localeCompare(b.file));
  return { loadedAt: snapshot.loadedAt, rules: reports, other, ignored: snapshot.ignored, master: snapshot.master };
}

export interface DryRunVerdict extends MatchResult {
  active: boolean;
  checkOn: string;
  steps: string[];
  /** Whether a stable event for this resource would start a job for this rule now. */
  wouldRun: boolean;
  note?: string;
}

/**
 * One rule against one resource's tags. `level` is the resource's level, or undefined for a lone
 * DICOM file, which stands for both its study and its series.
 */
export function verdictOf(rule: Rule, tags: ResourceTags, level: ResourceLevel | undefined): DryRunVerdict {
  const result = matchRule(rule, { ...tags, level: level ?? tags.level });
  const notes: string[] = [];
  if (!rule.active) notes.push('inactive: would not run');
  if (level !== undefined && rule.checkOn !== level) notes.push(`checks on ${rule.checkOn}, this is a ${level}`);
  if (result.skipped) notes.push(result.skipped);
  return {
    ...result,
    active: rule.active,
    checkOn: rule.checkOn,
    steps: rule.steps,
    wouldRun: result.matched && rule.active && (level === undefined || rule.checkOn === level),
    note: notes.length ? notes.join('; ') : undefined,
  };
}

export async function dryRun(
  loadRules: () => Promise<RuleSetSnapshot>,
  orthanc: OrthancTagSource,
  level: ResourceLevel,
  resourceId: string,
  ruleIds?: string[],
): Promise<{ level: string; resourceId: string; verdicts: DryRunVerdict[]; unknownRules: string[] }> {
  const snapshot = await loadRules();
  const rules = ruleIds ? snapshot.rules.filter((r) => ruleIds.includes(r.id)) : snapshot.rules;
  const unknownRules = (ruleIds ?? []).filter((id) => !snapshot.rules.some((r) => r.id === id));
  const tags = await collectResourceTags(orthanc, level, resourceId, rules);
  return { level, resourceId, verdicts: rules.map((rule) => verdictOf(rule, tags, level)), unknownRules };
}
