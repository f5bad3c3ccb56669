/** Evaluation with fakes: matches become jobs once, derived and still-arriving studies are skipped, missing steps fail at once. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { evaluateResource, type EvaluableRule } from '../../shared/pipeline/evaluate';
import { createMemoryJobStore } from '../support/memory-storage';

const STUDY = '0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d';

function harness(rules: EvaluableRule[], study: Record<string, unknown> = {}) {
  const sent: Array<{ queue: string; message: unknown }> = [];
  const ledger = createMemoryJobStore();
  const deps = {
    orthanc: {
      getStudy: async () => ({
        ID: STUDY,
        IsStable: true,
        LastUpdate: '20260101T000000',
        MainDicomTags: { StudyInstanceUID: '1.2.3' },
        Series: [],
        ...study,
      }),
      getSeries: async () => {
        throw new Error('unused');
      },
    },
    rules: {
      load: async () => ({ rules }),
      collectTags: async () => ({}),
      match: (rule: EvaluableRule) => ({
        matched: rule.id !== 'nomatch',
        failures: rule.id === 'nomatch' ? ['StudyDescription contains "x": failed'] : [],
      }),
    },
    jobs: ledger,
    queues: {
      send: async (queue: string, message: unknown) => void sent.push({ queue, message }),
      depth: async () => 0,
    },
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  };
  return { deps: deps as unknown as Parameters<typeof evaluateResource>[0], ledger, sent };
}

const rule = (id: string, over: Partial<EvaluableRule> = {}): EvaluableRule => ({
  id,
  checkOn: 'Study',
  active: true,
  steps: ['download'],
  destinations: [],
  includeDerived: false,
  ...over,
});
const message = {
  level: 'Study' as const,
  resourceId: STUDY,
  source: 'webhook' as const,
  force: false,
  includeSeries: false,
};

describe('evaluateResource', () => {
  it('creates one job per matching rule and enqueues its first step; a later evaluation re-sends it only while the job has not started', async () => {
    const { deps, ledger, sent } = harness([
      rule('a'),
      rule('nomatch'),
      rule('inactive', { active: false }),
      rule('series', { checkOn: 'Series' }),
    ]);
    const first = await evaluateResource(deps, message);
    assert.deepEqual(
      first.map((o) => `${o.ruleId}:${o.outcome}`),
      ['a:job-created', 'nomatch:no-match'],
    );
    await evaluateResource(deps, message);
    assert.equal(ledger.jobIds().length, 1);
    assert.deepEqual(
      sent.map((s) => s.queue),
      ['step-download', 'step-download'],
    );
    await ledger.update(ledger.jobIds()[0], (j) => {
      j.attempts = 1; // the step has started
    });
    await evaluateResource(deps, message);
    assert.equal(sent.length, 2);
  });

  it('hands first steps on through the output binding when one is given, one message per job', async () => {
    const { deps, sent } = harness([rule('a'), rule('b'), rule('c', { steps: ['forward'], destinations: ['PACS'] })]);
    const handed: Array<[string, unknown]> = [];
    await evaluateResource({ ...deps, handOn: (queue, m) => handed.push([queue, m]) }, message);
    assert.deepEqual(
      handed.map(([q]) => q),
      ['step-download', 'step-download', 'step-forward'],
    );
    assert.equal(new Set(handed.map(([, m]) => (m as { jobId: string }).jobId)).size, 3);
    assert.deepEqual(sent, []);
  });

  it('skips studies Orthanc made by anonymising or modifying, unless the rule opts in', async () => {
    const { deps, ledger } = harness([rule('plain'), rule('derived-ok', { includeDerived: true })], {
      AnonymizedFrom: 'x',
    });
    const outcomes = await evaluateResource(deps, message);
    assert.deepEqual(
      outcomes.map((o) => `${o.ruleId}:${o.outcome}`),
      ['plain:skipped-derived', 'derived-ok:job-created'],
    );
    assert.equal(ledger.jobIds().length, 1);
  });

  it('leaves a study that is receiving instances again to the stable event that follows, unless the run is manual', async () => {
    const { deps, ledger, sent } = harness([rule('a'), rule('b')], { IsStable: false });
    const replayed = await evaluateResource(deps, { ...message, source: 'changeFeed' as const });
    assert.deepEqual(
      replayed.map((o) => `${o.ruleId}:${o.outcome}`),
      ['a:skipped-unstable', 'b:skipped-unstable'],
    );
    assert.equal(ledger.jobIds().length, 0);
    assert.deepEqual(sent, []);
    const manual = await evaluateResource(deps, { ...message, source: 'manual' as const, force: true });
    assert.deepEqual(
      manual.map((o) => `${o.ruleId}:${o.outcome}`),
      ['a:job-created', 'b:job-created'],
    );
  });

  it('fails at once, with the reason, a job whose pipeline needs a step this app does not register', async () => {
    const { deps, ledger, sent } = harness([rule('zips', { steps: ['download', 'zip'] })]);
    const [outcome] = await evaluateResource({ ...deps, availableSteps: new Set(['download', 'publish']) }, message);
    assert.equal(outcome.outcome, 'job-failed');
    const job = (await ledger.get(ledger.jobIds()[0]))!;
    assert.equal(job.status, 'failed');
    assert.match(
      job.error ?? '',
      /rule 'zips' needs the zip step\(s\), which this version of the function app does not provide/,
    );
    assert.deepEqual(sent, []);
  });
});
