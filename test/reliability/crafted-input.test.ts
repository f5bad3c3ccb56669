/**
 * Crafted input never blocks the host (issue 17), on the real stack (Orthanc, Azurite, the app
 * under the devhost). Two crafted inputs, each beside normal work, while `GET /api/health` is polled
 * all along (the host runs every function in one process, so anything that blocks it shows there):
 * - a SOPInstanceUID sent with VR LO that is a regex bomb (`2.25.([0-9]|[0-9])+…z`): it once went
 *   into a RegExp when renaming paths and the anonymise step never ended;
 * - a rule with `regex` `^(a+)+$` and a study whose StudyDescription is 40 × `a` + `!`: 2^40 steps
 *   for a backtracking engine, linear on RE2.
 * Run against the code before issue 17 (the RegExp in replaceUids, rule patterns on RegExp), the
 * host's log stops at the first stepAnonymise (resp. evaluate) and both tests fail on their timeout.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from '../e2e/stack';
import { allDone, figure, outputProblems } from './common';

const HEALTH_BOUND_MS = 1000;
const CRAFTED_UID = `2.25.${'([0-9]|[0-9])+'.repeat(4)}z`;

/** Sets the SOPInstanceUID (dataset and file meta) to `uid`, the dataset element with VR LO. */
function craftSopInstanceUid(file: string, uid: string): void {
  const bytes = readFileSync(file);
  const message = dcmjs.data.DicomMessage.readFile(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength),
  );
  message.dict['00080018'] = { vr: 'LO', Value: [uid] };
  message.meta['00020003'] = { vr: 'UI', Value: [uid] };
  const out = new dcmjs.data.DicomDict(message.meta);
  out.dict = message.dict;
  writeFileSync(file, Buffer.from(out.write()));
}

