/**
 * Matching, autorthanc-compatible: case-insensitive substring by default, every tag must pass, a
 * Series-level tag on a study passes if any series passes, a missing tag fails (never throws).
 * Extensions: other operators, negations (pass when no series has the positive form) and AnyOf
 * groups (at least one group must pass as a whole). Every check says what it looked for and what
 * it saw, so operators can debug a rule without reading code.
 */
import type { Condition, Operator, Rule } from './model';
import type { ResourceTags } from './resource-tags';
import { tagValues } from './resource-tags';
import type { ResourceLevel } from '../vocabulary';

export interface TagCheck {
  /** The TagName as the rule wrote it. */
  tag: string;
  level: ResourceLevel;
  operator: Operator;
  expected: string;
  /** One value for a study-level tag; one per series (null where missing) for a series-level tag. */
  seen: Array<string | null>;
  passed: boolean;
  /** Index of the AnyOf group this check belongs to; absent for the `Tags` list. */
  group?: number;
  explanation: string;
}

export interface MatchResult {
  ruleId: string;
  matched: boolean;
  reasons: TagCheck[];
  /** Which AnyOf groups passed (absent when the rule has none). */
  anyOf?: { passed: boolean; groups: boolean[] };
  /** Set when the resource was made by Orthanc (anonymised/modified) and the rule does not IncludeDerived. */
  skipped?: string;
}

/** Case-insensitive, and the same text in composed or decomposed Unicode compares equal. */
const fold = (value: string) => value.normalize('NFC').toLocaleLowerCase('en-US');

function positive(operator: Operator): Operator {
  return (operator.startsWith('not') ? operator[3].toLowerCase() + operator.slice(4) : operator) as Operator;
}

function test(operator: Operator, condition: Condition, value: string): boolean {
  const seen = fold(value);
  const expected = fold(condition.value);
  switch (operator) {
    case 'contains':
      return seen.includes(expected);
    case 'equals':
      return seen === expected;
    case 'startsWith':
      return seen.startsWith(expected);
    case 'endsWith':
      return seen.endsWith(expected);
    // The pattern normalises and caps the value itself (shared/rules/regex.ts).
    case 'regex':
      return condition.pattern ? condition.pattern.test(value) : false;
    default:
      return false;
  }
}

export function checkCondition(condition: Condition, tags: ResourceTags): TagCheck {
  const seen = tagValues(tags, condition);
  const present = seen.filter((v): v is string => v !== null);
  const negated = condition.operator.startsWith('not');
  const base = positive(condition.operator);
  let passed: boolean;
  // A tag nobody carries fails even a negation: "not CT" on a study without Modality proves nothing.
  if (present.length === 0) passed = false;
  else if (negated) passed = !present.some((v) => test(base, condition, v));
  else passed = present.some((v) => test(base, condition, v));
  const shown =
    present.length === 0 ? 'missing' : seen.map((v) => (v === null ? 'missing' : JSON.stringify(v))).join(', ');
  return {
    tag: condition.tag.name,
    level: condition.level,
    operator: condition.operator,
    expected: condition.value,
    seen,
    passed,
    explanation: `${condition.tag.name} ${condition.operator} ${JSON.stringify(condition.value)} (${condition.level}): ${passed ? 'passed' : 'failed'}, saw ${shown}`,
  };
}

/**
 * The one place that decides on resources Orthanc made itself (anonymised or modified copies): a rule
 * skips them unless it sets IncludeDerived, or a rule that anonymises would run again on its own
 * output. Returns the reason to skip, or undefined.
 */
export function derivedSkip(rule: Pick<Rule, 'includeDerived'>, derivedFrom: string | undefined): string | undefined {
  if (derivedFrom === undefined || rule.includeDerived) return undefined;
  return 'made by Orthanc (AnonymizedFrom/ModifiedFrom); set IncludeDerived to true to process it';
}

export function matchRule(rule: Rule, tags: ResourceTags): MatchResult {
  const reasons = rule.conditions.map((c) => checkCondition(c, tags));
  let matched = reasons.every((r) => r.passed);
  const result: MatchResult = { ruleId: rule.id, matched, reasons };
  if (rule.anyOf.length > 0) {
    const groups = rule.anyOf.map((group, g) =>
      group.map((c) => {
        const check = checkCondition(c, tags);
        return { ...check, group: g, explanation: `AnyOf[${g}]: ${check.explanation}` };
      }),
    );
    const passedGroups = groups.map((g) => g.every((c) => c.passed));
    const anyPassed = passedGroups.some(Boolean);
    result.anyOf = { passed: anyPassed, groups: passedGroups };
    reasons.push(...groups.flat());
    matched = matched && anyPassed;
  }
  const skipped = derivedSkip(rule, tags.derivedFrom);
  if (skipped !== undefined) {
    result.skipped = skipped;
    matched = false;
  }
  result.matched = matched;
  return result;
}
