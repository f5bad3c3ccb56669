/**
 * Rule `regex`/`notRegex` patterns run on RE2 (re2js, a pure-JavaScript port), never on the
 * backtracking RegExp engine: a pattern like `^(a+)+$` against a crafted tag value would otherwise
 * block the whole host. RE2 matches in time linear in the value, and values are cut to
 * MAX_REGEX_VALUE_LENGTH characters and programs to MAX_REGEX_PROGRAM_SIZE instructions, so one check
 * has a fixed bound however the file was crafted.
 * The price is RE2's syntax: no backreferences and no lookaround.
 */
import { RE2JS } from 're2js';

/** Characters of a tag value a regex sees: every short text VR fits whole (LO 64, ST 1024); long LT/UT text is cut. */
export const MAX_REGEX_VALUE_LENGTH = 1024;
/** A longer pattern is refused before compiling it (compiling costs time in its size). */
export const MAX_REGEX_PATTERN_LENGTH = 1024;
/**
 * RE2's time is (value length) x (compiled program size), so the program is bounded too: at 1000
 * instructions the slowest pattern measured (`[\p{L}]{990}x`) takes about 0.3 s on a capped value,
 * while real rules (a few alternatives, anchors, classes) compile to well under 300.
 */
export const MAX_REGEX_PROGRAM_SIZE = 1000;

/** What the matcher needs of a compiled pattern (kept apart from the engine's own type). */
export interface RulePattern {
  test(value: string): boolean;
}

/** The first MAX_REGEX_VALUE_LENGTH characters, never splitting a surrogate pair. */
export function capForRegex(value: string): string {
  if (value.length <= MAX_REGEX_VALUE_LENGTH) return value;
  const cut = /[\uD800-\uDBFF]/.test(value[MAX_REGEX_VALUE_LENGTH - 1])
    ? MAX_REGEX_VALUE_LENGTH - 1
    : MAX_REGEX_VALUE_LENGTH;
  return value.slice(0, cut);
}

/** Says why RE2 refused a pattern in words an operator can act on. */
function hint(source: string): string {
  if (/\(\?<?[=!]/.test(source)) return 'lookaround ((?=, (?!, (?<=, (?<!) is not supported';
  if (/\\[1-9]/.test(source)) return 'backreferences (\\1 ...) are not supported';
  if (/\\u/.test(source)) return 'write a code point as \\x{00E9}, not \\u00E9';
  return '';
}

/**
 * Compiles a rule's pattern case-insensitively after NFC normalisation (as every operator
 * compares). Returns the reason in plain words when RE2 cannot express it.
 */
export function compileRulePattern(source: string): { pattern: RulePattern } | { error: string } {
  const normalised = source.normalize('NFC');
  const syntax = 'rule regexes use RE2 syntax, which matches in linear time (see docs/rules.md)';
  if (normalised.length > MAX_REGEX_PATTERN_LENGTH)
    return {
      error: `the pattern is ${normalised.length} characters long; at most ${MAX_REGEX_PATTERN_LENGTH} are allowed`,
    };
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(normalised, RE2JS.CASE_INSENSITIVE);
  } catch (error) {
    const why = hint(normalised);
    return { error: `${why ? `${why}; ` : ''}${syntax}: ${(error as Error).message}` };
  }
  const size = compiled.programSize();
  if (size > MAX_REGEX_PROGRAM_SIZE) {
    return {
      error: `the pattern is too complex: it compiles to ${size} instructions, at most ${MAX_REGEX_PROGRAM_SIZE} are allowed (a repeat such as {100} copies its part 100 times)`,
    };
  }
  return { pattern: { test: (value: string) => compiled.test(capForRegex(value).normalize('NFC')) } };
}