/** Polls the anonymous health probe until stopped; every answer must be 200 within the bound. */
function pollHealth(stack: Stack): { stop(): Promise<{ polls: number; worstMs: number; slow: string[] }> } {
  let running = true;
  let polls = 0;
  let worstMs = 0;
  const slow: string[] = [];
  const loop = (async () => {
    while (running) {
      const started = performance.now();
      let status: number | string;
      try {
        const answer = await fetch(`${stack.host.url}/api/health`, { signal: AbortSignal.timeout(30_000) });
        await answer.arrayBuffer();
        status = answer.status;
      } catch (error) {
        status = (error as Error).name;
      }
      const ms = performance.now() - started;
      polls += 1;
      worstMs = Math.max(worstMs, ms);
      if (status !== 200 || ms >= HEALTH_BOUND_MS) slow.push(`${status} after ${ms.toFixed(0)} ms`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { polls, worstMs, slow };
    },
  };
}

const seconds = (job: Job) => (Date.parse(job.finishedAt ?? job.updatedAt) - Date.parse(job.createdAt)) / 1000;

/** Durations of the evaluate invocations logged after `from` (the devhost logs each one). */
function evaluateDurations(logs: string): number[] {
  return [...logs.matchAll(/Executed 'Functions\.evaluate' \(\w+, Id=[^,]+, Duration=(\d+)ms\)/g)].map((m) =>
    Number(m[1]),
  );
}

describe('crafted input never blocks the host', { timeout: 420_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      stableAgeSeconds: 1,
      env: { AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:01' },
    });
  });
  after(async () => stack?.stop());

  it('a regex-bomb SOPInstanceUID (VR LO) beside a normal study: the normal study is published, health answers within 1 s, the crafted job ends', async () => {
    await stack.writeRule('crafted-anon', {
      CheckOn: 'Study',
      IsActive: true,
      Steps: ['download', 'anonymise'],
      Tags: [{ TagName: 'StudyDescription', Value: 'crafted uid test' }],
    });
    const normal = await generateStudy({
      patientID: 'P-CRAFTED-NORMAL',
      studyDescription: 'crafted uid test',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 3, rows: 64 }],
    });
    const crafted = await generateStudy({
      patientID: 'P-CRAFTED-UID',
      studyDescription: 'crafted uid test',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 2, rows: 64 }],
    });
    craftSopInstanceUid(crafted.files[0], CRAFTED_UID);

    const health = pollHealth(stack);
    const sentAt = Date.now();
    let probe: Awaited<ReturnType<ReturnType<typeof pollHealth>['stop']>>;
    let jobs: Job[];
    try {
      // Both over DICOM (storescu), the crafted one first so its jobs run beside the normal one's.
      await stack.sendStudy(crafted);
      await stack.sendStudy(normal);
      const uids = [normal.studyInstanceUID, crafted.studyInstanceUID];
      jobs = await allDone(
        stack,
        2,
        (j) => j.ruleId === 'crafted-anon' && uids.includes(j.studyInstanceUid ?? ''),
        240_000,
      );
    } finally {
      probe = await health.stop();
    }
    const all = (Date.now() - sentAt) / 1000;
    const normalJob = jobs.find((j) => j.studyInstanceUid === normal.studyInstanceUID)!;
    const craftedJob = jobs.find((j) => j.studyInstanceUid === crafted.studyInstanceUID)!;
    const storedUids = (await stack.client.listInstances('studies', craftedJob.resourceId)).length;
    assert.equal(storedUids, 2, 'Orthanc stored the crafted instance beside its sibling');
    assert.ok(
      (await stack.client.lookup(CRAFTED_UID)).some((r) => r.Type === 'Instance'),
      'Orthanc holds the crafted SOPInstanceUID as sent',
    );
    figure(
      `crafted-input/uid: crafted instance (SOPInstanceUID VR LO ${JSON.stringify(CRAFTED_UID)}) beside a normal study → normal job ${normalJob.status} in ${seconds(normalJob).toFixed(1)} s, ` +
        `crafted job ${craftedJob.status} in ${seconds(craftedJob).toFixed(1)} s${craftedJob.error ? ` ("${craftedJob.error}")` : ''} (Orthanc holds ${storedUids} instances of it), ` +
        `both done ${all.toFixed(1)} s after sending; health polled ${probe.polls}×, worst ${probe.worstMs.toFixed(0)} ms`,
    );
    assert.equal(normalJob.status, 'succeeded', normalJob.error);
    assert.deepEqual(await outputProblems(stack, normalJob), [], 'the normal study is published whole');
    assert.ok(normalJob.outputPath && !normalJob.outputPath.endsWith('.WORKING'), 'published under its final name');
    if (craftedJob.status === 'succeeded')
      assert.deepEqual(
        await outputProblems(stack, craftedJob),
        [],
        'the crafted study, when processed, is published whole',
      );
    else assert.match(craftedJob.error ?? '', /\S/, 'a failed crafted job says why');
    assert.deepEqual(probe.slow, [], `health answered 200 within ${HEALTH_BOUND_MS} ms every time`);
    assert.ok(probe.polls >= 5, `health was polled while the jobs ran (${probe.polls}×)`);
  });

  it('a rule regex ^(a+)+$ against a 41-character StudyDescription is evaluated without blocking', async () => {
    await stack.writeRule('bomb-regex', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Operator: 'regex', Value: '^(a+)+$' }],
    });
    await stack.writeRule('bomb-not-regex', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [
        { TagName: 'StudyDescription', Operator: 'notRegex', Value: '^(a+)+$' },
        { TagName: 'PatientID', Value: 'P-BOMB', Operator: 'equals' },
      ],
    });
    const description = `${'a'.repeat(40)}!`;
    const study = await generateStudy({
      patientID: 'P-BOMB',
      studyDescription: description,
      series: [{ seriesNumber: 1, modality: 'MR', instances: 2, rows: 64 }],
    });
    const logStart = stack.host.logs().length;
    const health = pollHealth(stack);
    const sentAt = Date.now();
    let probe: Awaited<ReturnType<ReturnType<typeof pollHealth>['stop']>>;
    let evaluatedAfter: number;
    let job: Job;
    try {
      await stack.sendStudy(study);
      const studyId = await stack.studyId(study.studyInstanceUID);
      await waitFor(() => stack.host.logs().slice(logStart).includes(`Study ${studyId} rule 'bomb-regex': no-match`), {
        timeoutMs: 60_000,
        description: "the bomb rule's verdict",
        onTimeout: () => stack.host.logs().slice(-3000),
      });
      evaluatedAfter = (Date.now() - sentAt) / 1000;
      [job] = await stack.waitForJobs(
        1,
        (j) => j.ruleId === 'bomb-not-regex' && j.studyInstanceUid === study.studyInstanceUID,
      );
    } finally {
      probe = await health.stop();
    }
    const durations = evaluateDurations(stack.host.logs().slice(logStart));
    figure(
      `crafted-input/regex: rule ^(a+)+$ against StudyDescription of ${description.length} characters → verdict 'no-match' ${evaluatedAfter.toFixed(1)} s after sending (stable age 1 s), ` +
        `longest evaluate invocation ${Math.max(...durations)} ms of ${durations.length}; notRegex rule's job ${job.status}; health polled ${probe.polls}×, worst ${probe.worstMs.toFixed(0)} ms`,
    );
    assert.equal(job.status, 'succeeded', job.error);
    assert.deepEqual(await outputProblems(stack, job), []);
    assert.ok(durations.length >= 1, 'the evaluation ran');
    assert.ok(
      Math.max(...durations) < HEALTH_BOUND_MS * 5,
      `each evaluation is bounded (longest ${Math.max(...durations)} ms)`,
    );
    assert.deepEqual(probe.slow, [], `health answered 200 within ${HEALTH_BOUND_MS} ms every time`);
  });
});
