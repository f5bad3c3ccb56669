/**
 * Round trips without servers: ExpectResults and CheckOn Result in rule files, results linked to the
 * job that forwarded their study (same StudyInstanceUID, or a reference to it), CheckOn Result rules
 * matched on the result only, and overdue results shown and alerted once. Orthanc is a fake holding
 * studies, series and instances; the rules are parsed, their tags collected and matched for real.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { evaluateResource } from '../../shared/pipeline/evaluate';
import { parseRule } from '../../shared/rules/schema';
import { matchRule } from '../../shared/rules/matcher';
import { collectResourceTags } from '../../shared/rules/resource-tags';
import type { Rule } from '../../shared/rules/model';
import type { Job } from '../../shared/pipeline/job';
import { awaitedJobs, referencedStudyUids, resultsView, studyKey } from '../../shared/pipeline/roundTrip';
import { runAlertChecks } from '../../shared/alerts/checks';
import type { Alert } from '../../shared/alerts/format';
import { createMemoryJobStore } from '../support/memory-storage';
import { createMemoryAwaitedResults } from '../support/memory-awaited-results';

function rule(id: string, json: unknown): Rule {
  const { rule: parsed, problems } = parseRule(id, `${id}.json`, JSON.stringify(json));
  assert.ok(parsed, JSON.stringify(problems));
  return parsed;
}

function problemsOf(json: unknown) {
  return parseRule('r', 'r.json', JSON.stringify(json)).problems;
}

const FORWARD_TO_AI = {
  CheckOn: 'Study',
  IsActive: true,
  Action: 'FORWARD',
  DestinationModality: 'AINODE',
  Tags: [{ TagName: 'Modality', Value: 'CT' }],
  ExpectResults: { From: 'AINODE', Within: '2h' },
};

describe('ExpectResults and CheckOn Result in rule files', () => {
  it('reads From and Within, and CheckOn Result in any case', () => {
    const parsed = rule('to_ai', FORWARD_TO_AI);
    assert.deepEqual(parsed.expectResults, { from: 'AINODE', withinSeconds: 7200 });
    assert.equal(
      rule('r', { ...FORWARD_TO_AI, ExpectResults: { From: ' AINODE ', Within: '30m' } }).expectResults?.withinSeconds,
      1800,
    );
    const results = rule('route', {
      CheckOn: 'result',
      IsActive: true,
      Action: 'FORWARD',
      DestinationModality: 'PACS',
    });
    assert.equal(results.checkOn, 'Result');
    assert.equal(results.expectResults, undefined);
  });

  it('refuses what cannot be waited for, with the path and a plain message', () => {
    const messages = (json: unknown) =>
      problemsOf(json)
        .filter((p) => p.severity === 'error')
        .map((p) => `${p.path}: ${p.message}`);
    assert.deepEqual(messages({ ...FORWARD_TO_AI, ExpectResults: { From: 'AINODE', Within: 'soon' } }), [
      `ExpectResults.Within: 'soon' is not a duration; write e.g. "2h", "30m" or "90s"`,
    ]);
    assert.match(
      messages({ ...FORWARD_TO_AI, ExpectResults: { From: 'AI\\NODE', Within: '1h' } })[0],
      /^ExpectResults\.From: .*AE title/,
    );
    assert.match(
      messages({ ...FORWARD_TO_AI, ExpectResults: { From: 'A'.repeat(17), Within: '1h' } })[0],
      /1-16 characters/,
    );
    assert.match(
      messages({ ...FORWARD_TO_AI, ExpectResults: { Within: '1h' } })[0],
      /^ExpectResults\.From: is required/,
    );
    assert.deepEqual(
      messages({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        ExpectResults: { From: 'AINODE', Within: '1h' },
      }),
      ["ExpectResults: ExpectResults waits for results of what the rule forwarded: add a 'forward' step"],
    );
    assert.match(
      messages({ ...FORWARD_TO_AI, ExpectResults: { From: 'AINODE', Within: '1h', Whithin: 1 } })[0],
      /ExpectResults/,
    );
    assert.match(
      messages({ ...FORWARD_TO_AI, CheckOn: 'Results' })[0],
      /^CheckOn: CheckOn must be one of Study, Series, Result/,
    );
  });

  it('loads the examples without a problem', () => {
    const examples = path.resolve(__dirname, '../../examples/rules');
    for (const file of ['ai_round_trip.json', 'ai_results_to_pacs.json']) {
      const { rule: parsed, problems } = parseRule(file, file, readFileSync(path.join(examples, file), 'utf8'));
      assert.deepEqual(problems, [], file);
      assert.ok(parsed);
    }
  });

  it('keeps autorthanc files as they were: no ExpectResults, no new problems', () => {
    const autorthanc = { CheckOn: 'Study', IsActive: true, Action: 'FORWARD', DestinationModality: 'PACS', Tags: [] };
    assert.deepEqual(problemsOf(autorthanc), []);
    assert.equal(rule('plain', autorthanc).expectResults, undefined);
  });
});

describe('what a result refers to', () => {
  it('reads ReferencedStudySequence, SR evidence and GSPS/SEG study references, only real UIDs', () => {
    assert.deepEqual(
      referencedStudyUids({
        ReferencedStudySequence: [
          { ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.1', ReferencedSOPInstanceUID: '1.2.3.4' },
          { ReferencedSOPClassUID: '1.2.840.10008.5.1.4.1.1.2', ReferencedSOPInstanceUID: '9.9.9' },
        ],
        CurrentRequestedProcedureEvidenceSequence: [{ StudyInstanceUID: '1.2.3.5', ReferencedSeriesSequence: [] }],
        PertinentOtherEvidenceSequence: [{ StudyInstanceUID: '1.2.3.4' }],
        StudiesContainingOtherReferencedInstancesSequence: [
          { StudyInstanceUID: 'not a uid' },
          { StudyInstanceUID: '1.2.3.6' },
        ],
        StudyInstanceUID: '7.7.7',
      }),
      ['1.2.3.4', '1.2.3.5', '1.2.3.6'],
    );
    assert.deepEqual(referencedStudyUids({ ReferencedStudySequence: 'oops' }), []);
  });
});

/** A fake Orthanc: studies of series of instances, each series sent by one AE title. */
function fakeOrthanc() {
  interface FakeSeries {
    study: string;
    modality: string;
    description: string;
    aet: string;
    tags: Record<string, unknown>;
    lastUpdate: string;
  }
  const studies = new Map<string, { uid: string; description: string; series: string[]; lastUpdate: string }>();
  const series = new Map<string, FakeSeries>();
  const studyOf = (id: string) => {
    const s = studies.get(id);
    if (!s) throw Object.assign(new Error(`no study ${id}`), { notFound: true });
    return s;
  };
  const orthanc = {
    async getStudy(id: string) {
      const s = studyOf(id);
      return {
        ID: id,
        Type: 'Study' as const,
        ParentPatient: 'patient-1',
        IsStable: true,
        LastUpdate: s.lastUpdate,
        MainDicomTags: { StudyInstanceUID: s.uid, StudyDescription: s.description },
        PatientMainDicomTags: { PatientID: 'P-SECRET', PatientName: 'Doe^Jane' },
        Series: [...s.series],
      };
    },
    async getSeries(id: string) {
      const s = series.get(id)!;
      return {
        ID: id,
        Type: 'Series' as const,
        ParentStudy: s.study,
        IsStable: true,
        LastUpdate: s.lastUpdate,
        MainDicomTags: { Modality: s.modality, SeriesDescription: s.description },
        Instances: [`${id}-i1`],
      };
    },
    async getInstanceTags(instance: string) {
      return series.get(instance.replace(/-i1$/, ''))!.tags;
    },
    async getInstanceTagsByNumber() {
      return {};
    },
    async getMetadata(_level: string, instance: string, name: string) {
      return name === 'RemoteAET' ? series.get(instance.replace(/-i1$/, ''))!.aet : undefined;
    },
  };
  let clock = 0;
  const stamp = () => `20261202T0600${String((clock += 1)).padStart(2, '0')}`;
  return {
    orthanc,
    addStudy(id: string, uid: string, description = 'CT chest') {
      studies.set(id, { uid, description, series: [], lastUpdate: stamp() });
    },
    addSeries(id: string, study: string, spec: Partial<FakeSeries> & { aet: string; modality: string }) {
      series.set(id, { study, description: '', tags: {}, lastUpdate: stamp(), ...spec });
      const s = studyOf(study);
      s.series.push(id);
      s.lastUpdate = stamp();
    },
  };
}

