/** `npm start` (after its build): Orthanc, Azurite and the function app up on loopback, all down on Ctrl-C. */
import assert from 'node:assert/strict';
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
      },
      name: 'npm-start',
    });
    let health: { ok: boolean; orthanc: { ok: boolean; version?: string }; storage: { ok: boolean } } | undefined;
    await waitFor(async () => {
      const answer = await fetch(`http://127.0.0.1:${functionsPort}/api/health`);
      if (answer.status !== 200) return false;
      health = (await answer.json()) as typeof health;
      return true;
    }, { timeoutMs: 120_000, intervalMs: 500, description: '/api/health to answer 200', onTimeout: () => stack!.output().slice(-4000) });
    assert.equal(health?.ok, true);
    assert.equal(health?.orthanc.version, '1.10.1');
    assert.equal(health?.storage.ok, true);
    assert.ok(await portOpen(orthancPort));

    stack.child.kill('SIGINT');
    const code = await stack.exited;
    assert.equal(code, 0, stack.output().slice(-2000));
    for (const port of [orthancPort, functionsPort, 10001]) assert.equal(await portOpen(port), false, `port ${port} closed after Ctrl-C`);
    assert.match(stack.output(), /\[stack\] functions stopped[\s\S]*\[stack\] orthanc stopped[\s\S]*\[stack\] azurite stopped/);
  });
});
