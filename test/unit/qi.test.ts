/**
 * The QI view's figures on the in-memory job store: percentiles, the funnel, grouping by rule,
 * destination, step and reason, the day range; and the Prometheus text, parsed back line by line.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  failStep,
  finishStep,
  newJob,
  startStep,
  waitStep,
  type Job,
  type RuleSnapshot,
} from '../../shared/pipeline/job';
import { readQuery } from '../../shared/azure-functions/http';
import { prometheusText } from '../../shared/operator/metrics';
import { jobTelemetryOf, normaliseReason, percentiles, qiQuerySchema, readQi } from '../../shared/operator/qi';
import { jobItems } from '../../shared/telemetry';
import type { PipelineStep } from '../../shared/vocabulary';
import { createMemoryStorage } from '../support/memory-storage';
import { parsePrometheus } from '../support/prometheus';

const NOW = new Date('2026-12-01T12:00:00Z');
const MINUTE = 60_000;
const forwarding: RuleSnapshot = {
  id: 'to_pacs',
  checkOn: 'Study',
  steps: ['forward'],
  destinations: ['PACS', 'AI "node"\\1'],
};
const downloading: RuleSnapshot = { id: 'research', checkOn: 'Study', steps: ['download'], destinations: [] };

let counter = 0;
const studies = new Map<string, string>();
function job(rule: RuleSnapshot, createdAt: Date, study: string): Job {
  counter += 1;
  return newJob(
    {
      rule,
      level: 'Study',
      resourceId: study,
      studyInstanceUid: studies.get(study) ?? studies.set(study, `1.2.826.0.1.${studies.size + 1}`).get(study),
      lastUpdate: createdAt.toISOString(),
      source: 'webhook',
      forced: false,
    },
    counter.toString(16).padStart(32, '0'),
    createdAt,
  );
}

/** Runs every step of `j` to success, the last one ending `tookMs` after the job was created. */
function succeed(j: Job, tookMs: number, detail?: Record<string, unknown>): Job {
  const end = new Date(Date.parse(j.createdAt) + tookMs);
  for (const step of j.steps.map((s) => s.name)) {
    startStep(j, step, new Date(j.createdAt));
    finishStep(j, step, { detail: step === 'forward' ? detail : undefined }, end);
  }
  return j;
}

function fail(j: Job, step: PipelineStep, reason: string, detail?: Record<string, unknown>): Job {
  const at = new Date(Date.parse(j.createdAt) + MINUTE);
  for (const s of j.steps.map((r) => r.name)) {
    startStep(j, s, new Date(j.createdAt));
    if (s === step) {
      if (detail) waitStep(j, s, detail);
      failStep(j, s, reason, at);
      break;
    }
    finishStep(j, s, {}, at);
  }
  return j;
}

const both = {
  destinations: { PACS: { status: 'done', attempts: 1 }, 'AI "node"\\1': { status: 'done', attempts: 1 } },
};
const aiDown = {
  destinations: { PACS: { status: 'done', attempts: 1 }, 'AI "node"\\1': { status: 'retrying', attempts: 5 } },
};

/** Twelve jobs over 10 days; 6 of them in the last day. */
async function seeded(maxJobs?: number) {
  const storage = createMemoryStorage({ now: () => NOW });
  const ago = (ms: number) => new Date(NOW.getTime() - ms);
  const jobs: Job[] = [];
  // The last day: ten forwards to two destinations taking 1..10 s, on five studies (two jobs each: new instances).
  for (let i = 1; i <= 10; i += 1) jobs.push(succeed(job(forwarding, ago(i * MINUTE), `s${i % 5}`), i * 1000, both));
  // Two forwards where the AI node refused: the same failure, on different ports and studies.
  jobs.push(
    fail(
      job(forwarding, ago(30 * MINUTE), 'f1'),
      'forward',
      'destination AI: refused by 127.0.0.1:4242 (after 5 attempts)',
      aiDown,
    ),
  );
  jobs.push(
    fail(
      job(forwarding, ago(31 * MINUTE), 'f2'),
      'forward',
      'destination AI: refused by 127.0.0.1:11112 (after 5 attempts)',
      aiDown,
    ),
  );
  // A download rule: one success on a study also forwarded, one failure naming a UID and a path, one still queued.
  jobs.push(succeed(job(downloading, ago(2 * MINUTE), 's1'), 60_000));
  jobs.push(
    fail(
      job(downloading, ago(40 * MINUTE), 'd1'),
      'download',
      'instance 1.2.840.113619.2.55.3.604688119 could not be written to /srv/storage/research/x.WORKING',
    ),
  );
  jobs.push(job(downloading, ago(50 * MINUTE), 'd2'));
  // Older: three days ago (7- and 30-day ranges) and ten days ago (30 only).
  jobs.push(succeed(job(downloading, ago(3 * 24 * 60 * MINUTE), 'old3'), 120_000));
  jobs.push(fail(job(downloading, ago(10 * 24 * 60 * MINUTE), 'old10'), 'download', 'disk full'));
  for (const j of jobs) await storage.jobs.create(j);
  return { storage, read: (days: number) => readQi(storage.jobs, days, NOW, maxJobs) };
}