function harness(rules: Rule[]) {
  const dicom = fakeOrthanc();
  const jobs = createMemoryJobStore();
  const awaited = createMemoryAwaitedResults();
  const sent: string[] = [];
  const lines: string[] = [];
  const log = {
    info: (l: string) => lines.push(l),
    warn: (l: string) => lines.push(l),
    error: (l: string) => lines.push(l),
  };
  const deps: Parameters<typeof evaluateResource<Rule, Awaited<ReturnType<typeof collectResourceTags>>>>[0] = {
    orthanc: dicom.orthanc,
    rules: {
      load: async () => ({ rules }),
      collectTags: (level, id, needed) => collectResourceTags(dicom.orthanc, level, id, needed),
      match: (r, tags) => {
        const m = matchRule(r, tags);
        return { matched: m.matched, failures: m.reasons.filter((x) => !x.passed).map((x) => x.explanation) };
      },
    },
    jobs,
    queues: { send: async (queue: string) => void sent.push(queue), depth: async () => 0 },
    log,
    roundTrips: { awaited, jobs, orthanc: dicom.orthanc },
  };
  const evaluate = (studyId: string) =>
    evaluateResource(deps, {
      level: 'Study',
      resourceId: studyId,
      source: 'webhook',
      force: false,
      includeSeries: false,
    });
  /** The forward step of a job as the forward step records it when every destination is sent. */
  const forwarded = (id: string, endedAt: Date) =>
    jobs.update(id, (j) => {
      const step = j.steps.find((s) => s.name === 'forward')!;
      step.status = 'succeeded';
      step.endedAt = endedAt.toISOString();
      j.status = 'succeeded';
      j.finishedAt = endedAt.toISOString();
    });
  const evaluateSeries = (seriesId: string) =>
    evaluateResource(deps, {
      level: 'Series',
      resourceId: seriesId,
      source: 'webhook',
      force: false,
      includeSeries: false,
    });
  return { dicom, jobs, awaited, evaluate, evaluateSeries, forwarded, lines };
}

