/** Completion conditions: the RequiredSeries language, durations, the decision, and evaluation's use of them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  SeriesExpressionError,
  decideCompletion,
  parseDurationSeconds,
  parseSeriesExpression,
  seriesExpressionHolds,
  type CompletionSettings,
} from '../../shared/rules/completion';
import { parseRule } from '../../shared/rules/schema';
import { evaluateResource, type EvaluableRule } from '../../shared/pipeline/evaluate';
import type { Job } from '../../shared/pipeline/job';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir } from '../support/process';

const holds = (source: string, descriptions: string[]) =>
  seriesExpressionHolds(parseSeriesExpression(source), descriptions);

describe('RequiredSeries expressions', () => {
  it('reads and/or/not with the usual precedence, parentheses, either quote, case-insensitive fragments', () => {
    const expr = "'Axial T2' and ('Sag T1 GRE' or 'Sag T1 TSE')";
    assert.equal(holds(expr, ['axial t2 fse', 'SAG T1 TSE']), true);
    assert.equal(holds(expr, ['Axial T2']), false);
    assert.equal(holds(expr, ['Sag T1 GRE']), false);
    // and binds tighter than or: a or (b and c)
    assert.equal(holds("'a' or 'b' and 'c'", ['a']), true);
    assert.equal(holds("('a' or 'b') and 'c'", ['a']), false);
    assert.equal(holds('NOT "localizer"', ['t1']), true);
    assert.equal(holds("not 'localizer' and 't1'", ['Localizer', 't1']), false);
    assert.equal(holds("'O''Brien'", ["o'brien protocol"]), true);
    // Fragments are plain text: characters that mean something in a RegExp mean nothing here.
    assert.equal(holds("'T2 (.*)'", ['T2 (.*) axial']), true);
    assert.equal(holds("'T2 (.*)'", ['T2 anything']), false);
  });

  it('names the position of the first problem', () => {
    const cases: Array<[string, number, RegExp]> = [
      ["'Axial T2' and", 15, /expected a quoted series description.*the end/],
      ["'Axial T2' 'Sag'", 12, /expected 'and', 'or' or the end/],
      ["('a' or 'b'", 12, /expected '\)'/],
      ["'a' and Sag", 9, /unexpected 'Sag' \(put series descriptions in quotes/],
      ["'a' && 'b'", 5, /unexpected '&'/],
      ["'unterminated", 1, /unterminated single quote/],
      ["'a' or ''", 8, /empty series description/],
      ['', 1, /expected a quoted series description/],
    ];
    for (const [source, position, message] of cases) {
      assert.throws(
        () => parseSeriesExpression(source),
        (e: unknown) => {
          assert.ok(e instanceof SeriesExpressionError, String(e));
          assert.equal(e.position, position, `${source}: ${e.message}`);
          assert.match(e.message, message);
          assert.match(e.message, new RegExp(`at position ${position}$`));
          return true;
        },
      );
    }
  });
});

describe('durations', () => {
  it('reads ms-style durations and bare seconds', () => {
    assert.equal(parseDurationSeconds('90m'), 5400);
    assert.equal(parseDurationSeconds('3s'), 3);
    assert.equal(parseDurationSeconds('2h'), 7200);
    assert.equal(parseDurationSeconds('1d'), 86400);
    assert.equal(parseDurationSeconds('45'), 45);
    assert.equal(parseDurationSeconds(30), 30);
    assert.equal(parseDurationSeconds('soon'), undefined);
    assert.equal(parseDurationSeconds(-1), undefined);
  });
});

describe('the Completion block in a rule file', () => {
  const ruleWith = (completion: unknown) =>
    parseRule(
      'r',
      'r.json',
      JSON.stringify({ CheckOn: 'Study', IsActive: true, Action: 'DOWNLOAD', Tags: [], Completion: completion }),
    );

  it('parses every field; OnTimeout defaults to proceed', () => {
    const { rule, problems } = ruleWith({
      StableSeconds: 600,
      RequiredSeries: "'Axial T2' and ('Sag T1 GRE' or 'Sag T1 TSE')",
      MinInstances: 100,
      ForceAfter: '90m',
    });
    assert.deepEqual(
      problems.filter((p) => p.severity === 'error'),
      [],
    );
    assert.equal(rule?.completion?.stableSeconds, 600);
    assert.equal(rule?.completion?.minInstances, 100);
    assert.equal(rule?.completion?.forceAfterSeconds, 5400);
    assert.equal(rule?.completion?.onTimeout, 'proceed');
    assert.equal(rule?.completion?.requiredSeries?.source, "'Axial T2' and ('Sag T1 GRE' or 'Sag T1 TSE')");
    assert.equal(rule?.onNewInstances, 'replace');
  });

  it('reports a RequiredSeries syntax error at its JSON path with the position; the rule is not used', () => {
    const { rule, problems } = ruleWith({ RequiredSeries: "'Axial T2' and or 'Sag'" });
    assert.equal(rule, undefined);
    const error = problems.find((p) => p.severity === 'error');
    assert.equal(error?.path, 'Completion.RequiredSeries');
    assert.match(error?.message ?? '', /found 'or' at position 16/);
  });

  it('rejects bad ForceAfter, OnTimeout and unknown keys', () => {
    assert.match(
      ruleWith({ MinInstances: 3, ForceAfter: 'later' }).problems[0]?.message ?? '',
      /'later' is not a duration/,
    );
    assert.match(
      JSON.stringify(ruleWith({ MinInstances: 3, ForceAfter: '1m', OnTimeout: 'explode' }).problems),
      /OnTimeout must be one of proceed, fail, ignore/,
    );
    assert.equal(ruleWith({ MinInstances: 3, Wait: 1 }).rule, undefined);
  });
});

describe('decideCompletion', () => {
  const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s));
  const settings: CompletionSettings = {
    stableSeconds: 10,
    requiredSeries: { source: "'T2'", expression: parseSeriesExpression("'T2'") },
    minInstances: 3,
    forceAfterSeconds: 60,
    onTimeout: 'fail',
  };
  const facts = (over: Partial<Parameters<typeof decideCompletion>[1]> = {}) => ({
    now: at(30),
    lastUpdate: at(25),
    firstArrival: at(0),
    instances: 5,
    seriesDescriptions: ['T2 axial'],
    ...over,
  });

  it('waits for StableSeconds with a recheck when it can be met', () => {
    const d = decideCompletion(settings, facts());
    assert.equal(d.kind, 'wait');
    assert.equal(d.kind === 'wait' && d.recheckSeconds, 5);
    assert.deepEqual(
      d.conditions.map((c) => `${c.condition}:${c.met}`),
      ['StableSeconds:false', 'RequiredSeries:true', 'MinInstances:true'],
    );
  });

  it('waits for a missing series until ForceAfter, then times out with OnTimeout', () => {
    const missing = decideCompletion(settings, facts({ now: at(40), seriesDescriptions: ['T1'] }));
    assert.equal(missing.kind, 'wait');
    assert.equal(missing.kind === 'wait' && missing.recheckSeconds, 20, 'rechecked when ForceAfter is reached');
    const late = decideCompletion(settings, facts({ now: at(61), seriesDescriptions: ['T1'] }));
    assert.equal(late.kind, 'timeout');
    assert.equal(late.kind === 'timeout' && late.onTimeout, 'fail');
  });

  it('without ForceAfter a missing series waits for new arrivals (no recheck)', () => {
    const d = decideCompletion(
      { ...settings, forceAfterSeconds: undefined, stableSeconds: undefined },
      facts({ instances: 1 }),
    );
    assert.equal(d.kind, 'wait');
    assert.equal(d.kind === 'wait' && d.recheckSeconds, undefined);
  });

  it('is complete when every condition holds', () => {
    assert.equal(decideCompletion(settings, facts({ now: at(40) })).kind, 'complete');
  });
});

describe('evaluation with Completion', () => {
  const STUDY = '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';
  const SERIES = '1a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';

  function harness(rule: EvaluableRule, descriptions: string[], clock: () => Date) {
    const sent: Array<{ queue: string; message: Record<string, unknown>; delay?: number }> = [];
    const jobs: Job[] = [];
    const deps = {
      orthanc: {
        getStudy: async () => ({
          ID: STUDY,
          IsStable: true,
          LastUpdate: '20260101T000000',
          MainDicomTags: { StudyInstanceUID: '1.2.3' },
          Series: descriptions.map(() => SERIES),
        }),
        getSeries: async () => ({
          ID: SERIES,
          Instances: ['i1', 'i2'],
          MainDicomTags: { SeriesDescription: descriptions.shift() ?? '' },
        }),
        getMetadata: async () => '20260101T000000',
      },
      rules: {
        load: async () => ({ rules: [rule] }),
        collectTags: async () => ({}),
        match: () => ({ matched: true, failures: [] }),
      },
      jobs: {
        create: async (job: Job) => {
          const existing = jobs.find((j) => j.id === job.id);
          if (existing) return { job: existing, created: false };
          jobs.push(job);
          return { job, created: true };
        },
      },
      queues: {
        send: async (queue: string, message: Record<string, unknown>, options?: { delaySeconds?: number }) =>
          void sent.push({ queue, message, delay: options?.delaySeconds }),
        depth: async () => 0,
      },
      log: { info: () => undefined, warn: () => undefined, error: () => undefined },
      now: clock,
    };
    return { deps: deps as unknown as Parameters<typeof evaluateResource>[0], jobs, sent };
  }
  const base: EvaluableRule = {
    id: 'complete-me',
    checkOn: 'Study',
    active: true,
    steps: ['download'],
    destinations: [],
    includeDerived: false,
  };
  const message = {
    level: 'Study' as const,
    resourceId: STUDY,
    source: 'webhook' as const,
    force: false,
    includeSeries: false,
  };
  const t = (s: number) => () => new Date(Date.UTC(2026, 0, 1, 0, 0, s));

  it('StableSeconds: a delayed re-evaluation for this rule, then a job that records what it waited for', async () => {
    const rule = { ...base, completion: { stableSeconds: 20, onTimeout: 'proceed' as const } };
    const first = harness(rule, ['T1'], t(5));
    const [outcome] = await evaluateResource(first.deps, message);
    assert.equal(outcome.outcome, 'waiting-completion');
    assert.deepEqual(first.jobs, []);
    assert.equal(first.sent.length, 1);
    assert.equal(first.sent[0].queue, 'evaluate');
    assert.equal(first.sent[0].delay, 15);
    assert.deepEqual(first.sent[0].message.ruleIds, ['complete-me']);
    assert.deepEqual(first.sent[0].message.waitedFor, ['StableSeconds']);

    const again = harness(rule, ['T1'], t(21));
    const [done] = await evaluateResource(again.deps, first.sent[0].message as never);
    assert.equal(done.outcome, 'job-created');
    assert.equal(again.jobs[0].completion?.outcome, 'complete');
    assert.deepEqual(again.jobs[0].completion?.waitedFor, ['StableSeconds']);
  });

  it('StableSeconds met first by another evaluation (the change feed, later) still records the wait', async () => {
    const rule = { ...base, completion: { stableSeconds: 20, onTimeout: 'proceed' as const } };
    const late = harness(rule, ['T1'], t(25));
    const [done] = await evaluateResource(late.deps, { ...message, source: 'changeFeed' as const });
    assert.equal(done.outcome, 'job-created');
    assert.deepEqual(late.jobs[0].completion?.waitedFor, ['StableSeconds']);
  });

  it('ForceAfter with each OnTimeout: proceed runs with a warning, fail makes a failed job, ignore makes none', async () => {
    const expression = { source: "'T2'", expression: parseSeriesExpression("'T2'") };
    for (const onTimeout of ['proceed', 'fail', 'ignore'] as const) {
      const rule = { ...base, completion: { requiredSeries: expression, forceAfterSeconds: 30, onTimeout } };
      const waiting = harness(rule, ['T1'], t(10));
      assert.equal((await evaluateResource(waiting.deps, message))[0].outcome, 'waiting-completion');
      assert.equal(waiting.sent[0].delay, 20);
      const late = harness(rule, ['T1'], t(31));
      const [o] = await evaluateResource(late.deps, waiting.sent[0].message as never);
      if (onTimeout === 'ignore') {
        assert.equal(o.outcome, 'skipped-incomplete');
        assert.match(o.detail ?? '', /RequiredSeries 'T2' not present.*OnTimeout is 'ignore'/);
        assert.deepEqual(late.jobs, []);
      } else {
        const [job] = late.jobs;
        assert.equal(job.completion?.outcome, 'timeout');
        assert.deepEqual(job.completion?.waitedFor, ['RequiredSeries']);
        if (onTimeout === 'fail') {
          assert.equal(o.outcome, 'job-failed');
          assert.equal(job.status, 'failed');
          assert.match(job.error ?? '', /incomplete: ForceAfter 30s passed .*RequiredSeries 'T2' not present/);
        } else {
          assert.equal(o.outcome, 'job-created');
          assert.match(job.warnings.join('\n'), /OnTimeout is 'proceed'/);
        }
      }
      assert.equal(late.sent.filter((s) => s.queue === 'evaluate').length, 0, 'no further re-evaluation');
    }
  });

  it("a manual run goes at once and records 'manual'", async () => {
    const rule = { ...base, completion: { minInstances: 100, onTimeout: 'proceed' as const } };
    const h = harness(rule, ['T1'], t(1));
    const [o] = await evaluateResource(h.deps, { ...message, source: 'manual', force: true });
    assert.equal(o.outcome, 'job-created');
    assert.equal(h.jobs[0].completion?.outcome, 'manual');
    assert.deepEqual(
      h.jobs[0].completion?.conditions.map((c) => `${c.condition} ${c.observed}/${c.required} ${c.met}`),
      ['MinInstances 2/100 false'],
    );
  });
});

describe('rules check', () => {
  it('reports a RequiredSeries syntax error with the file, the JSON path and the position, and exits 1', async () => {
    const dir = makeTempDir('rules-check-');
    writeFileSync(
      path.join(dir, 'mri.json'),
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [],
        Completion: { RequiredSeries: "'Axial T2' and ('Sag T1 GRE' or 'Sag T1 TSE'", ForceAfter: '90m' },
      }),
    );
    writeFileSync(
      path.join(dir, 'good.json'),
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [],
        Completion: { MinInstances: 2 },
      }),
    );
    const cli = path.resolve(__dirname, '../../scripts/rules-cli.ts');
    const outcome = await promisify(execFile)(process.execPath, ['--import', 'tsx', cli, 'check', dir]).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    assert.equal(outcome.code, 1, outcome.stdout);
    assert.match(
      outcome.stdout,
      /ERROR\s+mri\.json Completion\.RequiredSeries: invalid expression: expected '\)' but found the end at position 45/,
    );
    assert.match(outcome.stdout, /ok\s+good\.json/);
  });
});
