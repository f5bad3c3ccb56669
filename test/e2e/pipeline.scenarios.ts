/**
 * The pipeline's end-to-end scenarios (issue "the pipeline end to end"), defined once and run with
 * Orthanc's default SQLite index and, as compose runs it, with its index in PostgreSQL.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readAll, sha256 } from '../support/bytes';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string, prefix: string): Promise<void> {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(path.join(dir, entry.name), rel);
      else out.push(rel);
    }
  }
  await walk(root, '');
  return out.sort();
}

async function exists(target: string): Promise<boolean> {
  return fs.access(target).then(
    () => true,
    () => false,
  );
}

function studyRule(description: string) {
  return {
    CheckOn: 'Study',
    IsActive: true,
    Comment: 'e2e',
    Action: 'DOWNLOAD',
    Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: description }],
  };
}

export function definePipelineSuite(options: { postgres: boolean }): void {
  describe(
    `pipeline end to end (Orthanc index: ${options.postgres ? 'PostgreSQL' : 'SQLite'})`,
    { timeout: 600_000 },
    () => {
      let stack: Stack;
      before(async () => {
        stack = await startStack({
          postgres: options.postgres,
          stableAgeSeconds: 2,
          env: { AUTOMATION_DOWNLOAD_CONCURRENCY: '2', ORTHANC_TIMEOUT_SECONDS: '3' },
        });
      });
      after(async () => {
        await stack?.stop();
      });

      it('publishes a matching study in autorthanc layout, per series for Series rules, nothing for non-matching rules', async () => {
        await stack.writeRule('brain', studyRule('brain'));
        await stack.writeRule('knee', studyRule('knee'));
        await stack.writeRule('t1-series', {
          CheckOn: 'Series',
          IsActive: true,
          Action: 'DOWNLOAD',
          Tags: [{ TagName: 'SeriesDescription', Level: 'Series', Value: 't1' }],
        });
        const study = await generateStudy({
          patientID: 'P-E2E-1',
          patientName: 'Müller^Jürgen',
          studyID: '4711',
          studyDescription: 'Brain MRI',
          series: [
            { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1 sag', instances: 3 },
            { seriesNumber: 2, modality: 'MR', seriesDescription: 'T2 ax', instances: 2 },
            { seriesNumber: 3, modality: 'MR', seriesDescription: 'T1 post', instances: 2 },
          ],
        });
        await stack.sendStudy(study);
        const studyId = await stack.studyId(study.studyInstanceUID);
        const jobs = await stack.waitForJobs(3, (j) => j.studyInstanceUid === study.studyInstanceUID);
        assert.deepEqual(jobs.map((j) => `${j.ruleId}:${j.status}`).sort(), [
          'brain:succeeded',
          't1-series:succeeded',
          't1-series:succeeded',
        ]);

        const folder = path.join(stack.storageDir, 'brain', 'P-E2E-1-Müller-EX4711');
        const files = await listTree(folder);
        const expected = study.series
          .flatMap((s) =>
            s.files.map((f) => `SE${s.seriesNumber}-${s.seriesDate}-${s.seriesInstanceUID}/${f.sopInstanceUID}.dcm`),
          )
          .sort();
        assert.deepEqual(files, expected);
        for (const rel of files) {
          const sop = path.basename(rel, '.dcm');
          const instance = (await stack.client.lookup(sop)).find((r) => r.Type === 'Instance');
          assert.ok(instance, `Orthanc holds ${sop}`);
          assert.equal(
            sha256(await fs.readFile(path.join(folder, rel))),
            sha256(await readAll(await stack.client.instanceFile(instance.ID))),
            `${rel} is byte-identical to Orthanc's copy`,
          );
        }
        assert.deepEqual((await fs.readdir(path.join(stack.storageDir, 'brain'))).sort(), ['P-E2E-1-Müller-EX4711']);
        assert.deepEqual((await fs.readdir(path.join(stack.storageDir, 't1-series'))).sort(), [
          'P-E2E-1-Müller-EX4711-SE1',
          'P-E2E-1-Müller-EX4711-SE3',
        ]);
        assert.equal(await exists(path.join(stack.storageDir, 'knee')), false, 'a non-matching rule publishes nothing');
        const brainJob = jobs.find((j) => j.ruleId === 'brain');
        assert.equal(brainJob?.resourceId, studyId);
        assert.equal(brainJob?.steps.find((s) => s.name === 'download')?.instances, 7);
        await stack.removeRule('knee');
        await stack.removeRule('t1-series');
      });

      it('collapses the same stable event posted 10 times into one job and one output', async () => {
        await stack.writeRule('dupes', studyRule('dupes'));
        const study = await generateStudy({
          patientID: 'P-E2E-DUP',
          studyDescription: 'dupes test',
          series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }],
        });
        await stack.sendStudy(study);
        await stack.waitForJobs(1, (j) => j.ruleId === 'dupes' && j.studyInstanceUid === study.studyInstanceUID);
        const resourceId = await stack.studyId(study.studyInstanceUID);
        const answers = await Promise.all(
          Array.from({ length: 10 }, () => stack.post('orthanc/events', { changeType: 'StableStudy', resourceId })),
        );
        assert.deepEqual(
          answers.map((a) => a.status),
          Array(10).fill(202),
        );
        // Give the ten evaluations time to run; they must all collapse onto the existing job.
        await new Promise((resolve) => setTimeout(resolve, 4000));
        const jobs = await stack.jobs((j) => j.ruleId === 'dupes');
        assert.equal(jobs.length, 1, `one job, got ${jobs.length}`);
        assert.deepEqual(await fs.readdir(path.join(stack.storageDir, 'dupes')), [
          `P-E2E-DUP-${study.patientName.split('^')[0]}-EX${study.studyID}`,
        ]);
      });

      it('replaces the output when new instances arrive after publication, never showing a partial folder', async () => {
        await stack.writeRule('grows', studyRule('grows'));
        const study = await generateStudy({
          patientID: 'P-E2E-GROW',
          studyDescription: 'grows test',
          series: [
            { seriesNumber: 1, modality: 'MR', instances: 3 },
            { seriesNumber: 2, modality: 'MR', instances: 4 },
          ],
        });
        const firstPart = study.series[0].files.map((f) => f.path);
        const secondPart = study.series[1].files.map((f) => f.path);
        await stack.sendStudy(study, firstPart);
        await stack.waitForJobs(1, (j) => j.ruleId === 'grows');
        const final = path.join(
          stack.storageDir,
          'grows',
          `P-E2E-GROW-${study.patientName.split('^')[0]}-EX${study.studyID}`,
        );
        assert.equal((await listTree(final)).length, 3);

        const seen = new Map<number, number>();
        let watching = true;
        const watcher = (async () => {
          while (watching) {
            try {
              const before = await fs.stat(final);
              const count = (await listTree(final)).length;
              const afterStat = await fs.stat(final);
              // A walk that straddled a rename saw two folders; a real watcher re-checks the same way.
              if (before.ino === afterStat.ino) seen.set(count, (seen.get(count) ?? 0) + 1);
            } catch {
              seen.set(-1, (seen.get(-1) ?? 0) + 1);
            }
            await new Promise((resolve) => setTimeout(resolve, 2));
          }
        })();
        await stack.sendStudy(study, secondPart);
        await stack.waitForJobs(2, (j) => j.ruleId === 'grows');
        watching = false;
        await watcher;
        assert.equal((await listTree(final)).length, 7);
        const counts = [...seen.keys()].filter((c) => c >= 0).sort((a, b) => a - b);
        assert.deepEqual(
          counts.filter((c) => c !== 3 && c !== 7),
          [],
          `observed partial folders: ${JSON.stringify([...seen])}`,
        );
        assert.ok(
          (seen.get(3) ?? 0) > 0 && (seen.get(7) ?? 0) > 0,
          `watcher saw both versions: ${JSON.stringify([...seen])}`,
        );
        const jobs = (await stack.jobs((j) => j.ruleId === 'grows')).map((j) => ({
          source: j.source,
          lastUpdate: j.lastUpdate,
          status: j.status,
          step: j.currentStep,
        }));
        assert.equal(jobs.length, 2, `one job per stable state: ${JSON.stringify(jobs)}`);
        assert.deepEqual(
          (await fs.readdir(path.join(stack.storageDir, 'grows'))).sort(),
          [path.basename(final)],
          `no WORKING or REPLACED leftovers; jobs: ${JSON.stringify(jobs)}`,
        );
      });

      it('processes through the change feed a study that became stable while the function app was down', async () => {
        await stack.writeRule('offline', studyRule('offline'));
        await stack.host.stop();
        const study = await generateStudy({
          patientID: 'P-E2E-OFF',
          studyDescription: 'offline test',
          series: [{ seriesNumber: 1, modality: 'CT', instances: 2 }],
        });
        await stack.sendStudy(study);
        const studyId = await stack.studyId(study.studyInstanceUID);
        await waitFor(async () => (await stack.client.getStudy(studyId)).IsStable, {
          timeoutMs: 30_000,
          description: 'the study to become stable',
        });
        assert.equal((await stack.jobs((j) => j.ruleId === 'offline')).length, 0);
        await stack.host.start();
        const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'offline');
        assert.equal(job.status, 'succeeded');
        assert.equal(job.source, 'changeFeed');
      });

      it('processes in a sweep a study that arrived before its rule existed', async () => {
        const study = await generateStudy({
          patientID: 'P-E2E-SWEEP',
          studyDescription: 'late rule test',
          series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }],
        });
        await stack.sendStudy(study);
        const studyId = await stack.studyId(study.studyInstanceUID);
        await waitFor(async () => (await stack.client.getStudy(studyId)).IsStable, {
          timeoutMs: 30_000,
          description: 'the study to become stable',
        });
        await new Promise((resolve) => setTimeout(resolve, 1500));
        assert.equal((await stack.jobs((j) => j.resourceId === studyId)).length, 0);
        await stack.writeRule('late', studyRule('late rule'));
        await fs.writeFile(
          path.join(stack.rulesDir, 'master.json'),
          JSON.stringify({ DailyCheckHour: new Date().getHours(), DailySweepEnabled: true }),
        );
        const invoked = await fetch(`${stack.host.url}/admin/functions/dailySweep`, {
          method: 'POST',
          headers: { 'x-functions-key': stack.masterKey, 'Content-Type': 'application/json' },
          body: JSON.stringify({ input: '' }),
        });
        assert.equal(invoked.status, 202);
        const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'late');
        assert.equal(job.status, 'succeeded');
        assert.equal(job.source, 'sweep');
      });

      it('retries a download while Orthanc is unavailable and completes once it is back', async () => {
        await stack.writeRule('outage', studyRule('outage'));
        const study = await generateStudy({
          patientID: 'P-E2E-OUT',
          studyDescription: 'outage test',
          series: [{ seriesNumber: 1, modality: 'CT', instances: 40, rows: 1024 }],
        });
        await stack.sendStudy(study);
        await waitFor(async () => (await stack.jobs((j) => j.ruleId === 'outage')).length > 0, {
          timeoutMs: 30_000,
          intervalMs: 5,
          description: 'the job to be created',
        });
        // 80 MB: the first attempt cannot finish between the job appearing and the pause below.
        // Frozen longer than the client's own retries (4 tries x 3 s timeout + back-off ~ 14 s), so the step itself fails and is retried.
        await stack.orthanc.pause();
        await new Promise((resolve) => setTimeout(resolve, 20_000));
        await stack.orthanc.resume();
        const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'outage');
        assert.equal(job.status, 'succeeded', job.error);
        const download = job.steps.find((s) => s.name === 'download');
        assert.ok((download?.attempts ?? 0) >= 2, `download retried (attempts ${download?.attempts})`);
        assert.equal(download?.instances, 40);
      });

      it('retries a download when Orthanc is stopped and completes once it has restarted', async () => {
        await stack.writeRule('restart', studyRule('restart'));
        const study = await generateStudy({
          patientID: 'P-E2E-RST',
          studyDescription: 'restart test',
          series: [{ seriesNumber: 1, modality: 'CT', instances: 40, rows: 1024 }],
        });
        await stack.sendStudy(study);
        await waitFor(async () => (await stack.jobs((j) => j.ruleId === 'restart')).length > 0, {
          timeoutMs: 30_000,
          intervalMs: 5,
          description: 'the job to be created',
        });
        // 80 MB, as above, so the stop lands while the first attempt downloads.
        // Stopped for real (connections refused, not a frozen process), longer than the client's own retries.
        await stack.orthanc.stop();
        await new Promise((resolve) => setTimeout(resolve, 8_000));
        await stack.orthanc.start();
        const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'restart', { timeoutMs: 120_000 });
        assert.equal(job.status, 'succeeded', job.error);
        const download = job.steps.find((s) => s.name === 'download');
        assert.ok((download?.attempts ?? 0) >= 2, `download retried (attempts ${download?.attempts})`);
        assert.equal(download?.instances, 40);
        const folder = path.join(
          stack.storageDir,
          'restart',
          `P-E2E-RST-${study.patientName.split('^')[0]}-EX${study.studyID}`,
        );
        assert.equal(
          (await listTree(folder)).length,
          40,
          'every instance published, nothing stale from the cut attempt',
        );
      });

      it('fails a permanently failing job with a readable reason in the ledger', async () => {
        await stack.writeRule('blocked', studyRule('blocked output'));
        await fs.writeFile(path.join(stack.storageDir, 'blocked'), 'a file where the rule folder should be');
        const study = await generateStudy({
          patientID: 'P-E2E-FAIL',
          studyDescription: 'blocked output',
          series: [{ seriesNumber: 1, modality: 'MR', instances: 1 }],
        });
        await stack.sendStudy(study);
        const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'blocked', { timeoutMs: 120_000 });
        assert.equal(job.status, 'failed');
        assert.match(job.error ?? '', /^download: .*(EEXIST|ENOTDIR).*blocked/);
        assert.doesNotMatch(job.error ?? '', /P-E2E-FAIL/, 'no PHI in the reason');
      });
    },
  );
}

export type { GeneratedStudy };