const RULES = () => [
  rule('to_ai', FORWARD_TO_AI),
  rule('route_sr', {
    CheckOn: 'Result',
    IsActive: true,
    Action: 'FORWARD',
    DestinationModality: 'PACS',
    Tags: [{ TagName: 'Modality', Operator: 'equals', Value: 'SR' }],
  }),
  rule('never', {
    CheckOn: 'Result',
    IsActive: true,
    Action: 'FORWARD',
    DestinationModality: 'PACS',
    Tags: [{ TagName: 'Modality', Operator: 'equals', Value: 'SEG' }],
  }),
];

const outcomesOf = (list: Awaited<ReturnType<typeof evaluateResource>>) => list.map((o) => `${o.ruleId}:${o.outcome}`);

describe('linking results to the job that forwarded their study', () => {
  it('links series from the AI node in the same study, runs CheckOn Result rules on them and never re-forwards', async () => {
    const h = harness(RULES());
    h.dicom.addStudy('S1', '1.2.826.1.1');
    h.dicom.addSeries('A', 'S1', { aet: 'CTSCANNER', modality: 'CT' });
    assert.deepEqual(outcomesOf(await h.evaluate('S1')), ['to_ai:job-created']);
    const [original] = await h.jobs.listRecent({ limit: 10 }).then((p) => p.jobs);
    assert.deepEqual(original.roundTrip, { from: 'AINODE', withinSeconds: 7200, results: [] });
    assert.equal((await h.awaited.open())[0].studyKey, studyKey('1.2.826.1.1'));
    const sentAt = new Date();
    await h.forwarded(original.id, sentAt);

    h.dicom.addSeries('B', 'S1', { aet: 'ainode', modality: 'SR' }); // AE titles compare in any case
    const second = await h.evaluate('S1');
    assert.deepEqual(outcomesOf(second), ['to_ai:skipped-result', 'route_sr:job-created', 'never:no-match']);
    const linked = (await h.jobs.get(original.id))!;
    assert.equal(linked.roundTrip?.results.length, 1);
    assert.deepEqual(linked.roundTrip?.results[0].seriesIds, ['B']);
    assert.equal(linked.roundTrip?.results[0].matchedBy, 'same-study');
    assert.equal(linked.roundTrip?.expectedBy, new Date(sentAt.getTime() + 7200_000).toISOString());
    assert.equal(resultsView(linked)?.state, 'back');
    const resultJob = (await h.jobs.get(second.find((o) => o.ruleId === 'route_sr')!.jobId!))!;
    assert.equal(resultJob.resultOf, original.id);
    assert.equal(resultJob.level, 'Series', 'the result series, not the forwarded originals');
    assert.equal(resultJob.resourceId, 'B');
    assert.deepEqual(await h.awaited.open(), [], 'no longer waiting');

    const third = await h.evaluate('S1');
    assert.deepEqual(outcomesOf(third), ['to_ai:skipped-result', 'route_sr:job-exists', 'never:no-match']);
    assert.equal((await h.jobs.get(original.id))!.roundTrip?.results.length, 1, 'the same series is not linked twice');
    assert.ok(
      h.lines.every((l) => !l.includes('P-SECRET') && !l.includes('Doe')),
      h.lines.join('\n'),
    );
  });

  it('links a study of its own that refers to the forwarded one, and the result rule runs on that whole study', async () => {
    const h = harness(RULES());
    h.dicom.addStudy('S1', '1.2.826.2.1');
    h.dicom.addSeries('A', 'S1', { aet: 'CTSCANNER', modality: 'CT' });
    await h.evaluate('S1');
    const [original] = (await h.jobs.listRecent({ limit: 10 })).jobs;
    await h.forwarded(original.id, new Date());

    h.dicom.addStudy('S2', '1.2.826.2.99', 'AI findings');
    h.dicom.addSeries('C', 'S2', {
      aet: 'AINODE',
      modality: 'SR',
      tags: { CurrentRequestedProcedureEvidenceSequence: [{ StudyInstanceUID: '1.2.826.2.1' }] },
    });
    const outcomes = await h.evaluate('S2');
    assert.deepEqual(outcomesOf(outcomes), ['to_ai:no-match', 'route_sr:job-created', 'never:no-match']);
    const linked = (await h.jobs.get(original.id))!;
    assert.deepEqual(
      linked.roundTrip?.results.map((r) => [r.studyId, r.seriesIds, r.matchedBy]),
      [['S2', ['C'], 'reference']],
    );
    const resultJob = (await h.jobs.get(outcomes[1].jobId!))!;
    assert.equal(resultJob.level, 'Study');
    assert.equal(resultJob.resourceId, 'S2');
    assert.equal(resultJob.resultOf, original.id);
  });

  it('links nothing from another AE title or for an unknown study, and result rules stay quiet', async () => {
    const h = harness(RULES());
    h.dicom.addStudy('S1', '1.2.826.3.1');
    h.dicom.addSeries('A', 'S1', { aet: 'CTSCANNER', modality: 'CT' });
    await h.evaluate('S1');
    const [original] = (await h.jobs.listRecent({ limit: 10 })).jobs;
    await h.forwarded(original.id, new Date());
    h.dicom.addSeries('B', 'S1', { aet: 'WORKSTATION', modality: 'SR' });
    assert.deepEqual(outcomesOf(await h.evaluate('S1')), ['to_ai:job-created'], 'new instances, a new job, as before');
    h.dicom.addStudy('S9', '1.2.826.3.9');
    h.dicom.addSeries('Z', 'S9', { aet: 'AINODE', modality: 'SR' });
    assert.deepEqual(outcomesOf(await h.evaluate('S9')), ['to_ai:no-match'], 'no result rule ran');
    assert.equal((await h.jobs.get(original.id))!.roundTrip?.resultsAt, undefined);
  });
});

