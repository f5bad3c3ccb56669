/**
 * `autorthanc backup` and `restore` on the real stack (Orthanc, Azurite, the devhost with keys
 * enforced): real jobs are made (one succeeds, one fails), the state is backed up, the ledger, every
 * app table and blob container, the rules and .env are wiped, then restored; the API and the dashboard
 * in headless Chromium show the same jobs with the same statuses. Also: progress on stderr (none with
 * --json), a restore over a ledger that holds jobs refused without --force, a damaged or foreign file
 * refused (exit 2) before anything is written.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, truncate, writeFile, copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TableServiceClient } from '@azure/data-tables';
import { BlobServiceClient } from '@azure/storage-blob';
import { launchChromium } from '../support/chromium';
import { create as createTar } from 'tar';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { makeTempDir } from '../support/process';
import { E2E_ANONYMISATION_SECRET, REPO_ROOT, startStack, type Stack } from './stack';
import { CLI_BIN as BIN, runCli, type Run } from '../support/cli';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

describe('autorthanc backup and restore on the stack', { timeout: 300_000 }, () => {
  let stack: Stack;
  let study: GeneratedStudy;
  let work: string;
  let envFile: string;
  let archive: string;
  let jobsBefore: Array<Pick<Job, 'id' | 'status' | 'ruleId'>>;
  let failedJob: Job;
  const warningBlob = { container: 'automationjobs-warnings', name: '' };

  const run = (args: string[], extraEnv: Record<string, string> = {}): Promise<Run> =>
    runCli(args, {
      cwd: work,
      env: {
        ...process.env,
        AUTOMATION_FUNCTION_KEY: stack.functionKey,
        // Direct storage: the stack's Azurite (compose publishes it on loopback for a backup; see the docs).
        AzureWebJobsStorage: stack.azurite.connectionString,
        ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: undefined,
        ...extraEnv,
      },
      stdio: 'pipe',
    });
  const explain = (r: Run) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;
  const listedJobs = async () => {
    const r = await run(['--url', stack.host.url, '--json', 'jobs']);
    assert.equal(r.code, 0, explain(r));
    return (JSON.parse(r.stdout) as { jobs: Job[] }).jobs.map((j) => ({
      id: j.id,
      status: j.status,
      ruleId: j.ruleId,
    }));
  };
  const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);
  const tables = () =>
    TableServiceClient.fromConnectionString(stack.azurite.connectionString, { allowInsecureConnection: true });
  const blobs = () => BlobServiceClient.fromConnectionString(stack.azurite.connectionString);

  before(async () => {
    assert.ok(existsSync(BIN), 'dist/shared/cli/bin.js is built (npm run build)');
    stack = await startStack({ enforceAuth: true, stableAgeSeconds: 1 });
    work = makeTempDir('cli-backup-');
    envFile = path.join(work, '.env');
    archive = path.join(work, 'state.tar.gz');
    // The site's .env, as setup writes it: the rules folder and the secrets.
    await writeFile(
      envFile,
      [
        '# the site .env',
        `ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH=${stack.rulesDir}`,
        `AUTOMATION_FUNCTION_KEY=${stack.functionKey}`,
        `AUTOMATION_ANONYMISATION_SECRET=${E2E_ANONYMISATION_SECRET}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    await writeFile(path.join(stack.rulesDir, 'master.json'), JSON.stringify({ DailySweepHour: 3 }));
    await stack.writeRule('backup_download', {
      CheckOn: 'Study',
      Tags: [{ TagName: 'StudyDescription', Value: 'backup' }],
    });
    await stack.writeRule('backup_mapped', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'backup' }],
    });
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');
    study = await generateStudy({
      patientID: 'P-BACKUP-1',
      patientName: 'Backup^Patient',
      studyDescription: 'backup test',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 2 }],
    });
    await stack.sendStudy(study);
    const jobs = await stack.waitForJobs(2, () => true);
    failedJob = jobs.find((j) => j.status === 'failed')!;
    assert.deepEqual(jobs.map((j) => [j.ruleId, j.status]).sort(), [
      ['backup_download', 'succeeded'],
      ['backup_mapped', 'failed'],
    ]);
    // A warnings-overflow blob of the failed job, as the ledger spills them (the container is the app's).
    const container = blobs().getContainerClient(warningBlob.container);
    await container.createIfNotExists();
    warningBlob.name = `${failedJob.id}/0000000000001-test.json`;
    const body = JSON.stringify(['a warning beyond the record']);
    await container.getBlockBlobClient(warningBlob.name).upload(body, body.length, {
      blobHTTPHeaders: { blobContentType: 'application/json' },
    });
    jobsBefore = (await listedJobs()).sort(byId);
    assert.equal(jobsBefore.length, 2);
  });

  after(async () => {
    await stack?.stop();
  });

  it('backup: one private file with a manifest, progress per table on stderr, silent with --json', async () => {
    const text = await run(['backup', archive, '--env-path', envFile]);
    assert.equal(text.code, 0, explain(text));
    assert.equal(statSync(archive).mode & 0o777, 0o600, 'the backup holds secrets: mode 600');
    assert.match(text.stderr, /rules: 4 file\(s\)/);
    assert.match(text.stderr, /table automationjobs: \d+ rows/);
    assert.match(text.stderr, /container automationjobs-warnings: 1 blob\(s\)/);
    assert.match(
      text.stderr,
      /WARNING: the backup now holds its secrets \(AUTOMATION_FUNCTION_KEY, AUTOMATION_ANONYMISATION_SECRET\)/,
    );
    assert.match(text.stdout, /Backed up 4 rule file\(s\), .*automationjobs \d+ rows.* and \.env to /);
    assert.ok(
      !text.stdout.includes(stack.functionKey) && !text.stderr.includes(stack.functionKey),
      'no secret printed',
    );

    const json = await run(['--json', 'backup', path.join(work, 'state-2.tar.gz'), '--env-path', envFile]);
    assert.equal(json.code, 0, explain(json));
    assert.equal(json.stderr, '', '--json: no progress');
    const { manifest } = JSON.parse(json.stdout) as {
      manifest: {
        format: string;
        formatVersion: number;
        rules: { files: string[]; masterJson: boolean };
        env: { included: boolean; secrets: string[] };
        tables: Array<{ name: string; rows: number }>;
        containers: Array<{ name: string; blobs: Array<{ name: string }> }>;
      };
    };
    assert.equal(manifest.format, 'autorthanc-functions-backup');
    assert.equal(manifest.formatVersion, 1);
    assert.deepEqual(manifest.rules.files, [
      'backup_download.json',
      'backup_mapped.json',
      'mapping.csv',
      'master.json',
    ]);
    assert.equal(manifest.rules.masterJson, true);
    assert.equal(manifest.env.included, true);
    const ledger = manifest.tables.find((t) => t.name === 'automationjobs');
    // Two job records and their index rows at least (plus cursors, locks).
    assert.ok(ledger && ledger.rows >= 4, JSON.stringify(manifest.tables));
    assert.ok(
      manifest.tables.every((t) => t.name.startsWith('automation')),
      'only the app tables',
    );
    assert.deepEqual(
      manifest.containers.find((c) => c.name === warningBlob.container)?.blobs.map((b) => b.name),
      [warningBlob.name],
    );
  });

  it('restore refuses a ledger that holds jobs, and a damaged or foreign file, before writing anything', async () => {
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nEDITED,SUBJ-1\n');
    const refused = await run(['--json', 'restore', archive, '--env-path', envFile]);
    assert.equal(refused.code, 1, explain(refused));
    const answer = JSON.parse(refused.stdout) as { restored: boolean; conflicts: string[] };
    assert.equal(answer.restored, false);
    assert.ok(
      answer.conflicts.some((c) => /job ledger \(automationjobs\) already holds jobs/.test(c)),
      answer.conflicts.join('; '),
    );
    assert.ok(answer.conflicts.some((c) => /rule file mapping\.csv differs/.test(c)));
    assert.match(readFileSync(path.join(stack.rulesDir, 'mapping.csv'), 'utf8'), /EDITED/, 'nothing was written');
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');

    const damaged = path.join(work, 'damaged.tar.gz');
    await copyFile(archive, damaged);
    await truncate(damaged, Math.floor(statSync(archive).size / 2));
    const broken = await run(['restore', damaged, '--env-path', envFile, '--force']);
    assert.equal(broken.code, 2, explain(broken));
    assert.match(broken.stderr, /not a readable \.tar\.gz|does not match its manifest/);

    const foreignDir = path.join(work, 'foreign');
    await mkdir(foreignDir);
    await writeFile(
      path.join(foreignDir, 'manifest.json'),
      JSON.stringify({ format: 'something-else', formatVersion: 1 }),
    );
    const foreign = path.join(work, 'foreign.tar.gz');
    await createTar({ gzip: true, cwd: foreignDir, file: foreign }, ['manifest.json']);
    const notOurs = await run(['restore', foreign, '--force']);
    assert.equal(notOurs.code, 2, explain(notOurs));
    assert.match(notOurs.stderr, /not a valid autorthanc backup manifest/);

    await writeFile(
      path.join(foreignDir, 'manifest.json'),
      JSON.stringify({ format: 'autorthanc-functions-backup', formatVersion: 99 }),
    );
    await createTar({ gzip: true, cwd: foreignDir, file: foreign }, ['manifest.json']);
    const newer = await run(['restore', foreign, '--force']);
    assert.equal(newer.code, 2, explain(newer));
    assert.match(newer.stderr, /format version 99; this autorthanc reads up to 1/);
    assert.deepEqual((await listedJobs()).sort(byId), jobsBefore, 'the ledger is untouched');
  });

  it('a backup taken, the ledger wiped, restored: the API and the dashboard show the same jobs', async () => {
    const failedBefore = await run(['--url', stack.host.url, '--json', 'job', failedJob.id]);
    assert.equal(failedBefore.code, 0, explain(failedBefore));

    // Wipe: the app stopped, every app table and container deleted, the rules and .env gone.
    await stack.host.stop();
    const service = tables();
    for await (const t of service.listTables()) if (t.name?.startsWith('automation')) await service.deleteTable(t.name);
    for await (const c of blobs().listContainers({ prefix: 'automation' })) await blobs().deleteContainer(c.name);
    const remaining: string[] = [];
    for await (const t of service.listTables()) if (t.name?.startsWith('automation')) remaining.push(t.name);
    assert.deepEqual(remaining, [], 'the ledger is gone');
    for (const file of await readdir(stack.rulesDir)) await rm(path.join(stack.rulesDir, file));
    await rm(envFile);

    const restored = await run(['restore', archive, '--env-path', envFile, '--rules', stack.rulesDir]);
    assert.equal(restored.code, 0, explain(restored));
    assert.match(restored.stderr, /table automationjobs: \d+ rows restored/);
    assert.match(restored.stderr, /container automationjobs-warnings: 1 blob\(s\) restored/);
    assert.match(restored.stdout, /Restored .*automationjobs \d+ rows, 4 rule file\(s\) and \.env/);
    assert.deepEqual((await readdir(stack.rulesDir)).sort(), [
      'backup_download.json',
      'backup_mapped.json',
      'mapping.csv',
      'master.json',
    ]);
    assert.match(readFileSync(envFile, 'utf8'), new RegExp(`AUTOMATION_FUNCTION_KEY=${stack.functionKey}`));
    assert.equal(statSync(envFile).mode & 0o777, 0o600);
    const blob = await blobs()
      .getContainerClient(warningBlob.container)
      .getBlobClient(warningBlob.name)
      .downloadToBuffer();
    assert.deepEqual(JSON.parse(blob.toString()), ['a warning beyond the record']);

    await stack.host.start();
    assert.deepEqual((await listedJobs()).sort(byId), jobsBefore, 'GET /api/jobs lists the same jobs, same statuses');
    const failedAfter = await run(['--url', stack.host.url, '--json', 'job', failedJob.id]);
    assert.equal(failedAfter.code, 0, explain(failedAfter));
    const [a, b] = [JSON.parse(failedBefore.stdout) as Job, JSON.parse(failedAfter.stdout) as Job];
    assert.deepEqual(
      { steps: b.steps, error: b.error, createdAt: b.createdAt, counts: (b as unknown as { counts?: unknown }).counts },
      { steps: a.steps, error: a.error, createdAt: a.createdAt, counts: (a as unknown as { counts?: unknown }).counts },
      'the job record came back with its properties',
    );

    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      for (const job of jobsBefore)
        await page.waitForSelector(`tr[data-job="${job.id}"][data-status="${job.status}"]`, { timeout: 20_000 });
      await mkdir(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-after-restore.png'), fullPage: true });
    } finally {
      await browser.close();
    }

    // The restored failure can still be retried: the record is whole, not a copy for show.
    const retried = await run(['--url', stack.host.url, '--json', 'retry', failedJob.id]);
    assert.equal(retried.code, 0, explain(retried));
  });
});
