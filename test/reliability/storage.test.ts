/**
 * Storage failures on a real filesystem: the storage root is a small tmpfs mounted for this test,
 * filled up (during the download, and during the zip) and remounted read-only. Each job must fail
 * with a clear reason, publish nothing under its final name, and succeed on retry once the
 * filesystem is healthy again. The retry is what an operator's retry does: the job is reset with
 * `resetForRetry` in the ledger and its step is enqueued.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { resetForRetry, type Job } from '../../shared/pipeline/job';
import { QUEUES } from '../../shared/pipeline/messages';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from '../e2e/stack';
import { figure, leftovers, outputProblems } from './common';

const run = promisify(execFile);
const MOUNT_MB = 24;

async function mountTmpfs(dir: string): Promise<void> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${MOUNT_MB}m,mode=0755`, 'tmpfs', dir]);
  } catch (error) {
    // Not a skip: this scenario needs a real small filesystem (root, or a sandbox allowing mounts).
    throw new Error(
      `storage-failure tests mount a ${MOUNT_MB} MB tmpfs on the storage root and need root (mount -t tmpfs): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

async function freeBytes(dir: string): Promise<number> {
  const s = await fs.statfs(dir);
  return s.bavail * s.bsize;
}

/** Fills the filesystem until `leave` bytes remain. */
async function fillUntil(dir: string, leave: number): Promise<string> {
  const ballast = path.join(dir, 'ballast.bin');
  await fs.writeFile(ballast, Buffer.alloc(Math.max(0, (await freeBytes(dir)) - leave)));
  return ballast;
}

/** Files under `dir` that some process holds open (from /proc), to name a leak if remounting fails. */
async function openFilesUnder(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const pid of await fs.readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid)) continue;
    for (const fd of await fs.readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const target = await fs.readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      if (target.startsWith(`${dir}/`)) found.push(`pid ${pid}: ${target}`);
    }
  }
  return found;
}

/** Remounts read-only; the kernel refuses while a file is open for writing, so a leaked descriptor fails here by name. */
async function remountReadOnly(dir: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await run('mount', ['-o', 'remount,ro', dir]);
      return;
    } catch (error) {
      if (Date.now() > deadline)
        throw new Error(
          `cannot remount ${dir} read-only: ${(error as Error).message.trim()}; open files: ${JSON.stringify(await openFilesUnder(dir))}`,
          { cause: error },
        );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function studyBytes(study: GeneratedStudy): number {
  return study.series.flatMap((s) => s.files).reduce((n, f) => n + f.size, 0);
}

describe('storage failures (full or read-only output filesystem)', { timeout: 400_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      stableAgeSeconds: 1,
      // Retries one second apart (host.json says 5 s), so five attempts end in poison quickly.
      env: { AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:01' },
    });
    await mountTmpfs(stack.storageDir);
  });
  after(async () => {
    if (stack) await run('umount', ['-l', stack.storageDir]).catch(() => undefined);
    await stack?.stop();
  });

  async function failThenRetry(
    rule: string,
    steps: string[],
    setUp: (study: GeneratedStudy) => Promise<() => Promise<void>>,
  ): Promise<{ job: Job; retried: Job }> {
    await stack.writeRule(rule, {
      CheckOn: 'Study',
      IsActive: true,
      Steps: steps,
      Zip: { Level: 0, KeepFolder: false },
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: `${rule} test` }],
    });
    const study = await generateStudy({
      patientID: `P-${rule.toUpperCase()}`,
      studyID: '7',
      studyDescription: `${rule} test`,
      series: [{ seriesNumber: 1, modality: 'MR', instances: 24 }],
    });
    const heal = await setUp(study);
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === rule, { timeoutMs: 120_000 });
    assert.equal(job.status, 'failed', `the job fails while the filesystem is broken (${job.error})`);
    const ruleFolder = path.join(stack.storageDir, rule);
    const published = (await fs.readdir(ruleFolder).catch(() => [] as string[])).filter((n) => !n.endsWith('.WORKING'));
    assert.deepEqual(published, [], `nothing published under a final name: ${published.join(', ')}`);
    // A failed step closes what it opened: a leaked descriptor would hold space and block remounts.
    let open: string[] = [];
    await waitFor(async () => (open = await openFilesUnder(stack.storageDir)).length === 0, {
      timeoutMs: 10_000,
      description: `${rule}: no file left open after the failure`,
      onTimeout: () => JSON.stringify(open),
    });
    await heal();
    const step = await stack.jobStore
      .update(job.id, (j) => {
        resetForRetry(j);
      })
      .then((j) => j.currentStep);
    await stack.queues.send(QUEUES.step(step), { jobId: job.id, step });
    let retried: Job | undefined;
    await stack
      .waitForJobs(1, (j) => j.id === job.id && j.status === 'succeeded', { timeoutMs: 60_000 })
      .then(([j]) => (retried = j));
    assert.deepEqual(await outputProblems(stack, retried!), []);
    assert.deepEqual(await leftovers(stack.storageDir), []);
    return { job, retried: retried! };
  }

  it('fails with a clear reason, publishes nothing, and succeeds on retry', async () => {
    const results: string[] = [];

    const full = await failThenRetry('full-download', ['download'], async (study) => {
      const ballast = await fillUntil(stack.storageDir, Math.floor(studyBytes(study) / 3));
      return () => fs.rm(ballast);
    });
    assert.match(full.job.error ?? '', /^download: .*ENOSPC/);
    results.push(`full during download: failed with "${full.job.error}"`);

    const zip = await failThenRetry('full-zip', ['download', 'zip'], async (study) => {
      // Room for the downloaded folder, not for the (uncompressed) zip beside it.
      const ballast = await fillUntil(stack.storageDir, Math.floor(studyBytes(study) * 1.5));
      return () => fs.rm(ballast);
    });
    assert.match(zip.job.error ?? '', /^zip: .*ENOSPC/);
    assert.equal(zip.job.steps.find((s) => s.name === 'download')?.status, 'succeeded', 'the download had succeeded');
    results.push(`full during zip: failed with "${zip.job.error}"`);

    const ro = await failThenRetry('read-only', ['download'], async () => {
      await remountReadOnly(stack.storageDir);
      return async () => {
        await run('mount', ['-o', 'remount,rw', stack.storageDir]);
      };
    });
    assert.match(ro.job.error ?? '', /^download: .*EROFS/);
    results.push(`read-only: failed with "${ro.job.error}"`);

    figure(
      `storage-failures: 3/3 jobs failed with a reason (ENOSPC in download, ENOSPC in zip, EROFS), 0 partial outputs published, 3/3 succeeded on retry`,
    );
    for (const line of results) console.log(`  ${line}`);
  });
});
