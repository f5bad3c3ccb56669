/**
 * Crash safety: the function host is SIGKILLed at random moments while pipelines run (download,
 * anonymise, zip, publish), then restarted. Every job must complete, every result must be whole,
 * and no `.WORKING` folder may be left behind.
 *
 * Time is compressed, not faked: the devhost's message lease (10 min, as the real host) is cut to a
 * few seconds with DEVHOST_QUEUE_LEASE_SECONDS, and the app's stale-heartbeat threshold with
 * AUTOMATION_STALE_HEARTBEAT_SECONDS, so a killed step is taken over seconds after the restart
 * instead of ten minutes.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { startStack, type Stack } from '../e2e/stack';
import { LONG, allDone, figure, leftovers, outputProblems, sleep } from './common';

const KILLS = LONG ? 100 : 20;
const RULE_STEPS = { 'crash-folder': ['download'], 'crash-anon-zip': ['download', 'anonymise', 'zip'] } as const;

describe('crash safety', { timeout: LONG ? 1_800_000 : 420_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      stableAgeSeconds: 1,
      env: {
        DEVHOST_QUEUE_LEASE_SECONDS: '2',
        AUTOMATION_STALE_HEARTBEAT_SECONDS: '2',
        AUTOMATION_DOWNLOAD_CONCURRENCY: '2',
        AUTOMATION_STEP_CONCURRENCY: '2',
        ORTHANC_TIMEOUT_SECONDS: '5',
      },
    });
    for (const [id, steps] of Object.entries(RULE_STEPS)) {
      await stack.writeRule(id, {
        CheckOn: 'Study',
        IsActive: true,
        Steps: steps,
        ...(steps.includes('zip' as never) ? { Zip: { Level: 6, KeepFolder: true } } : {}),
        Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'crash test' }],
      });
    }
  });
  after(async () => stack?.stop());

  it(`survives ${KILLS} SIGKILLs during pipelines with every job complete and no partial output`, async () => {
    const crashJobs = (j: Job) => j.ruleId.startsWith('crash-');
    const studies: string[] = [];
    const hits = new Map<string, number>();
    let kills = 0;
    let batch = 0;
    const sendBatch = async () => {
      batch += 1;
      for (let i = 0; i < 3; i += 1) {
        const study = await generateStudy({
          patientID: `P-CRASH-${batch}-${i}`,
          studyID: `${batch}${i}`,
          studyDescription: 'crash test',
          series: [
            { seriesNumber: 1, modality: 'MR', instances: 24 },
            { seriesNumber: 2, modality: 'CT', instances: 6 },
          ],
        });
        await stack.sendStudy(study);
        studies.push(study.studyInstanceUID);
      }
    };
    const deadline = Date.now() + (LONG ? 1_500_000 : 300_000);
    const state = async () =>
      (await stack.jobs(crashJobs)).map(
        (j) =>
          `${j.ruleId} ${j.status} at ${j.currentStep}: ${j.steps.map((s) => `${s.name}=${s.status}/${s.attempts}`).join(' ')}${j.error ? ` (${j.error})` : ''}`,
      );
    // What runs right now: step invocations the host has started and not finished (its own log).
    const runningSteps = async () => {
      const open = new Map<string, string>();
      for (const m of stack.host
        .logs()
        .matchAll(/(Executing|Executed) 'Functions\.step([A-Za-z]+)' \(.*?Id=([0-9a-f-]{36})/g)) {
        if (m[2].endsWith('Poison')) continue;
        if (m[1] === 'Executing') open.set(m[3], m[2].toLowerCase());
        else open.delete(m[3]);
      }
      return [...open.values()];
    };
    while (kills < KILLS) {
      const all = await stack.jobs(crashJobs);
      if (all.length >= studies.length * 2 && all.every((j) => j.status === 'succeeded' || j.status === 'failed'))
        await sendBatch();
      let running: string[] = [];
      while (running.length === 0) {
        if (Date.now() > deadline)
          assert.fail(
            `only ${kills} kills landed during work before the deadline; jobs:\n${(await state()).join('\n')}\n--- devhost log tail ---\n${stack.host.logs().slice(-4000)}`,
          );
        await sleep(50 + Math.random() * 100);
        running = await runningSteps();
        if (
          running.length === 0 &&
          (await stack.jobs(crashJobs)).every((j) => j.status === 'succeeded' || j.status === 'failed') &&
          (await stack.jobs(crashJobs)).length >= studies.length * 2
        )
          break;
      }
      if (running.length === 0) continue;
      // A random moment after work resumed: the step found running may finish first, so the kill
      // lands in it, in a later step or between steps, and no step is chased from start to start.
      await sleep(Math.random() ** 2 * 1500);
      const hit = await runningSteps();
      await stack.host.kill();
      kills += 1;
      for (const step of new Set(hit.length > 0 ? hit : ['between steps'])) hits.set(step, (hits.get(step) ?? 0) + 1);
      await stack.host.start();
    }

    const jobs = await allDone(stack, studies.length * 2, crashJobs, 240_000);
    const failed = jobs.filter((j) => j.status !== 'succeeded');
    const problems = (
      await Promise.all(jobs.filter((j) => j.status === 'succeeded').map((j) => outputProblems(stack, j)))
    ).flat();
    const rest = await leftovers(stack.storageDir);
    const distribution = ['download', 'anonymise', 'zip', 'publish', 'between steps']
      .map((s) => `${s} ${hits.get(s) ?? 0}`)
      .join(', ');
    figure(
      `crash-safety: ${kills} SIGKILLs while pipelines ran (${distribution}), ${jobs.length - failed.length}/${jobs.length} jobs complete, ${problems.length} partial outputs, ${rest.length} .WORKING leftovers`,
    );
    assert.deepEqual(
      failed.map((j) => `${j.ruleId} ${j.id}: ${j.error}`),
      [],
      'every job succeeded',
    );
    assert.equal(jobs.length, studies.length * 2, 'one job per study and rule, no duplicates');
    assert.deepEqual(problems, [], 'every output is complete');
    assert.deepEqual(rest, [], 'no .WORKING or .REPLACED leftovers');
    // The anonymising jobs' originals lived in private staging; every job ended, so none is left.
    assert.deepEqual(existsSync(stack.stagingDir) ? readdirSync(stack.stagingDir) : [], [], 'no staging left');
    assert.ok(
      ['download', 'anonymise', 'zip', 'publish'].filter((s) => (hits.get(s) ?? 0) > 0).length >= 2,
      `kills landed in several steps: ${distribution}`,
    );
  });
});