describe('QI figures', () => {
  it('takes nearest-rank percentiles', () => {
    assert.equal(percentiles([]), undefined);
    assert.deepEqual(percentiles([5]), { count: 1, p50: 5, p90: 5, p99: 5 });
    const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
    assert.deepEqual(percentiles(hundred), { count: 100, p50: 50, p90: 90, p99: 99 });
    assert.deepEqual(percentiles([10, 1, 2, 3, 4, 5, 6, 7, 8, 9]), { count: 10, p50: 5, p90: 9, p99: 10 });
  });

  it('groups reasons by their shape: ids, UIDs, paths and numbers replaced', () => {
    assert.equal(
      normaliseReason('forward: destination AI: refused by 127.0.0.1:4242 (after 5 attempts)'),
      normaliseReason('forward: destination AI: refused by 10.0.0.7:104 (after 3 attempts)'),
    );
    assert.equal(
      normaliseReason(
        'download: instance 1.2.840.10008.5 of 0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d-0a1b2c3d at /srv/ab/c.dcm',
      ),
      'download: instance <uid> of <orthanc-id> at <path>',
    );
    assert.equal(normaliseReason(`job ${'ab'.repeat(16)} gave up`), 'job <job-id> gave up');
    assert.ok(normaliseReason('x'.repeat(500)).length <= 200);
  });

  it('counts the funnel, turnarounds per rule and destination, failures by step and top reasons over a day', async () => {
    const { read } = await seeded();
    const qi = await read(1);
    assert.equal(qi.days, 1);
    assert.equal(qi.from, '2026-11-30T12:00:00.000Z');
    assert.deepEqual(
      qi.funnel.map((s) => [s.stage, s.count]),
      [
        ['received', 9], // s0..s4, f1, f2, d1, d2
        ['matched', 15],
        ['processed', 11],
        ['delivered', 11],
        ['resultsBack', 0],
      ],
    );
    assert.match(qi.funnel.at(-1)!.note, /of 0 expecting results/);
    assert.deepEqual(qi.jobs, { created: 15, succeeded: 11, failed: 3, running: 0, queued: 1 });
    assert.deepEqual(qi.rules.to_pacs, {
      succeeded: 10,
      failed: 2,
      open: 0,
      turnaround: { count: 10, p50: 5000, p90: 9000, p99: 10000 },
    });
    assert.deepEqual(qi.rules.research.turnaround, { count: 1, p50: 60_000, p90: 60_000, p99: 60_000 });
    assert.equal(qi.rules.research.open, 1);
    assert.deepEqual(qi.destinations.PACS, {
      jobs: 12,
      delivered: 12,
      failed: 0,
      turnaround: { count: 10, p50: 5000, p90: 9000, p99: 10000 },
    });
    assert.deepEqual(qi.destinations['AI "node"\\1'], {
      jobs: 12,
      delivered: 10,
      failed: 2,
      turnaround: { count: 10, p50: 5000, p90: 9000, p99: 10000 },
    });
    assert.deepEqual(qi.failuresByStep, { forward: 2, download: 1 });
    assert.deepEqual(qi.topErrors, [
      {
        reason: 'forward: destination AI: refused by <uid>:N (after N attempts)',
        count: 2,
        rules: ['to_pacs'],
      },
      { reason: 'download: instance <uid> could not be written to <path>', count: 1, rules: ['research'] },
    ]);
    assert.equal(
      qi.hourOfDay.reduce((n, h) => n + h.jobs, 0),
      15,
    );
    assert.equal(qi.hourOfDay[11].jobs, 15, 'all created between 11:00 and 12:00 UTC');
    assert.equal(qi.hourOfDay[11].failed, 3);
    assert.deepEqual(qi.read, { jobs: 15, limit: 2000, complete: true });
  });

  it('widens with the day range', async () => {
    const { read } = await seeded();
    const week = await read(7);
    assert.equal(week.jobs.created, 16);
    assert.equal(week.rules.research.turnaround?.count, 2);
    const month = await read(30);
    assert.equal(month.jobs.created, 17);
    assert.deepEqual(month.failuresByStep, { forward: 2, download: 2 });
    assert.ok(month.topErrors.some((e) => e.reason === 'download: disk full'));
  });

  it('says when the jobs read for destinations and reasons did not cover the range', async () => {
    const { read } = await seeded(5);
    const qi = await read(1);
    assert.deepEqual(qi.read, { jobs: 5, limit: 2000, complete: false });
    assert.equal(qi.jobs.created, 15, 'counts still come from the whole index');
    assert.match(qi.funnel.find((s) => s.stage === 'delivered')!.note, /of the 5 newest jobs read/);
  });

  it('takes days from the query: 1 by default, 1 to 30, nothing else', () => {
    const parse = (q: Record<string, string>) => readQuery({ query: new URLSearchParams(q) }, qiQuerySchema);
    assert.deepEqual(parse({}), { ok: true, value: { days: 1 } });
    assert.deepEqual(parse({ days: '30', code: 'key' }), { ok: true, value: { days: 30 } });
    for (const bad of [{ days: '0' }, { days: '31' }, { days: 'x' }, { day: '7' }] as Record<string, string>[])
      assert.equal(parse(bad).ok, false, JSON.stringify(bad));
  });
});

