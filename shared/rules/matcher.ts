/**
 * Matching, autorthanc-compatible: case-insensitive substring by default, every tag must pass, a
 * Series-level tag on a study passes if any series passes, a missing tag fails (never throws).
 * Extensions: other operators, negations (pass when no series has the positive form) and AnyOf.
 * Every check says what it looked for and what it saw, so operators can debug a rule.
 */
import type { Condition, Operator, Rule } from './model';
import type { ResourceTags } from './resource-tags';
import { tagValues } from './resource-tags';

export interface TagCheck {
  tag: string;
  level: 'Study' | 'Series';
  operator: Operator;
  expected: string;
  seen: Array<string | null>;
  passed: boolean;
  explanation: string;
}

export interface MatchResult {
  ruleId: string;
  matched: boolean;
  reasons: TagCheck[];
}

const fold = (value: string) => value.normalize('NFC').toLocaleLowerCase('en-US');

function positive(operator: Operator): Operator {
  return (operator.startsWith('not') ? operator[3].toLowerCase() + operator.slice(4) : operator) as Operator;
}

function test(operator: Operator, condition: Condition, value: string): boolean {
  const seen = fold(value);
  const expected = fold(condition.value);
  switch (operator) {
    case 'contains': return seen.includes(expected);
    case 'equals': return seen === expected;
    case 'startsWith': return seen.startsWith(expected);
    case 'endsWith': return seen.endsWith(expected);
    case 'regex': return condition.pattern!.test(value.normalize('NFC'));
    default: throw new Error(`operator ${operator} has no positive form`);
  }
}

export function checkCondition(condition: Condition, tags: ResourceTags): TagCheck {
  const seen = tagValues(tags, condition);
  const present = seen.filter((v): v is string => v !== null);
  const negated = condition.operator.startsWith('not');
  const base = positive(condition.operator);
  let passed: boolean;
  if (present.length === 0) passed = false;
  else if (negated) passed = !present.some((v) => test(base, condition, v));
  else passed = present.some((v) => test(base, condition, v));
  const shown = seen.length === 0 || present.length === 0 ? 'missing' : seen.map((v) => (v === null ? 'missing' : JSON.stringify(v))).join(', ');
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

export function matchRule(rule: Rule, tags: ResourceTags): MatchResult {
  const reasons = rule.conditions.map((c) => checkCondition(c, tags));
  let matched = reasons.every((r) => r.passed);
  if (rule.anyOf.length > 0) {
    const groups = rule.anyOf.map((group) => group.map((c) => checkCondition(c, tags)));
    const anyPassed = groups.some((g) => g.every((c) => c.passed));
    matched = matched && anyPassed;
    reasons.push(...groups.flat().map((c) => ({ ...c, explanation: `AnyOf: ${c.explanation}`, passed: anyPassed ? true : c.passed })));
  }
  return { ruleId: rule.id, matched, reasons };
}
