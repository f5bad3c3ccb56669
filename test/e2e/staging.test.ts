/**
 * Private staging on the whole stack: an anonymising rule downloads its originals where no share or
 * watcher looks, and only de-identified files ever appear under the storage root. A watcher (fs.watch
 * plus a fast poll of the tree) reads every file the moment it appears there and checks that it
 * carries none of the study's identifiers. A failed job (BurnedInAnnotation policy "fail" with an SC
 * instance) leaves nothing under the storage root and no staging; a retry and a restart clean up too.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

/** Every file that appears under a folder, read as soon as it is seen (events, and a poll for what events miss). */
function watchTree(root: string, onFile: (file: string, bytes: Buffer) => void): { stop(): void; seen: Set<string> } {
  const seen = new Set<string>();
  const look = (file: string) => {
    if (seen.has(file)) return;
    let bytes: Buffer;
    try {
      if (!statSync(file).isFile()) return;
      bytes = readFileSync(file);
    } catch {
      return; // gone again (renamed with its folder, or deleted): its new path is seen instead
    }
    seen.add(file);
    onFile(file, bytes);
  };
  const scan = () => {
    try {
      for (const rel of readdirSync(root, { recursive: true })) look(path.join(root, String(rel)));
    } catch {
      // the folder is being renamed under us; the next scan sees it
    }
  };
  const watcher: FSWatcher = watch(root, { recursive: true }, (_event, name) => {
    if (name) look(path.join(root, String(name)));
  });
  watcher.on('error', () => undefined); // a watched folder renamed or deleted away; the poll still covers the tree
  const poll = setInterval(scan, 20);
  return {
    seen,
    stop() {
      clearInterval(poll);
      watcher.close();
      scan();
    },
  };
}

function identifiersOf(study: GeneratedStudy): string[] {
  return [
    study.patientID,
    study.patientName.split('^')[0],
    study.accessionNumber,
    study.studyID,
    study.studyInstanceUID,
    ...study.series.map((s) => s.seriesInstanceUID),
    ...study.series.flatMap((s) => s.files.map((f) => f.sopInstanceUID)),
  ];
}

function listTree(root: string): string[] {
  return existsSync(root) ? readdirSync(root, { recursive: true }).map(String).sort() : [];
}