describe('QI figures as telemetry', () => {
  it('sends an ended job’s turnaround by rule, and each destination delivered or failed', () => {
    const open = job(forwarding, new Date(NOW.getTime() - MINUTE), 'tele');
    assert.equal(jobTelemetryOf(open), undefined, 'an open job sends nothing');
    const failed = fail(job(forwarding, new Date(NOW.getTime() - MINUTE), 'tele'), 'forward', 'refused', aiDown);
    const ended = jobTelemetryOf(failed)!;
    assert.deepEqual(ended.destinations, { PACS: true, 'AI "node"\\1': false });
    assert.equal(ended.turnaroundMs, MINUTE);
    const items = jobItems(ended);
    assert.deepEqual(
      items.metrics.map((m) => [m.name, m.value, (m.properties as { destination?: string }).destination]),
      [
        ['pipeline.job.turnaround_ms', MINUTE, undefined],
        ['pipeline.destination.turnaround_ms', MINUTE, 'PACS'],
        ['pipeline.destination.failed', 1, 'AI "node"\\1'],
      ],
    );
    assert.deepEqual(items.event.properties, {
      jobId: failed.id,
      ruleId: 'to_pacs',
      step: 'forward',
      outcome: 'failed',
    });
  });

  it("times each destination to its own send, not to the job's end", async () => {
    const storage = createMemoryStorage({ now: () => NOW });
    const created = new Date(NOW.getTime() - MINUTE);
    const sentAfter = (ms: number) => new Date(created.getTime() + ms).toISOString();
    const sent = succeed(job(forwarding, created, 'each'), 10_000, {
      destinations: {
        PACS: { status: 'sent', attempts: 1, sentAt: sentAfter(2000) },
        'AI "node"\\1': { status: 'sent', attempts: 2, sentAt: sentAfter(9000) },
      },
    });
    await storage.jobs.create(sent);
    const qi = await readQi(storage.jobs, 1, NOW);
    assert.equal(qi.destinations.PACS.turnaround?.p50, 2000);
    assert.equal(qi.destinations['AI "node"\\1'].turnaround?.p50, 9000);
    assert.equal(qi.rules.to_pacs.turnaround?.p50, 10_000, 'the rule keeps the whole job');
    const metrics = jobItems(jobTelemetryOf(sent)!).metrics.map((m) => [m.name, m.value]);
    assert.deepEqual(metrics, [
      ['pipeline.job.turnaround_ms', 10_000],
      ['pipeline.destination.turnaround_ms', 2000],
      ['pipeline.destination.turnaround_ms', 9000],
    ]);
  });
});

describe('Prometheus text', () => {
  it('writes every figure as a gauge with HELP and TYPE, labels escaped, and parses back to the same figures', async () => {
    const { read } = await seeded();
    const qi = await read(1);
    const { contentType, body } = await prometheusText(qi);
    assert.match(contentType, /^text\/plain; version=0\.0\.4/);
    const { type, value } = parsePrometheus(body);
    assert.ok([...type.values()].every((t) => t === 'gauge'));
    assert.equal(value('autorthanc_qi_window_seconds'), 86_400);
    assert.equal(value('autorthanc_qi_read_complete'), 1);
    assert.equal(value('autorthanc_funnel', { stage: 'matched' }), 15);
    assert.equal(value('autorthanc_funnel', { stage: 'delivered' }), 11);
    assert.equal(value('autorthanc_funnel', { stage: 'resultsBack' }), 0, 'no job expected results');
    assert.equal(value('autorthanc_jobs_by_status', { status: 'failed' }), 3);
    assert.equal(value('autorthanc_rule_jobs', { rule: 'to_pacs', status: 'failed' }), 2);
    assert.equal(value('autorthanc_rule_turnaround_seconds', { rule: 'to_pacs', quantile: '0.9' }), 9);
    const ai = 'AI "node"\\1';
    assert.ok(body.includes('destination="AI \\"node\\"\\\\1"'), 'quotes and backslashes escaped');
    assert.equal(value('autorthanc_destination_jobs', { destination: ai, outcome: 'failed' }), 2);
    assert.equal(value('autorthanc_destination_turnaround_seconds', { destination: 'PACS', quantile: '0.5' }), 5);
    assert.equal(value('autorthanc_failures_by_step', { step: 'download' }), 1);
    assert.doesNotMatch(body, /1\.2\.826|refused|s[0-9]\b/, 'no study, UID or reason in the metrics');
  });
});
