/** `npm start` (after its build): Orthanc, Azurite and the function app up on loopback, all down on Ctrl-C. */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { freePort, makeTempDir, portOpen, spawnManaged, waitFor, type ManagedProcess } from '../support/process';

const REPO = path.resolve(__dirname, '../..');

describe('npm start', { timeout: 180_000 }, () => {
  let stack: ManagedProcess | undefined;
  after(async () => stack?.stop('SIGKILL'));

  it('brings up the stack, answers /api/health with 200, and stops everything on SIGINT', async () => {
    const state = makeTempDir('start-');
    const [orthancPort, functionsPort, dicomPort] = [await freePort(), await freePort(), await freePort()];
    stack = spawnManaged(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/start-stack.ts')], {
      cwd: REPO,
      env: {
        ...process.env,
        ORTHANC_HTTP_PORT: String(orthancPort),
        FUNCTIONS_HTTP_PORT: String(functionsPort),
        ORTHANC_AET_PORT: String(dicomPort),
        DEVHOST_STATE_DIR: state,
        ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: path.join(state, 'rules'),
        ORTHANC_AUTOMATION_STORAGE_PATH: path.join(state, 'out'),
        AUTOMATION_ANONYMISATION_SECRET: '',
        ORTHANC_PASSWORD: '',
        AUTOMATION_STAGING_PATH: '',
      },
      name: 'npm-start',
    });
    let health: unknown;
    await waitFor(
      async () => {
        const answer = await fetch(`http://127.0.0.1:${functionsPort}/api/health`);
        if (answer.status !== 200) return false;
        health = await answer.json();
        return true;
      },
      {
        timeoutMs: 120_000,
        intervalMs: 500,
        description: '/api/health to answer 200',
        onTimeout: () => stack!.output().slice(-4000),
      },
    );
    assert.deepEqual(health, { status: 'ok' });
    // The details are in the status report (npm start, like func start, does not check keys).
    const status = (await (await fetch(`http://127.0.0.1:${functionsPort}/api/status`)).json()) as {
      ok: boolean;
      orthanc: { ok: boolean; version?: string };
      storage: { ok: boolean };
    };
    assert.equal(status.ok, true);
    assert.equal(status.orthanc.version, '1.10.1');
    assert.equal(status.storage.ok, true);
    assert.ok(await portOpen(orthancPort));
    // First start: the anonymisation secret is made in the state folder (owner only), and npm start says
    // where and that it must be backed up, without printing it; the staging folder is private too.
    const secretFile = path.join(state, 'anonymisation-secret');
    const secret = readFileSync(secretFile, 'utf8').trim();
    assert.match(secret, /^[0-9a-f]{64}$/, '32 random bytes, hex');
    assert.equal(statSync(secretFile).mode & 0o777, 0o600);
    assert.equal(statSync(path.join(state, 'staging')).mode & 0o777, 0o700);
    assert.ok(
      stack.output().includes(`Created the anonymisation secret in ${secretFile}. Back it up`),
      stack.output().slice(-3000),
    );
    assert.ok(!stack.output().includes(secret), 'the secret is never printed');
    // Orthanc's password is generated the same way, never a default: orthanc/orthanc is refused.
    const passwordFile = path.join(state, 'orthanc-password');
    const password = readFileSync(passwordFile, 'utf8').trim();
    assert.match(password, /^[0-9a-f]{64}$/);
    assert.equal(statSync(passwordFile).mode & 0o777, 0o600);
    assert.ok(!stack.output().includes(password), 'the password is never printed');
    const basic = (user: string, pass: string) => ({
      Authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`,
    });
    const system = `http://127.0.0.1:${orthancPort}/system`;
    assert.equal((await fetch(system, { headers: basic('orthanc', 'orthanc') })).status, 401);
    assert.equal((await fetch(system, { headers: basic('orthanc', password) })).status, 200);

    stack.child.kill('SIGINT');
    const code = await stack.exited;
    assert.equal(code, 0, stack.output().slice(-2000));
    for (const port of [orthancPort, functionsPort, 10001])
      assert.equal(await portOpen(port), false, `port ${port} closed after Ctrl-C`);
    assert.match(
      stack.output(),
      /\[stack\] functions stopped[\s\S]*\[stack\] orthanc stopped[\s\S]*\[stack\] azurite stopped/,
    );
  });
});
