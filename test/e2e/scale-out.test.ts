/**
 * Scale-out (issue 23): two function app instances on one storage account (Azurite), one Orthanc
 * (index in PostgreSQL, as compose runs it) and one storage folder, as `docker compose up --scale
 * functions=2` runs them, each instance with room for six messages of a queue at once. Twelve
 * studies of 80 instances arrive together; Orthanc's events reach the instances in turn. Every study is published once and whole, both instances run steps, no step
 * starts twice, and the timers (change feed, daily sweep) never run on both instances at once, also
 * when both restart together with the sweep past due (which, without the timers' blob leases, both
 * would run at start-up).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

const STUDIES = 12;
const INSTANCES_PER_STUDY = 80;
const HOST_ID = 'e2e-scale-out';
const TIMERS = ['changeFeed', 'dailySweep'] as const;

interface TimerRun {
  timer: string;
  instance: string;
  start: number;
  end: number;
}

/** The host's own lines, `[time] Executing 'Functions.x' (..., Id=…)` and `[time] Executed 'Functions.x' (…, Id=…, …)`. */
function timerRuns(log: string, instance: string): TimerRun[] {
  const started = new Map<string, { timer: string; start: number }>();
  const runs: TimerRun[] = [];
  const line = /^\[([^\]]+)\] Execut(ing|ed) 'Functions\.(\w+)' \(.*?Id=([0-9a-f-]+)/gm;
  for (const match of log.matchAll(line)) {
    const [, at, phase, timer, id] = match;
    if (!(TIMERS as readonly string[]).includes(timer)) continue;
    if (phase === 'ing') started.set(id, { timer, start: Date.parse(at) });
    else {
      const run = started.get(id);
      if (run) runs.push({ ...run, instance, end: Date.parse(at) });
      started.delete(id);
    }
  }
  // A run still going when the log was taken lasts, for the overlap check, until now.
  for (const run of started.values()) runs.push({ ...run, instance, end: Date.now() });
  return runs;
}

function count(log: string, pattern: RegExp): number {
  return [...log.matchAll(pattern)].length;
}

async function dcmFiles(folder: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fs.readdir(folder, { withFileTypes: true, recursive: true }))
    if (entry.isFile() && entry.name.endsWith('.dcm')) out.push(entry.name);
  return out;
}