describe('a Series rule that expects results', () => {
  it('forwards series from the scanner, never a series from the AE title it expects results from', async () => {
    const h = harness([rule('series_to_ai', { ...FORWARD_TO_AI, CheckOn: 'Series', Tags: [] })]);
    h.dicom.addStudy('S1', '1.2.826.5.1');
    h.dicom.addSeries('A', 'S1', { aet: 'CTSCANNER', modality: 'CT' });
    assert.deepEqual(outcomesOf(await h.evaluateSeries('A')), ['series_to_ai:job-created']);
    h.dicom.addSeries('B', 'S1', { aet: 'AINODE', modality: 'SR' });
    const outcomes = await h.evaluateSeries('B');
    assert.deepEqual(outcomesOf(outcomes), ['series_to_ai:skipped-result']);
    assert.match(outcomes[0].detail!, /came from AINODE/);
    const [job] = (await h.jobs.listRecent({ limit: 10 })).jobs;
    await h.forwarded(job.id, new Date());
    await h.evaluate('S1');
    assert.deepEqual((await h.jobs.get(job.id))!.roundTrip?.results[0].seriesIds, ['B'], 'linked at the study');
  });
});

describe('overdue results', () => {
  const job = (over: Partial<Job>, endedAt?: string): Job =>
    ({
      id: 'j1',
      ruleId: 'to_ai',
      status: endedAt ? 'succeeded' : 'running',
      rule: {
        id: 'to_ai',
        checkOn: 'Study',
        steps: ['forward'],
        destinations: ['AINODE'],
        expectResults: { from: 'AINODE', withinSeconds: 600 },
      },
      steps: [{ name: 'forward', status: endedAt ? 'succeeded' : 'running', attempts: 1, endedAt }],
      ...over,
    }) as Job;

  it('is due Within after the forward ended: sending, awaiting, overdue, back; nothing for rules that expect nothing', () => {
    const ended = '2026-12-02T06:00:00.000Z';
    const at = (iso: string) => new Date(iso);
    assert.equal(resultsView(job({}), at('2026-12-02T09:00:00Z'))?.state, 'sending');
    assert.deepEqual(resultsView(job({}, ended), at('2026-12-02T06:09:59Z')), {
      state: 'awaiting',
      from: 'AINODE',
      results: 0,
      expectedBy: '2026-12-02T06:10:00.000Z',
    });
    assert.equal(resultsView(job({}, ended), at('2026-12-02T06:10:01Z'))?.state, 'overdue');
    const back = job(
      { roundTrip: { from: 'AINODE', withinSeconds: 600, results: [], resultsAt: '2026-12-02T06:20:00Z' } },
      ended,
    );
    assert.equal(resultsView(back, at('2026-12-03T00:00:00Z'))?.state, 'back');
    const failed = job({ status: 'failed', steps: [{ name: 'forward', status: 'failed', attempts: 5 }] });
    assert.equal(resultsView(failed, at('2026-12-03T00:00:00Z'))?.state, 'not-sent');
    assert.equal(
      resultsView(job({ rule: { id: 'x', checkOn: 'Study', steps: ['forward'], destinations: [] } }, ended)),
      undefined,
    );
  });

  it('alerts an overdue job once, with ids and times only, and not a job whose results came', async () => {
    const h = harness(RULES());
    h.dicom.addStudy('S1', '1.2.826.4.1');
    h.dicom.addSeries('A', 'S1', { aet: 'CTSCANNER', modality: 'CT' });
    h.dicom.addStudy('S2', '1.2.826.4.2');
    h.dicom.addSeries('B', 'S2', { aet: 'CTSCANNER', modality: 'CT' });
    await h.evaluate('S1');
    await h.evaluate('S2');
    const [late, answered] = (await h.jobs.listRecent({ limit: 10 })).jobs.sort((a, b) =>
      a.resourceId < b.resourceId ? -1 : 1,
    );
    const sentAt = new Date();
    const threeHoursLater = new Date(sentAt.getTime() + 3 * 3600_000);
    await h.forwarded(late.id, sentAt);
    await h.forwarded(answered.id, sentAt);
    h.dicom.addSeries('R', 'S2', { aet: 'AINODE', modality: 'SR' });
    await h.evaluate('S2');

    const soon = await awaitedJobs({ awaited: h.awaited, jobs: h.jobs }, new Date(sentAt.getTime() + 60_000));
    assert.deepEqual([soon.awaiting, soon.overdue.length], [1, 0], 'one job waits, within its two hours');

    const sentAlerts: Array<Omit<Alert, 'at'>> = [];
    const check = () =>
      runAlertChecks({
        alerts: { notify: async (a) => (sentAlerts.push(a), 'sent') },
        log: { info: () => undefined, warn: (l) => assert.fail(l), error: (l) => assert.fail(l) },
        folders: {},
        diskFreePercent: 0,
        orthanc: { echo: async () => ({ ok: true }) } as never,
        modalities: {},
        roundTrips: { awaited: h.awaited, jobs: h.jobs },
        now: () => threeHoursLater,
      });
    const report = await check();
    assert.deepEqual(report.resultsOverdue, [late.id]);
    assert.equal(sentAlerts.length, 1);
    assert.equal(sentAlerts[0].kind, 'results-overdue');
    assert.deepEqual(sentAlerts[0].fields, {
      jobId: late.id,
      ruleId: 'to_ai',
      from: 'AINODE',
      expectedBy: new Date(sentAt.getTime() + 7200_000).toISOString(),
      resourceId: 'S1',
    });
    assert.ok(!JSON.stringify(sentAlerts).includes('P-SECRET') && !JSON.stringify(sentAlerts).includes('Doe'));
    assert.ok((await h.jobs.get(late.id))!.roundTrip?.overdueAlertedAt);
    assert.deepEqual((await check()).resultsOverdue, [late.id], 'still overdue');
    assert.equal(sentAlerts.length, 1, 'alerted once');
  });
});
