/**
 * Shared helpers of the reliability suite: walking outputs, checking that a published result is
 * complete, and the one figure line each scenario prints (collected in docs/reliability.md).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Job } from '../../shared/pipeline/job';
import type { Stack } from '../e2e/stack';

const run = promisify(execFile);

/** RELIABILITY_LONG=1 runs the heavy loops longer (more kills, more fuzz cases). */
export const LONG = /^(1|true|yes)$/i.test(process.env.RELIABILITY_LONG ?? '');

/** The scenario's figure: printed on one line, as docs/reliability.md quotes it. */
export function figure(line: string): void {
  console.log(line);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every entry under `root` (files and folders), relative, sorted. */
export async function walk(root: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  async function inner(dir: string, prefix: string): Promise<void> {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        dirs.push(rel);
        await inner(path.join(dir, entry.name), rel);
      } else files.push(rel);
    }
  }
  await inner(root, '');
  return { files: files.sort(), dirs: dirs.sort() };
}

/** Names that must never survive a finished job: work folders and replaced results. */
export async function leftovers(storageDir: string): Promise<string[]> {
  const { files, dirs } = await walk(storageDir);
  return [...files, ...dirs].filter(
    (p) => path.basename(p).endsWith('.WORKING') || path.basename(p).includes('.REPLACED-'),
  );
}

/** Entries of a zip, read with Info-ZIP's `unzip` after it has tested every member's CRC. */
export async function zipEntries(zip: string): Promise<string[]> {
  await run('unzip', ['-tqq', zip]);
  const { stdout } = await run('zipinfo', ['-1', zip], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.split('\n').filter((l) => l !== '');
}

/** Number of instances Orthanc holds for a job's resource. */
export async function instancesOf(stack: Stack, job: Job): Promise<number> {
  return (await stack.client.listInstances(job.level === 'Study' ? 'studies' : 'series', job.resourceId)).length;
}

/**
 * A succeeded job's result is complete: the folder (when kept) holds one .dcm per instance, the zip
 * (when zipped) passes its CRC test and holds one .dcm per instance. Returns problems, empty if none.
 */
export async function outputProblems(stack: Stack, job: Job): Promise<string[]> {
  const problems: string[] = [];
  if (!job.outputPath) return [`job ${job.id}: no outputPath`];
  const expected = await instancesOf(stack, job);
  const zips = job.rule.steps.includes('zip');
  const keepFolder = !zips || job.rule.zip?.keepFolder === true;
  if (keepFolder) {
    const found = await walk(job.outputPath).catch(() => undefined);
    const dcm = found?.files.filter((f) => f.endsWith('.dcm')).length ?? -1;
    if (dcm !== expected)
      problems.push(`job ${job.id}: folder has ${dcm} .dcm files, Orthanc has ${expected} instances`);
    let bytes = 0;
    for (const rel of found?.files ?? []) {
      const size = (await fs.stat(path.join(job.outputPath, rel))).size;
      if (size < 132) problems.push(`job ${job.id}: ${rel} is ${size} bytes`);
      if (rel.endsWith('.dcm')) bytes += size;
    }
    // Unmodified copies: together exactly as large as Orthanc's files (a truncated file would show).
    if (!job.rule.steps.includes('anonymise')) {
      const expectedBytes = (
        await stack.client.listInstances(job.level === 'Study' ? 'studies' : 'series', job.resourceId)
      ).reduce((n, i) => n + i.FileSize, 0);
      if (bytes !== expectedBytes)
        problems.push(`job ${job.id}: folder holds ${bytes} bytes of DICOM, Orthanc ${expectedBytes}`);
    }
  }
  if (zips) {
    const entries = await zipEntries(`${job.outputPath}.zip`).catch((error: Error) => {
      problems.push(`job ${job.id}: zip unreadable: ${error.message}`);
      return [] as string[];
    });
    const dcm = entries.filter((e) => e.endsWith('.dcm')).length;
    if (dcm !== expected)
      problems.push(`job ${job.id}: zip has ${dcm} .dcm entries, Orthanc has ${expected} instances`);
  }
  return problems;
}

/** Waits for every job matching `filter` to end and returns them (at least `count`). */
export async function allDone(
  stack: Stack,
  count: number,
  filter: (job: Job) => boolean,
  timeoutMs = 180_000,
): Promise<Job[]> {
  const jobs = await stack.waitForJobs(count, filter, { timeoutMs });
  const open = (await stack.jobs(filter)).filter((j) => j.status !== 'succeeded' && j.status !== 'failed');
  assert.deepEqual(
    open.map((j) => j.id),
    [],
    'no job left open',
  );
  return jobs;
}

/** Approximate message count of a queue (Azurite answers exactly). */
export async function queueDepth(stack: Stack, queue: string): Promise<number> {
  const { QueueServiceClient } = await import('@azure/storage-queue');
  const client = QueueServiceClient.fromConnectionString(stack.azurite.connectionString).getQueueClient(queue);
  if (!(await client.exists())) return 0;
  return (await client.getProperties()).approximateMessagesCount ?? 0;
}

/** Uploads files over Orthanc's REST API (stores whatever DCMTK can parse); returns the HTTP statuses. */
export async function uploadFiles(stack: Stack, files: string[]): Promise<number[]> {
  const auth = `Basic ${Buffer.from(`${stack.orthanc.username}:${stack.orthanc.password}`).toString('base64')}`;
  const statuses: number[] = [];
  for (const file of files) {
    const answer = await fetch(`${stack.orthanc.url}/instances`, {
      method: 'POST',
      headers: { Authorization: auth, 'Content-Type': 'application/dicom' },
      body: await fs.readFile(file),
    });
    await answer.arrayBuffer();
    statuses.push(answer.status);
  }
  return statuses;
}
