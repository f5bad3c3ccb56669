/**
 * Crafted input never blocks the host (issue 17): rule regexes run on RE2 with capped values, so a
 * catastrophic pattern ends in bounded time; patterns RE2 cannot express fail validation naming the
 * file and tag (also through `npm run rules -- check`); UIDs in path names are replaced by plain
 * string search, so a UID that looks like a regex bomb is just text.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { replaceUids } from '../../shared/dicom/folder';
import { MAX_REGEX_VALUE_LENGTH, matchRule, parseRule, type ResourceTags, type Rule } from '../../shared/rules';
import { makeTempDir, removeTempDir } from '../support/process';

const REPO = path.resolve(__dirname, '../..');

function rule(tags: unknown[]): Rule {
  const { rule: parsed, problems } = parseRule(
    'r',
    'r.json',
    JSON.stringify({ CheckOn: 'Study', IsActive: true, Action: 'DOWNLOAD', Tags: tags }),
  );
  assert.ok(parsed, JSON.stringify(problems));
  return parsed;
}

const studyWith = (
  study: Record<string, string>,
  series: Array<Record<string, string>> = [{ Modality: 'MR' }],
): ResourceTags => ({
  level: 'Study',
  orthancId: 'st',
  patient: {},
  study,
  series: series.map((tags, i) => ({ orthancId: `se${i}`, tags })),
});

function timed<T>(work: () => T): { value: T; ms: number } {
  const start = performance.now();
  const value = work();
  return { value, ms: performance.now() - start };
}

describe('rule regexes run in linear time', () => {
  it('the catastrophic pattern ^(a+)+$ against a 33-character StudyDescription returns at once', () => {
    const bomb = rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: '^(a+)+$' }]);
    // With the backtracking engine this value took 18 s (issue 17); each extra 'a' doubles it.
    for (const length of [33, 64, MAX_REGEX_VALUE_LENGTH - 1, 1_000_000]) {
      const value = `${'a'.repeat(length)}!`;
      const { value: result, ms } = timed(() => matchRule(bomb, studyWith({ StudyDescription: value })));
      console.log(`regex ^(a+)+$ against ${value.length} characters: ${ms.toFixed(1)} ms`);
      // Past the cap the '!' is not seen, so the capped value is all 'a' and matches.
      assert.equal(result.matched, value.length > MAX_REGEX_VALUE_LENGTH);
      assert.ok(ms < 1000, `bounded: took ${ms.toFixed(1)} ms`);
    }
    const negated = rule([{ TagName: 'StudyDescription', Operator: 'notRegex', Value: '^(a+)+$' }]);
    const { value: result, ms } = timed(() =>
      matchRule(negated, studyWith({ StudyDescription: `${'a'.repeat(33)}!` })),
    );
    console.log(`notRegex ^(a+)+$ against 34 characters: ${ms.toFixed(1)} ms`);
    assert.equal(result.matched, true);
    assert.equal(
      matchRule(bomb, studyWith({ StudyDescription: 'a'.repeat(33) })).matched,
      true,
      'it still matches what it should',
    );
  });

  it('bounds the slowest pattern the limits allow, on the longest value', () => {
    for (const pattern of ['[\\p{L}]{990}x', '.{990}x', '(a|aa|é|éé){80}x']) {
      const r = rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: pattern }]);
      const { value: result, ms } = timed(() => matchRule(r, studyWith({ StudyDescription: 'é'.repeat(100_000) })));
      console.log(`regex ${pattern} against ${MAX_REGEX_VALUE_LENGTH} (capped) characters: ${ms.toFixed(1)} ms`);
      assert.equal(result.matched, false);
      assert.ok(ms < 1000, `bounded: took ${ms.toFixed(1)} ms`);
    }
  });

  it('keeps the documented semantics: case-insensitive, NFC, unanchored, negations', () => {
    const cases: Array<[string, string, string, boolean]> = [
      ['regex', '^brain\\s+mri', 'BRAIN  MRI head', true],
      ['regex', '^mri', 'Brain MRI', false],
      ['regex', 'br.in', 'xxBRAINxx', true],
      ['regex', '^étude$', 'ÉTUDE', true],
      ['regex', '^e\u0301tude$', '\u00c9TUDE', true], // pattern decomposed, value composed
      ['regex', '^zürich', 'Zu\u0308rich MR', true], // value decomposed, as some files store it
      ['regex', '\\b(dwi|dti|diffusion)\\b', 'ep2d DWI trace', true],
      ['regex', '\\b(dwi|dti|diffusion)\\b', 'ep2ddwitrace', false],
      ['regex', '^3(\\.0*)?$', '3.0', true],
      ['regex', '(?P<project>PROJ1)[-_ ]', 'proj1_x', true],
      ['notRegex', 'knee|spine', 'Brain MRI', true],
      ['notRegex', 'br.in', 'Brain MRI', false],
    ];
    for (const [operator, pattern, value, expected] of cases) {
      const r = rule([{ TagName: 'StudyDescription', Operator: operator, Value: pattern }]);
      assert.equal(
        matchRule(r, studyWith({ StudyDescription: value })).matched,
        expected,
        `${value} ${operator} /${pattern}/`,
      );
    }
  });

  it(`sees only the first ${MAX_REGEX_VALUE_LENGTH} characters of a value`, () => {
    const value = `${'x'.repeat(MAX_REGEX_VALUE_LENGTH - 3)}abcdef`;
    assert.equal(
      matchRule(
        rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: 'abc' }]),
        studyWith({ StudyDescription: value }),
      ).matched,
      true,
    );
    assert.equal(
      matchRule(
        rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: 'abcd' }]),
        studyWith({ StudyDescription: value }),
      ).matched,
      false,
    );
    assert.equal(
      matchRule(
        rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: 'abc$' }]),
        studyWith({ StudyDescription: value }),
      ).matched,
      true,
    );
    // A surrogate pair across the cut is dropped whole, never half.
    const emoji = `${'x'.repeat(MAX_REGEX_VALUE_LENGTH - 1)}\u{1F600}`;
    assert.equal(
      matchRule(
        rule([{ TagName: 'StudyDescription', Operator: 'regex', Value: '^x+$' }]),
        studyWith({ StudyDescription: emoji }),
      ).matched,
      true,
    );
    // The other operators compare whole values, as before.
    assert.equal(
      matchRule(
        rule([{ TagName: 'StudyDescription', Operator: 'endsWith', Value: 'def' }]),
        studyWith({ StudyDescription: value }),
      ).matched,
      true,
    );
  });

  const unsupported: Array<[string, string, RegExp]> = [
    ['a backreference', '(a)\\1', /backreferences .* not supported/],
    ['a lookahead', 'MR(?=I)', /lookaround .* not supported/],
    ['a negative lookahead', '^(?!knee)', /lookaround .* not supported/],
    ['a lookbehind', '(?<=PROJ)1', /lookaround .* not supported/],
    ['a JavaScript \\u escape', '\\u00e9', /write a code point as \\x\{00E9\}/],
    ['an unbalanced bracket', '([', /missing closing/],
    ['a repeat count RE2 refuses', '(a{999}){999}', /invalid repeat count/],
  ];
  for (const [label, pattern, why] of unsupported) {
    it(`refuses ${label} with the file, the tag and the reason`, () => {
      const { rule: parsed, problems } = parseRule(
        'bad',
        'bad.json',
        JSON.stringify({
          CheckOn: 'Study',
          Tags: [{ TagName: 'Modality', Value: 'MR' }],
          AnyOf: [[{ TagName: 'SeriesDescription', Operator: 'notRegex', Value: pattern }]],
        }),
      );
      assert.equal(parsed, undefined);
      const errors = problems.filter((p) => p.severity === 'error');
      assert.equal(errors.length, 1, JSON.stringify(problems));
      assert.equal(errors[0].file, 'bad.json');
      assert.equal(errors[0].path, 'AnyOf[0][0].Value');
      assert.match(errors[0].message, /^invalid regular expression for SeriesDescription: /);
      assert.match(errors[0].message, /RE2 syntax/);
      assert.match(errors[0].message, why);
    });
  }

  it('refuses a pattern longer or more complex than the limits', () => {
    const refused = (value: string) => {
      const { rule: parsed, problems } = parseRule(
        'big',
        'big.json',
        JSON.stringify({ CheckOn: 'Study', Tags: [{ TagName: 'StudyDescription', Operator: 'regex', Value: value }] }),
      );
      assert.equal(parsed, undefined);
      return problems[0].message;
    };
    assert.match(
      refused('a'.repeat(2000)),
      /invalid regular expression for StudyDescription: the pattern is 2000 characters long; at most 1024/,
    );
    assert.match(
      refused('(a|aa|aaa|é|éé){1000}x'),
      /invalid regular expression for StudyDescription: the pattern is too complex: it compiles to \d+ instructions, at most 1000/,
    );
    assert.match(refused('.{1000}x'), /too complex/);
  });

  describe('npm run rules -- check', () => {
    const dir = makeTempDir('crafted-rules-');
    after(() => removeTempDir(dir));

    it('names the file, the tag and the reason, and exits 1', async () => {
      writeFileSync(
        path.join(dir, 'lookahead.json'),
        JSON.stringify({
          CheckOn: 'Study',
          IsActive: true,
          Action: 'DOWNLOAD',
          Tags: [{ TagName: 'StudyDescription', Operator: 'regex', Value: 'PROJ(?!X)' }],
        }),
      );
      writeFileSync(
        path.join(dir, 'fine.json'),
        JSON.stringify({
          CheckOn: 'Study',
          IsActive: true,
          Action: 'DOWNLOAD',
          Tags: [{ TagName: 'StudyDescription', Operator: 'regex', Value: '^(a+)+$' }],
        }),
      );
      const outcome = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', path.join(REPO, 'scripts/rules-cli.ts'), 'check', dir],
        { cwd: REPO },
      ).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (error: { code: number; stdout: string }) => ({ code: error.code, stdout: error.stdout }),
      );
      console.log(outcome.stdout.trim());
      assert.equal(outcome.code, 1);
      assert.match(
        outcome.stdout,
        /ERROR +lookahead\.json Tags\[0\]\.Value: invalid regular expression for StudyDescription: lookaround .* not supported; rule regexes use RE2 syntax/,
      );
      assert.doesNotMatch(
        outcome.stdout,
        /fine\.json.*ERROR|ERROR.*fine\.json/,
        'a pattern RE2 can run is accepted, however it would backtrack',
      );
    });
  });
});

describe('replaceUids (UIDs in path names)', () => {
  const changes = (pairs: Array<[string, string]>) => new Map(pairs);

  it('replaces whole UIDs only: 1.2.3 never inside 1.2.34, 11.2.3, 1.2.3.4 or 0.1.2.3', () => {
    const map = changes([['1.2.3', '9.9']]);
    assert.equal(replaceUids('1.2.3', map), '9.9');
    assert.equal(replaceUids('1.2.3.dcm', map), '9.9.dcm', 'a dot before a non-digit ends the UID');
    assert.equal(replaceUids('SE1-20240101-1.2.3', map), 'SE1-20240101-9.9');
    assert.equal(replaceUids('1.2.34', map), '1.2.34');
    assert.equal(replaceUids('11.2.3', map), '11.2.3');
    assert.equal(replaceUids('1.2.3.4', map), '1.2.3.4');
    assert.equal(replaceUids('0.1.2.3', map), '0.1.2.3');
    assert.equal(replaceUids('a1.2.3b_1.2.3', map), 'a9.9b_9.9', 'every bounded occurrence');
    assert.equal(replaceUids('1.2.3-1.2.34-1.2.3', map), '9.9-1.2.34-9.9');
  });

  it('replaces 1.2.3 and 1.2.34 each by its own value, longest first', () => {
    const map = changes([
      ['1.2.3', 'A'],
      ['1.2.34', 'B'],
    ]);
    assert.equal(replaceUids('1.2.3_1.2.34', map), 'A_B');
    assert.equal(replaceUids('1.2.34/1.2.3.dcm', map), 'B/A.dcm');
  });

  it('treats a regex bomb in a UID as plain text, in bounded time', () => {
    const crafted = `2.25.${'([0-9]|[0-9])+'.repeat(40)}z`;
    const map = changes([
      [crafted, '2.25.1'],
      ['', 'never'],
    ]);
    const name = `${crafted}.dcm`;
    const { value, ms } = timed(() => replaceUids(name, map));
    console.log(`replaceUids with a ${crafted.length}-character crafted UID: ${ms.toFixed(2)} ms`);
    assert.equal(value, '2.25.1.dcm');
    assert.ok(ms < 1000, `bounded: took ${ms.toFixed(1)} ms`);
    assert.equal(replaceUids('2.25.1234z.dcm', map), '2.25.1234z.dcm', 'the pattern is not interpreted');
    const dots = changes([['1.2.3', 'x']]);
    assert.equal(replaceUids('1a2b3', dots), '1a2b3', 'a dot in a UID is a dot, not "any character"');
    const long = `${'1.'.repeat(50_000)}1`;
    const t = timed(() => replaceUids(long, changes([['1.1', 'x']])));
    console.log(`replaceUids over a ${long.length}-character name of overlapping near-matches: ${t.ms.toFixed(1)} ms`);
    assert.equal(t.value, long);
    assert.ok(t.ms < 1000, `bounded: took ${t.ms.toFixed(1)} ms`);
  });
});
