/**
 * `autorthanc` against the running stack (real Orthanc, Azurite, the devhost with keys enforced, a dcmtk
 * storescp as destination): every command run as a child process from the built dist, its exit code
 * (0 ok, 1 problems found, 2 could not run) and its `--json`. A failed job is listed with exit 0, shown,
 * retried after the operator fixes its cause, and runs again; a destination that goes down turns
 * `test` and `doctor` to 1; an unreachable app or a wrong key is 2.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { startStorescp, type Storescp } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { freePort, makeTempDir, waitFor } from '../support/process';
import { REPO_ROOT, startStack, type Stack } from './stack';
import { CLI_BIN as BIN, runCommand, type Run } from '../support/cli';

function run(args: string[], env: Record<string, string | undefined> = {}, command = process.execPath): Promise<Run> {
  return runCommand(command, command === process.execPath ? [BIN, ...args] : args, {
    cwd: REPO_ROOT,
    env: { ...process.env, AUTOMATION_FUNCTION_KEY: undefined, FUNCTIONS_HTTP_PORT: undefined, ...env },
    stdio: 'pipe',
  });
}

describe('autorthanc CLI against the stack', { timeout: 300_000 }, () => {
  let stack: Stack;
  let sink: Storescp;
  let study: GeneratedStudy;
  let failed: Job;
  let succeeded: Job;
  let env: Record<string, string>;
  const cli = (...args: string[]) => run(['--url', stack.host.url, ...args], env);
  const json = async <T = Record<string, unknown>>(...args: string[]) => {
    const r = await cli('--json', ...args);
    let body: T;
    try {
      body = JSON.parse(r.stdout) as T;
    } catch {
      assert.fail(`autorthanc ${args.join(' ')} printed no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`);
    }
    return { ...r, body };
  };
  const explain = (r: Run) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

  before(async () => {
    assert.ok(readdirSync(path.dirname(BIN)).includes('bin.js'), 'dist/shared/cli/bin.js is built (npm run build)');
    sink = await startStorescp({ aet: 'CLISINK' });
    stack = await startStack({
      enforceAuth: true,
      stableAgeSeconds: 1,
      env: { MODALITY_SINK: `CLISINK|127.0.0.1|${sink.port}`, AUTOMATION_FORWARD_POLL_SECONDS: '1' },
    });
    env = { AUTOMATION_FUNCTION_KEY: stack.functionKey };
    // ensureDicomPeers echoes the sink at start-up; later echoes come from `test`.
    await stack.writeRule('cli_forward', {
      CheckOn: 'Study',
      Action: 'FORWARD',
      DestinationModality: 'SINK',
      Tags: [{ TagName: 'StudyDescription', Value: 'cli' }],
    });
    await stack.writeRule('cli_mapped', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise'],
      Anonymise: { Identity: 'mapping', MappingFile: 'mapping.csv' },
      Tags: [{ TagName: 'StudyDescription', Value: 'cli' }],
    });
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), 'original,pseudonym\nSOMEONE-ELSE,SUBJ-999\n');
    study = await generateStudy({
      patientID: 'P-CLI-1',
      patientName: 'Cli^Patient',
      studyDescription: 'cli test',
      series: [{ seriesNumber: 1, modality: 'CT', seriesDescription: 'axial', instances: 2 }],
    });
    await stack.sendStudy(study);
    const id = await stack.studyId(study.studyInstanceUID);
    const jobs = await stack.waitForJobs(2, (j) => j.resourceId === id);
    succeeded = jobs.find((j) => j.ruleId === 'cli_forward')!;
    failed = jobs.find((j) => j.ruleId === 'cli_mapped')!;
    assert.equal(succeeded?.status, 'succeeded', JSON.stringify(jobs.map((j) => [j.ruleId, j.status, j.error])));
    assert.equal(failed?.status, 'failed');
  });

  after(async () => {
    await stack?.stop();
    await sink?.stop();
  });

  it('runs as `npx autorthanc` from the package bin', async () => {
    const r = await run(['autorthanc', '--help'], {}, 'npx');
    assert.equal(r.code, 0, explain(r));
    assert.match(r.stdout, /Usage: autorthanc/);
    for (const command of ['setup', 'backup', 'restore']) assert.match(r.stdout, new RegExp(`\\n  ${command} `));
    assert.doesNotMatch(r.stdout, /not yet/);
  });

  it('status: 0 and the report as JSON', async () => {
    const text = await cli('status');
    assert.equal(text.code, 0, explain(text));
    assert.match(text.stdout, /Healthy/);
    const r = await json<{ ok: boolean; orthanc: { ok: boolean }; queues: Record<string, unknown> }>('status');
    assert.equal(r.code, 0);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.orthanc.ok, true);
    assert.ok(Object.keys(r.body.queues).includes('evaluate'), 'queue depths reported');
  });

  it('jobs: a failed job is listed with exit 0; filters by status and rule', async () => {
    const all = await json<{ jobs: Job[] }>('jobs');
    assert.equal(all.code, 0, explain(all));
    assert.deepEqual(all.body.jobs.map((j) => j.id).sort(), [failed.id, succeeded.id].sort());
    const onlyFailed = await json<{ jobs: Job[] }>('jobs', '--status', 'failed');
    assert.equal(onlyFailed.code, 0);
    assert.deepEqual(
      onlyFailed.body.jobs.map((j) => j.id),
      [failed.id],
    );
    const byRule = await json<{ jobs: Job[] }>('jobs', '--rule', 'cli_forward');
    assert.deepEqual(
      byRule.body.jobs.map((j) => j.id),
      [succeeded.id],
    );
    const text = await cli('jobs', '--status', 'failed');
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`${failed.id}\\s+cli_mapped\\s+failed`));
    assert.ok(!text.stdout.includes(study.patientName) && !text.stdout.includes('Cli^'), 'no patient name');
    const bad = await cli('jobs', '--status', 'broken');
    assert.equal(bad.code, 2, 'a bad --status is a bad argument');
    assert.match(bad.stderr, /Allowed choices/);
  });

  it('job: one job (0), an unknown id (1), a malformed id (2)', async () => {
    const one = await json<Job & { percent: number }>('job', failed.id);
    assert.equal(one.code, 0, explain(one));
    assert.equal(one.body.id, failed.id);
    assert.equal(one.body.status, 'failed');
    assert.ok(Array.isArray(one.body.steps) && typeof one.body.percent === 'number');
    const text = await cli('job', failed.id);
    assert.match(text.stdout, /steps:/);
    assert.match(text.stdout, /not in the mapping file/);
    const unknown = await json<{ error: string }>('job', 'no-such-job-0000');
    assert.equal(unknown.code, 1, explain(unknown));
    assert.match(unknown.body.error, /no job no-such-job-0000/);
    const malformed = await cli('job', 'x/../y');
    assert.equal(malformed.code, 2, explain(malformed));
  });

  it('destinations and test NAME: the sink answers its C-ECHO, an unknown name is 1', async () => {
    const list = await json<{ destinations: Array<{ name: string; ok: boolean; kind: string }> }>('destinations');
    assert.equal(list.code, 0, explain(list));
    assert.deepEqual(
      list.body.destinations.map((d) => [d.name, d.kind, d.ok]),
      [['SINK', 'dicom', true]],
    );
    const echo = await json<{ ok: boolean; milliseconds: number; kind: string }>('test', 'SINK');
    assert.equal(echo.code, 0, explain(echo));
    assert.equal(echo.body.ok, true);
    assert.equal(typeof echo.body.milliseconds, 'number');
    const text = await cli('test', 'SINK');
    assert.match(text.stdout, /C-ECHO SINK: ok in \d+/);
    const unknown = await cli('test', 'NOPE');
    assert.equal(unknown.code, 1, explain(unknown));
    assert.match(unknown.stderr, /no destination NOPE/);
  });

  it('rules check and rules test read the rules folder (0), a broken rule file is 1', async () => {
    const check = await json<{ ok: boolean; rules: Array<{ id: string }> }>('rules', 'check', stack.rulesDir);
    assert.equal(check.code, 0, explain(check));
    assert.deepEqual(check.body.rules.map((r) => r.id).sort(), ['cli_forward', 'cli_mapped']);
    const brokenDir = makeTempDir('cli-rules-');
    await mkdir(brokenDir, { recursive: true });
    await writeFile(path.join(brokenDir, 'broken.json'), '{"CheckOn": "Study", "Tags": [');
    const broken = await json<{ ok: boolean; badFiles: string[] }>('rules', 'check', brokenDir);
    assert.equal(broken.code, 1, explain(broken));
    assert.deepEqual(broken.body.badFiles, ['broken.json']);
    const file = study.files[0];
    const dry = await json<{ results: Array<{ ruleId: string; matched: boolean }> }>(
      'rules',
      'test',
      stack.rulesDir,
      '--file',
      file,
    );
    assert.equal(dry.code, 0, explain(dry));
    assert.deepEqual(dry.body.results.map((r) => [r.ruleId, r.matched]).sort(), [
      ['cli_forward', true],
      ['cli_mapped', true],
    ]);
    const neither = await cli('rules', 'test', stack.rulesDir);
    assert.equal(neither.code, 2, 'test needs a source');
  });

  it('doctor: 0 while everything is in place', async () => {
    const r = await json<{ ok: boolean; checks: Array<{ name: string; ok: boolean; detail: string }> }>('doctor');
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.body.ok, true);
    const names = r.body.checks.map((c) => c.name);
    for (const expected of [
      'Orthanc',
      'Table storage',
      'storage folder',
      'staging folder',
      'secret AUTOMATION_ANONYMISATION_SECRET',
      'secret ORTHANC_PASSWORD',
      'clock against Orthanc',
      'clock against the app',
      'function key',
      'destination SINK',
    ])
      assert.ok(names.includes(expected), `doctor checks ${expected}: ${names.join(', ')}`);
    assert.ok(!r.stdout.includes(stack.functionKey), 'the key is never printed');
    assert.ok(!r.stdout.includes(stack.orthanc.password), 'nor the Orthanc password');
  });

  it('retry: a failed job runs again after its cause is fixed; a job that has not failed is 1', async () => {
    const refused = await json<{ retried: number; results: Array<{ error?: string }> }>('retry', succeeded.id);
    assert.equal(refused.code, 1, explain(refused));
    assert.match(refused.body.results[0].error ?? '', /only failed jobs/);
    await writeFile(path.join(stack.rulesDir, 'mapping.csv'), `original,pseudonym\n${study.patientID},SUBJ-001\n`);
    const r = await json<{ retried: number }>('retry', failed.id);
    assert.equal(r.code, 0, explain(r));
    assert.equal(r.body.retried, 1);
    await waitFor(async () => (await stack.jobStore.get(failed.id))?.status === 'succeeded', {
      timeoutMs: 60_000,
      description: 'the retried job to succeed',
    });
    const none = await cli('retry', '--failed');
    assert.equal(none.code, 0, explain(none));
    assert.match(none.stdout, /No failed jobs/);
    const both = await cli('retry', failed.id, '--failed');
    assert.equal(both.code, 2);
  });

  it('a destination that goes down: test SINK and doctor are 1', async () => {
    await sink.stop();
    const echo = await json<{ ok: boolean; reason?: string }>('test', 'SINK');
    assert.equal(echo.code, 1, explain(echo));
    assert.equal(echo.body.ok, false);
    const doctor = await json<{ ok: boolean; checks: Array<{ name: string; ok: boolean }> }>('doctor');
    assert.equal(doctor.code, 1, explain(doctor));
    assert.deepEqual(
      doctor.body.checks.filter((c) => !c.ok).map((c) => c.name),
      ['destination SINK'],
    );
    const text = await cli('doctor');
    assert.match(text.stdout, /FAIL destination SINK/);
    assert.match(text.stdout, /1 problem\(s\) found/);
    const destinations = await cli('destinations');
    assert.equal(destinations.code, 1);
  });

  it('could not run (2): unreachable app, wrong key, no key', async () => {
    const port = await freePort();
    const unreachable = await run(['--url', `http://127.0.0.1:${port}`, 'status'], env);
    assert.equal(unreachable.code, 2, explain(unreachable));
    assert.match(unreachable.stderr, /cannot reach the app at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
    const wrongKey = await run(['--url', stack.host.url, '--json', 'jobs'], {
      AUTOMATION_FUNCTION_KEY: 'not-the-key-0123456789abcdef0123456789',
    });
    assert.equal(wrongKey.code, 2, explain(wrongKey));
    assert.match((JSON.parse(wrongKey.stdout) as { error: string }).error, /refused the key \(HTTP 401\)/);
    assert.ok(!wrongKey.stderr.includes('not-the-key'), 'the key is never printed');
    const noKey = await run(['--url', stack.host.url, 'doctor'], {});
    assert.equal(noKey.code, 2, explain(noKey));
    // FUNCTIONS_HTTP_PORT picks the default URL.
    const byPort = await run(['status'], { ...env, FUNCTIONS_HTTP_PORT: String(stack.host.port) });
    assert.equal(byPort.code, 0, explain(byPort));
  });
});
