/**
 * Completeness conditions of a rule (`Completion`): how long past Orthanc's StableAge to wait, which
 * series must be there (`RequiredSeries`, a small boolean language over SeriesDescription fragments),
 * how many instances, and what to do once `ForceAfter` has passed since the first instance arrived.
 * Parsing happens once, when the rule file is loaded; deciding is a pure function of what Orthanc
 * reports, so the sweep, the change feed and delayed re-evaluations all reach the same answer.
 */
import ms from 'ms';

export const ON_TIMEOUT = ['proceed', 'fail', 'ignore'] as const;
export type OnTimeout = (typeof ON_TIMEOUT)[number];

/** A parsed RequiredSeries expression: fragments are matched case-insensitively as plain substrings. */
export type SeriesExpression =
  | { kind: 'fragment'; text: string }
  | { kind: 'not'; operand: SeriesExpression }
  | { kind: 'and' | 'or'; left: SeriesExpression; right: SeriesExpression };

export interface CompletionSettings {
  stableSeconds?: number;
  /** The expression as written (for records and messages) and parsed. */
  requiredSeries?: { source: string; expression: SeriesExpression };
  minInstances?: number;
  forceAfterSeconds?: number;
  onTimeout: OnTimeout;
}

export class SeriesExpressionError extends Error {
  /** 1-based character position in the expression. */
  constructor(
    message: string,
    readonly position: number,
  ) {
    super(`${message} at position ${position}`);
  }
}

type Token =
  { kind: 'fragment'; text: string; at: number } | { kind: 'and' | 'or' | 'not' | '(' | ')' | 'end'; at: number };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (/\s/.test(c)) {
      i += 1;
    } else if (c === '(' || c === ')') {
      tokens.push({ kind: c, at: i + 1 });
      i += 1;
    } else if (c === "'" || c === '"') {
      // A quote is written inside a fragment by doubling it, as in SQL: 'O''Brien'.
      let text = '';
      let j = i + 1;
      for (;;) {
        if (j >= source.length)
          throw new SeriesExpressionError(`unterminated ${c === "'" ? 'single' : 'double'} quote`, i + 1);
        if (source[j] === c) {
          if (source[j + 1] === c) {
            text += c;
            j += 2;
            continue;
          }
          break;
        }
        text += source[j];
        j += 1;
      }
      if (text.trim() === '') throw new SeriesExpressionError('empty series description', i + 1);
      tokens.push({ kind: 'fragment', text, at: i + 1 });
      i = j + 1;
    } else {
      const word = /^[A-Za-z]+/.exec(source.slice(i))?.[0] ?? '';
      const keyword = word.toLowerCase();
      if (keyword === 'and' || keyword === 'or' || keyword === 'not') {
        tokens.push({ kind: keyword, at: i + 1 });
        i += word.length;
      } else {
        const shown = word || c;
        throw new SeriesExpressionError(
          `unexpected '${shown}' (put series descriptions in quotes, e.g. 'Axial T2'; combine them with and, or, not and parentheses)`,
          i + 1,
        );
      }
    }
  }
  tokens.push({ kind: 'end', at: source.length + 1 });
  return tokens;
}

/**
 * `or` binds looser than `and`, which binds looser than `not`; parentheses group. Throws a
 * SeriesExpressionError naming the 1-based position of the first problem.
 */
export function parseSeriesExpression(source: string): SeriesExpression {
  const tokens = tokenize(source);
  let next = 0;
  const peek = () => tokens[next];
  const describe = (t: Token) => (t.kind === 'end' ? 'the end' : t.kind === 'fragment' ? `'${t.text}'` : `'${t.kind}'`);

  const parseOr = (): SeriesExpression => {
    let left = parseAnd();
    while (peek().kind === 'or') {
      next += 1;
      left = { kind: 'or', left, right: parseAnd() };
    }
    return left;
  };
  const parseAnd = (): SeriesExpression => {
    let left = parseUnary();
    while (peek().kind === 'and') {
      next += 1;
      left = { kind: 'and', left, right: parseUnary() };
    }
    return left;
  };
  const parseUnary = (): SeriesExpression => {
    const token = peek();
    if (token.kind === 'not') {
      next += 1;
      return { kind: 'not', operand: parseUnary() };
    }
    if (token.kind === 'fragment') {
      next += 1;
      return { kind: 'fragment', text: token.text };
    }
    if (token.kind === '(') {
      next += 1;
      const inner = parseOr();
      const close = peek();
      if (close.kind !== ')') throw new SeriesExpressionError(`expected ')' but found ${describe(close)}`, close.at);
      next += 1;
      return inner;
    }
    throw new SeriesExpressionError(
      `expected a quoted series description, 'not' or '(' but found ${describe(token)}`,
      token.at,
    );
  };

  const expression = parseOr();
  const rest = peek();
  if (rest.kind !== 'end')
    throw new SeriesExpressionError(`expected 'and', 'or' or the end but found ${describe(rest)}`, rest.at);
  return expression;
}

/** Case-insensitive, composed and decomposed Unicode alike (as the tag matcher compares). */
const fold = (value: string) => value.normalize('NFC').toLocaleLowerCase('en-US');