describe('scale-out: two function app instances on one storage account', { timeout: 300_000 }, () => {
  let stack: Stack;
  let studies: GeneratedStudy[];
  const began = Date.now();

  before(async () => {
    [stack, studies] = await Promise.all([
      startStack({
        instances: 2,
        postgres: true,
        stableAgeSeconds: 2,
        env: {
          AzureFunctionsWebHost__hostid: HOST_ID,
          // Each instance gets the capacity of one a site has outgrown: six messages of a queue at
          // once, fewer than the twelve studies, so the work has to spread (with host.json's 24 one
          // instance can legitimately take every step of this test before the other polls).
          AzureFunctionsJobHost__extensions__queues__batchSize: '4',
          AzureFunctionsJobHost__extensions__queues__newBatchThreshold: '2',
        },
      }),
      Promise.all(
        Array.from({ length: STUDIES }, (_, i) =>
          generateStudy({
            patientID: `P-SCALE-${i + 1}`,
            patientName: `Scale^Patient${i + 1}`,
            studyID: String(100 + i),
            studyDescription: 'scale out MR',
            series: [
              { seriesNumber: 1, modality: 'MR', instances: INSTANCES_PER_STUDY / 2 },
              { seriesNumber: 2, modality: 'MR', instances: INSTANCES_PER_STUDY / 2 },
            ],
          }),
        ),
      ),
    ]);
  });
  after(async () => {
    await stack?.stop();
    console.log(`scale-out test: ${Math.round((Date.now() - began) / 1000)} s`);
  });

  it('publishes each of 12 studies once and whole, shares the steps, and never runs a timer twice at once', async () => {
    await stack.writeRule('scale', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'scale out' }],
    });
    const ours = (j: Job) => j.ruleId === 'scale';
    const sending = Date.now();
    console.log(`scale-out: stack and studies ready after ${Math.round((sending - began) / 1000)} s`);
    await Promise.all(studies.map((study) => stack.sendStudy(study)));
    const sent = Date.now();
    const jobs = await stack.waitForJobs(STUDIES, ours, { timeoutMs: 120_000 });
    console.log(
      `scale-out: sent in ${Math.round((sent - sending) / 1000)} s, all published ${Math.round((Date.now() - sent) / 1000)} s later`,
    );
    // The change feed runs every 10 s: wait for its second run, so "on one instance only" rests on more than one.
    await waitFor(
      () => stack.hosts.reduce((n, h) => n + count(h.logs(), /Executed 'Functions\.changeFeed'/g), 0) >= 2,
      { timeoutMs: 30_000, description: 'two change feed runs' },
    );
    const firstLogs = stack.hosts.map((h) => h.logs());

    // Every study published once, complete, and nothing half-written left behind.
    assert.deepEqual(
      jobs.map((j) => j.status),
      Array<string>(STUDIES).fill('succeeded'),
      JSON.stringify(jobs.map((j) => ({ id: j.id, status: j.status, error: j.error }))),
    );
    assert.equal(new Set(jobs.map((j) => j.studyInstanceUid)).size, STUDIES, 'one job per study');
    const published = (await fs.readdir(path.join(stack.storageDir, 'scale'))).sort();
    assert.deepEqual(published, studies.map((s) => `${s.patientID}-Scale-EX${s.studyID}`).sort());
    for (const folder of published)
      assert.equal((await dcmFiles(path.join(stack.storageDir, 'scale', folder))).length, INSTANCES_PER_STUDY, folder);

    // No step started twice; both instances ran steps (the ledger names the instance of each step).
    const steps = jobs.flatMap((j) => j.steps.filter((s) => s.status === 'succeeded'));
    assert.ok(steps.length >= STUDIES * 2, `download and publish for every job (${steps.length} steps)`);
    for (const job of jobs)
      for (const step of job.steps.filter((s) => s.status === 'succeeded'))
        assert.equal(step.attempts, 1, `job ${job.id} ${step.name} started ${step.attempts} times`);
    const byInstance = new Map<string, number>();
    for (const step of steps)
      byInstance.set(step.instance ?? '(none)', (byInstance.get(step.instance ?? '(none)') ?? 0) + 1);
    assert.equal(byInstance.size, 2, `steps per instance: ${JSON.stringify(Object.fromEntries(byInstance))}`);
    assert.ok(!byInstance.has('(none)'), 'every step names its instance');
    const evaluations = firstLogs.map((log) => count(log, /Executed 'Functions\.evaluate' \(Succeeded/g));
    assert.ok(
      evaluations.every((n) => n > 0),
      `both instances evaluated events: ${evaluations.join(', ')}`,
    );

    // The change feed ran, on one instance only: the other never got its lease.
    const feedRuns = firstLogs.map((log, i) =>
      timerRuns(log, `instance ${i + 1}`).filter((r) => r.timer === 'changeFeed'),
    );
    assert.ok(feedRuns.flat().length >= 2, `the change feed ran (${feedRuns.flat().length} runs)`);
    assert.equal(feedRuns.filter((runs) => runs.length > 0).length, 1, 'the change feed runs on one instance');
    assert.ok(
      firstLogs.some((log) =>
        log.includes(`Unable to acquire Singleton lock (${HOST_ID}/Host.Functions.changeFeed.Listener)`),
      ),
      'the other instance was refused the change feed lease',
    );

    // Both instances restart together with the daily sweep past due (in its hour, so it sweeps):
    // one of them runs it, once, and the studies it re-evaluates make no new jobs.
    await fs.writeFile(
      path.join(stack.rulesDir, 'master.json'),
      JSON.stringify({ DailyCheckHour: new Date().getHours(), DailySweepEnabled: true }),
    );
    await Promise.all(stack.hosts.map((h) => h.stop()));
    // Taken after the graceful stop, so a timer run that was going at the snapshot above shows its real end.
    const stoppedLogs = stack.hosts.map((h) => h.logs());
    const status = JSON.stringify({
      Last: new Date(Date.now() - 3_660_000).toISOString(),
      Next: new Date(Date.now() - 60_000).toISOString(),
      LastUpdated: new Date(Date.now() - 3_660_000).toISOString(),
    });
    await BlobServiceClient.fromConnectionString(stack.azurite.connectionString)
      .getContainerClient('azure-webjobs-hosts')
      .getBlockBlobClient(`timers/${HOST_ID}/Host.Functions.dailySweep/status`)
      .upload(status, Buffer.byteLength(status));
    await Promise.all(stack.hosts.map((h) => h.start()));
    const sweptEvaluations = () =>
      stack.hosts.reduce((n, h) => n + count(h.logs(), /Executed 'Functions\.evaluate' \(Succeeded/g), 0);
    await waitFor(() => sweptEvaluations() >= STUDIES, {
      timeoutMs: 60_000,
      description: 'the sweep to re-evaluate every study',
      onTimeout: () => stack.hosts.map((h) => h.logs().slice(-2000)).join('\n---\n'),
    });
    await new Promise((resolve) => setTimeout(resolve, 11_000)); // another change feed run or two
    const secondLogs = stack.hosts.map((h) => h.logs());
    const sweeps = secondLogs.map((log) => count(log, /Executed 'Functions\.dailySweep' \(Succeeded/g));
    assert.deepEqual([...sweeps].sort(), [0, 1], `the past-due sweep ran once, on one instance (${sweeps.join(', ')})`);
    assert.equal((await stack.jobs(ours)).length, STUDIES, 'the sweep found every study done: no new jobs');

    // Over both runs of both instances, each timer's runs never overlap.
    const runs = [...stoppedLogs, ...secondLogs].flatMap((log, i) => timerRuns(log, `instance ${(i % 2) + 1}`));
    for (const timer of TIMERS) {
      const ofTimer = runs.filter((r) => r.timer === timer).sort((a, b) => a.start - b.start);
      assert.ok(ofTimer.length > 0, `${timer} ran`);
      for (let i = 1; i < ofTimer.length; i += 1)
        assert.ok(
          ofTimer[i].start >= ofTimer[i - 1].end,
          `${timer} on ${ofTimer[i].instance} began at ${new Date(ofTimer[i].start).toISOString()}, before its run on ${ofTimer[i - 1].instance} ended at ${new Date(ofTimer[i - 1].end).toISOString()}`,
        );
    }
    console.log(
      `scale-out: ${STUDIES} studies × ${INSTANCES_PER_STUDY} instances; steps per instance ${JSON.stringify(Object.fromEntries(byInstance))}; evaluations ${evaluations.join('/')}; change feed runs ${runs.filter((r) => r.timer === 'changeFeed').length}, sweeps ${sweeps.join('/')}`,
    );
  });
});
