/**
 * Restarts of the parts the function app depends on, while a pipeline runs: Orthanc (stopped and
 * started on the same ports and storage) and Azurite (kept on disk, so queues and the ledger
 * survive). The work must resume by itself and complete.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from '../e2e/stack';
import { LONG, allDone, figure, leftovers, outputProblems, sleep } from './common';

const ROUNDS = LONG ? 5 : 1;

describe('restarts of Orthanc and Azurite mid-pipeline', { timeout: LONG ? 1_200_000 : 300_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      stableAgeSeconds: 1,
      persistentStorage: true,
      env: {
        DEVHOST_QUEUE_LEASE_SECONDS: '4',
        AUTOMATION_STALE_HEARTBEAT_SECONDS: '4',
        AUTOMATION_DOWNLOAD_CONCURRENCY: '1',
        ORTHANC_TIMEOUT_SECONDS: '3',
      },
    });
    await stack.writeRule('restart', {
      CheckOn: 'Study',
      IsActive: true,
      Steps: ['download', 'zip'],
      Zip: { Level: 6, KeepFolder: true },
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'restart test' }],
    });
  });
  after(async () => stack?.stop());

  async function duringDownload(label: string, index: number, restart: () => Promise<void>): Promise<string> {
    const study = await generateStudy({
      patientID: `P-RESTART-${label}-${index}`,
      studyDescription: 'restart test',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 60 }],
    });
    await stack.sendStudy(study);
    await waitFor(
      async () =>
        (await stack.jobs((j) => j.studyInstanceUid === study.studyInstanceUID)).some((j) =>
          j.steps.some((s) => s.name === 'download' && s.status === 'running'),
        ),
      { timeoutMs: 60_000, intervalMs: 20, description: `the download of ${label} round ${index} to start` },
    );
    await restart();
    return study.studyInstanceUID;
  }

  it('resumes and completes after Orthanc and Azurite restarts during downloads', async () => {
    const uids: string[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      uids.push(
        await duringDownload('orthanc', round, async () => {
          await stack.orthanc.stop();
          await sleep(3000);
          await stack.orthanc.start();
        }),
      );
      uids.push(
        await duringDownload('azurite', round, async () => {
          await stack.azurite.stop();
          await sleep(3000);
          await stack.azurite.start();
        }),
      );
    }
    const mine = (j: Job) => uids.includes(j.studyInstanceUid ?? '');
    const jobs = await allDone(stack, uids.length, mine, 180_000);
    const ok = jobs.filter((j) => j.status === 'succeeded');
    const problems = (await Promise.all(ok.map((j) => outputProblems(stack, j)))).flat();
    const rest = await leftovers(stack.storageDir);
    const retried = jobs.filter((j) => (j.steps.find((s) => s.name === 'download')?.attempts ?? 0) > 1).length;
    figure(
      `restarts: ${ROUNDS} Orthanc + ${ROUNDS} Azurite restarts during downloads, ${ok.length}/${jobs.length} jobs complete (${retried} resumed by a retry), ${problems.length} partial outputs, ${rest.length} .WORKING leftovers`,
    );
    assert.deepEqual(
      jobs.filter((j) => j.status !== 'succeeded').map((j) => j.error),
      [],
    );
    assert.equal(jobs.length, uids.length, 'one job per study');
    assert.deepEqual(problems, []);
    assert.deepEqual(rest, []);
  });
});