/** Whether the series descriptions present satisfy the expression (a fragment: some description contains it). */
export function seriesExpressionHolds(expression: SeriesExpression, descriptions: string[]): boolean {
  switch (expression.kind) {
    case 'fragment': {
      const wanted = fold(expression.text);
      return descriptions.some((d) => fold(d).includes(wanted));
    }
    case 'not':
      return !seriesExpressionHolds(expression.operand, descriptions);
    case 'and':
      return (
        seriesExpressionHolds(expression.left, descriptions) && seriesExpressionHolds(expression.right, descriptions)
      );
    case 'or':
      return (
        seriesExpressionHolds(expression.left, descriptions) || seriesExpressionHolds(expression.right, descriptions)
      );
  }
}

/** `"90m"`, `"3s"`, `"2h"`, `"1d"` (anything `ms` reads) or a number of seconds; undefined when unreadable. */
export function parseDurationSeconds(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const text = value.trim();
  // A bare number in a string means seconds, as in StableSeconds (`ms` would read it as milliseconds).
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const millis = ms(text as ms.StringValue) as number | undefined;
  return typeof millis === 'number' && Number.isFinite(millis) && millis >= 0 ? millis / 1000 : undefined;
}

/** What Orthanc tells about the resource when the rule is evaluated. */
export interface CompletionFacts {
  now: Date;
  /** Orthanc's LastUpdate of the resource. */
  lastUpdate: Date;
  /** The earliest ReceptionDate Orthanc knows for the resource; absent when unknown. */
  firstArrival?: Date;
  instances: number;
  seriesDescriptions: string[];
}

export interface ConditionState {
  condition: 'StableSeconds' | 'RequiredSeries' | 'MinInstances';
  /** What the rule asks for, as written. */
  required: string;
  /** What was seen (seconds since LastUpdate, series descriptions count, instances). */
  observed: string;
  met: boolean;
}

export type CompletionDecision =
  | { kind: 'complete'; conditions: ConditionState[] }
  /** Not yet: evaluate again after `recheckSeconds` (or when new instances make Orthanc call it stable again). */
  | { kind: 'wait'; conditions: ConditionState[]; recheckSeconds?: number }
  | { kind: 'timeout'; conditions: ConditionState[]; onTimeout: OnTimeout; forceAfterSeconds: number };

/** Delayed queue messages are capped (Azure allows 7 days); a longer wait just waits again. */
const MAX_RECHECK_SECONDS = 6 * 24 * 3600;

export function decideCompletion(settings: CompletionSettings, facts: CompletionFacts): CompletionDecision {
  const conditions: ConditionState[] = [];
  const sinceUpdate = Math.max(0, (facts.now.getTime() - facts.lastUpdate.getTime()) / 1000);
  let stableIn: number | undefined;
  if (settings.stableSeconds !== undefined) {
    const met = sinceUpdate >= settings.stableSeconds;
    if (!met) stableIn = settings.stableSeconds - sinceUpdate;
    conditions.push({
      condition: 'StableSeconds',
      required: `${settings.stableSeconds}s without new instances`,
      observed: `${Math.floor(sinceUpdate)}s`,
      met,
    });
  }
  if (settings.requiredSeries) {
    conditions.push({
      condition: 'RequiredSeries',
      required: settings.requiredSeries.source,
      observed: `${facts.seriesDescriptions.length} series`,
      met: seriesExpressionHolds(settings.requiredSeries.expression, facts.seriesDescriptions),
    });
  }
  if (settings.minInstances !== undefined) {
    conditions.push({
      condition: 'MinInstances',
      required: String(settings.minInstances),
      observed: String(facts.instances),
      met: facts.instances >= settings.minInstances,
    });
  }
  if (conditions.every((c) => c.met)) return { kind: 'complete', conditions };

  let forceIn: number | undefined;
  if (settings.forceAfterSeconds !== undefined) {
    const since = (facts.firstArrival ?? facts.lastUpdate).getTime();
    forceIn = (since + settings.forceAfterSeconds * 1000 - facts.now.getTime()) / 1000;
    if (forceIn <= 0)
      return {
        kind: 'timeout',
        conditions,
        onTimeout: settings.onTimeout,
        forceAfterSeconds: settings.forceAfterSeconds,
      };
  }
  // Only the clock can satisfy StableSeconds or reach ForceAfter; missing series or instances come
  // with new arrivals, after which Orthanc reports the resource stable again and it is evaluated anew.
  const waits = [stableIn, forceIn].filter((s): s is number => s !== undefined);
  const recheck = waits.length ? Math.min(MAX_RECHECK_SECONDS, Math.max(1, Math.ceil(Math.min(...waits)))) : undefined;
  return { kind: 'wait', conditions, recheckSeconds: recheck };
}

/** Plain-English list of what is not met yet, for logs, outcomes and job errors. */
export function describeUnmet(conditions: ConditionState[]): string {
  return conditions
    .filter((c) => !c.met)
    .map((c) =>
      c.condition === 'RequiredSeries'
        ? `RequiredSeries ${c.required} not present (${c.observed})`
        : `${c.condition} ${c.required} (now ${c.observed})`,
    )
    .join('; ');
}
