/** The operator domain without servers: 24-hour counters, rule reports, progress, query parsing, telemetry items. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { finishStep, newJob, startStep, summaryOf, type RuleSnapshot } from '../../shared/pipeline/job';
import { readQuery } from '../../shared/azure-functions/http';
import { jobsQuerySchema, percentDone } from '../../shared/operator/jobs';
import { rulesReport } from '../../shared/operator/rules';
import { computeStats } from '../../shared/operator/stats';
import { createRuleLoader } from '../../shared/rules/loader';
import { createTelemetry, noTelemetry, stepItems } from '../../shared/telemetry';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const rule: RuleSnapshot = { id: 'r', checkOn: 'Study', steps: ['download'], destinations: [] };
const draft = {
  rule,
  level: 'Study' as const,
  resourceId: 'res',
  studyInstanceUid: '1.2.3',
  lastUpdate: 'x',
  source: 'webhook' as const,
  forced: false,
};

describe('24-hour counters', () => {
  it('counts jobs by status and rule and puts instances in the hour they finished', () => {
    const now = new Date('2026-12-01T12:30:00Z');
    const done = newJob(draft, 'a'.repeat(32), new Date('2026-12-01T10:05:00Z'));
    startStep(done, 'download', new Date('2026-12-01T10:05:00Z'));
    finishStep(done, 'download', { instances: 7, bytes: 700 }, new Date('2026-12-01T10:06:00Z'));
    startStep(done, 'publish');
    finishStep(done, 'publish', {}, new Date('2026-12-01T10:06:01Z'));
    const failed = {
      ...summaryOf(newJob(draft, 'b'.repeat(32), new Date('2026-12-01T12:01:00Z'))),
      status: 'failed' as const,
      finishedAt: '2026-12-01T12:02:00Z',
    };
    const open = summaryOf(
      newJob({ ...draft, rule: { ...rule, id: 'other' } }, 'c'.repeat(32), new Date('2026-12-01T12:10:00Z')),
    );
    const old = summaryOf(newJob(draft, 'd'.repeat(32), new Date('2026-11-30T11:00:00Z')));
    const stats = computeStats([summaryOf(done), failed, open, old], now);
    assert.deepEqual(stats.jobs, { created: 3, succeeded: 1, failed: 1, running: 0, queued: 1 });
    assert.equal(stats.instances, 7);
    assert.equal(stats.bytes, 700);
    assert.equal(stats.hourly.length, 24);
    assert.equal(stats.hourly.at(-1)!.hour, '2026-12-01T12:00:00.000Z');
    assert.equal(stats.hourly.find((h) => h.hour === '2026-12-01T10:00:00.000Z')!.instances, 7);
    assert.equal(stats.hourly.at(-1)!.failed, 1);
    assert.deepEqual(stats.rules, {
      r: { succeeded: 1, failed: 1, open: 0 },
      other: { succeeded: 0, failed: 0, open: 1 },
    });
  });
});

describe('job progress', () => {
  it('counts finished steps and the running step’s own progress', () => {
    const job = newJob(draft, 'e'.repeat(32));
    assert.equal(percentDone(job), 0);
    startStep(job, 'download');
    job.steps[0].progress = { done: 1, total: 2 };
    assert.equal(percentDone(job), 25);
    finishStep(job, 'download', {});
    assert.equal(percentDone(job), 50);
  });
});

describe('job query parameters', () => {
  it('applies defaults, ignores the function key and rejects unknown or bad parameters', () => {
    const ok = readQuery({ query: new URLSearchParams('status=failed&code=secret') }, jobsQuerySchema);
    assert.deepEqual(ok, { ok: true, value: { status: 'failed', limit: 50, days: 7 } });
    const bad = readQuery({ query: new URLSearchParams('PatientName=x&limit=500') }, jobsQuerySchema);
    assert.equal(bad.ok, false);
    const error = bad.ok ? '' : String((bad.response.jsonBody as { error: string }).error);
    assert.equal(bad.ok ? 0 : bad.response.status, 400);
    assert.match(error, /unknown parameter\(s\): PatientName/);
    assert.match(error, /limit/);
  });
});

describe('rules report', () => {
  it('lists valid, inactive and broken rule files with their messages', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'rules-report-'));
    await writeFile(
      path.join(dir, 'good.json'),
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Tags: [{ TagName: 'Modality', Level: 'Series', Value: 'MR' }],
      }),
    );
    await writeFile(path.join(dir, 'off.json'), JSON.stringify({ CheckOn: 'Series', IsActive: false, Tags: [] }));
    await writeFile(path.join(dir, 'bad.json'), JSON.stringify({ CheckOn: 'Sometimes', Tags: [] }));
    await writeFile(path.join(dir, 'automation_template.json'), '{}');
    const report = rulesReport(await createRuleLoader(dir).load());
    const byId = Object.fromEntries(report.rules.map((r) => [r.id, r]));
    assert.deepEqual(Object.keys(byId).sort(), ['bad', 'good', 'off']);
    assert.equal(byId.good.valid, true);
    assert.equal(byId.off.active, false);
    assert.equal(byId.bad.valid, false);
    assert.match(byId.bad.errors.join(' '), /CheckOn/);
    assert.deepEqual(report.ignored, ['automation_template.json']);
  });
});

describe('telemetry', () => {
  it('is nothing at all without a connection string: no SDK loaded', async () => {
    assert.equal(await createTelemetry(undefined), noTelemetry);
    assert.equal(await createTelemetry(''), noTelemetry);
    assert.ok(
      !Object.keys(require.cache).some((m) => m.includes(`${path.sep}applicationinsights${path.sep}`)),
      'applicationinsights was not loaded',
    );
  });

  it('describes a step by job id with duration, counts and throughput, and failures as exceptions', () => {
    const items = stepItems({
      jobId: 'j1',
      ruleId: 'r',
      step: 'download',
      outcome: 'succeeded',
      durationMs: 2000,
      instances: 10,
      bytes: 4_000_000,
    });
    assert.deepEqual(items.event.properties, { jobId: 'j1', ruleId: 'r', step: 'download', outcome: 'succeeded' });
    assert.deepEqual(items.event.measurements, {
      duration_ms: 2000,
      instances: 10,
      bytes: 4_000_000,
      throughput_mb_per_s: 2,
      instances_per_s: 5,
    });
    assert.ok(items.metrics.every((m) => m.properties.jobId === 'j1'));
    assert.equal(items.exception, undefined);
    const failed = stepItems({
      jobId: 'j2',
      ruleId: 'r',
      step: 'zip',
      outcome: 'retrying',
      durationMs: 5,
      error: new Error('ENOSPC'),
    });
    assert.equal(failed.exception?.exception.message, 'ENOSPC');
    assert.equal(failed.exception?.properties.outcome, 'retrying');
  });
});