describe('private staging for anonymising rules', { timeout: 400_000 }, () => {
  let stack: Stack;
  const identified: string[] = [];
  const identifiers = new Set<string>();
  let storageWatch: ReturnType<typeof watchTree>;
  let stagingWatch: ReturnType<typeof watchTree>;

  before(async () => {
    stack = await startStack({ stableAgeSeconds: 1 });
    await mkdir(stack.stagingDir, { recursive: true });
    storageWatch = watchTree(stack.storageDir, (file, bytes) => {
      for (const id of identifiers)
        if (bytes.includes(Buffer.from(id, 'latin1')))
          identified.push(`${path.relative(stack.storageDir, file)} holds ${id}`);
    });
    stagingWatch = watchTree(stack.stagingDir, () => undefined);
  });
  after(async () => {
    storageWatch?.stop();
    stagingWatch?.stop();
    await stack?.stop();
  });

  it('a failed anonymising job leaves nothing under the storage root and no staging, and no original ever showed there', async () => {
    await stack.writeRule('research-fail', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Tags: [{ TagName: 'StudyDescription', Value: 'failstudy' }],
      Anonymise: { BurnedInAnnotation: 'fail' },
    });
    const study = await generateStudy({
      patientID: 'PID-STAGE-FAIL',
      patientName: 'Staging^Failing',
      studyID: 'SID-STAGE-1',
      accessionNumber: 'ACC-STAGE-1',
      studyDescription: 'failstudy',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 4 },
        { seriesNumber: 2, modality: 'SC', instances: 1 },
      ],
    });
    for (const id of identifiersOf(study)) identifiers.add(id);
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'research-fail');
    assert.equal(job.status, 'failed');
    assert.match(job.error ?? '', /BurnedInAnnotation policy is "fail"/);
    assert.equal(
      job.steps.find((s) => s.name === 'download')?.status,
      'succeeded',
      'the originals were downloaded (into staging)',
    );
    assert.ok(
      stagingWatch.seen.size >= 5,
      `the download wrote into staging (${stagingWatch.seen.size} files seen there)`,
    );

    assert.deepEqual(listTree(stack.storageDir), [], 'nothing under the storage root');
    assert.deepEqual(listTree(stack.stagingDir), [], 'no staging left');
    assert.deepEqual(identified, [], 'no identified file ever appeared under the storage root');

    // A retry deletes what a failed run left in staging, fails the same way, and again leaves nothing.
    const stale = path.join(stack.stagingDir, job.id, 'SE1-stale');
    await mkdir(stale, { recursive: true });
    await writeFile(path.join(stale, 'left-over.dcm'), 'an original a crashed run left');
    const retried = await stack.post(`jobs/${job.id}/retry`, {});
    assert.equal(retried.status, 202, await retried.clone().text());
    assert.equal(
      existsSync(path.join(stack.stagingDir, job.id, 'SE1-stale')),
      false,
      'the retry deleted the stale staging',
    );
    await waitFor(
      async () =>
        (await stack.jobStore.get(job.id))?.status === 'failed' &&
        (await stack.jobStore.get(job.id))?.source === 'retry',
      { timeoutMs: 60_000, description: 'the retried job to fail again' },
    );
    await waitFor(() => listTree(stack.stagingDir).length === 0, {
      timeoutMs: 10_000,
      description: 'staging to be empty after the retry',
    });
    assert.deepEqual(listTree(stack.storageDir), []);
    assert.deepEqual(identified, []);
  });

  it('a successful anonymising job publishes as before, with de-identified files only, and its staging is gone', async () => {
    await stack.writeRule('research-ok', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Tags: [{ TagName: 'StudyDescription', Value: 'okstudy' }],
    });
    const study = await generateStudy({
      patientID: 'PID-STAGE-OK',
      patientName: 'Staging^Passing',
      studyID: 'SID-STAGE-2',
      accessionNumber: 'ACC-STAGE-2',
      studyDescription: 'okstudy',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 6 },
        { seriesNumber: 2, modality: 'CT', instances: 3 },
      ],
    });
    for (const id of identifiersOf(study)) identifiers.add(id);
    const before = storageWatch.seen.size;
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'research-ok');
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.steps.find((s) => s.name === 'anonymise')?.instances, 9);

    const published = readdirSync(path.join(stack.storageDir, 'research-ok'));
    assert.equal(published.length, 1);
    assert.match(
      published[0],
      /^ANON[A-Z2-7]{12}-ST[0-9a-f]{12}$/,
      'published under its pseudonymous name, no .WORKING left',
    );
    const files = listTree(path.join(stack.storageDir, 'research-ok', published[0])).filter((f) => f.endsWith('.dcm'));
    assert.equal(files.length, 9);
    assert.ok(
      storageWatch.seen.size - before >= 9,
      `the watcher read every file as it appeared (${storageWatch.seen.size - before})`,
    );
    assert.deepEqual(identified, [], 'no identified file ever appeared under the storage root');
    assert.deepEqual(listTree(stack.stagingDir), [], 'the staging folder was deleted');
  });

  it('at start-up deletes the staging of ended and unknown jobs', async () => {
    const [failed] = await stack.jobs((j) => j.ruleId === 'research-fail');
    const planted = [failed.id, 'f'.repeat(32), 'not-a-job'];
    for (const name of planted) {
      await mkdir(path.join(stack.stagingDir, name, 'SE1'), { recursive: true });
      await writeFile(path.join(stack.stagingDir, name, 'SE1', 'x.dcm'), 'original');
    }
    await stack.host.stop();
    await stack.host.start();
    await waitFor(() => listTree(stack.stagingDir).length === 0, {
      timeoutMs: 20_000,
      description: 'the start-up sweep',
      onTimeout: () => listTree(stack.stagingDir).join('\n'),
    });
    assert.match(
      stack.host.logs(),
      /Staging .*: 3 folder\(s\) of ended or unknown jobs deleted, 0 of running jobs kept/,
    );
  });
});
