/**
 * The programmatic API, in-process: startHost() runs an app in this very process, twice in a row
 * (the second run must register afresh although Node caches the library and the app), applies the
 * given env, returns the keys, and loads the `main` glob in the worker's order.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { startHost, type RunningHost } from '../../devhost/host';
import { freePort, makeTempDir } from '../support/process';

const APP = path.join(__dirname, 'inprocess-app');

describe('devhost programmatic API (in-process)', { timeout: 30_000 }, () => {
  const work = makeTempDir('devhost-api-');
  const running: RunningHost[] = [];
  const lines: string[] = [];
  after(async () => {
    for (const host of running) await host.stop();
  });

  async function start(instance: string, enforceAuth: boolean): Promise<RunningHost> {
    (globalThis as { devhostLoadOrder?: string[] }).devhostLoadOrder = [];
    const host = await startHost({
      appDir: APP,
      port: await freePort(),
      env: { INSTANCE_NAME: instance },
      enforceAuth,
      secretsFile: path.join(work, 'secrets.json'),
      log: (l) => lines.push(l),
    });
    running.push(host);
    return host;
  }

  it('runs, stops and runs the same app again in one process, with env, keys and route prefix', async () => {
    const first = await start('first', false);
    assert.deepEqual(
      (globalThis as { devhostLoadOrder?: string[] }).devhostLoadOrder,
      ['setup.js', 'functions/whoami.js'],
      'main glob order: shallow setup file first',
    );
    assert.deepEqual(first.functions, ['whoami']);
    const secrets = JSON.parse(readFileSync(path.join(work, 'secrets.json'), 'utf8')) as {
      masterKey: string;
      functionKeys: { default: string };
    };
    assert.equal(first.masterKey, secrets.masterKey, 'keys file created and returned');
    assert.equal(first.functionKey, secrets.functionKeys.default);
    assert.ok(first.masterKey.length >= 40 && first.masterKey !== first.functionKey);
    assert.ok(
      lines.some((l) => l.includes(`Created function keys in ${path.join(work, 'secrets.json')}`)),
      'says where the keys are',
    );
    const answer = await fetch(`${first.url}/v1/whoami/7`);
    assert.equal(answer.status, 200, 'no key needed without enforcement');
    assert.deepEqual(await answer.json(), { instance: 'first', id: '7' });
    assert.equal((await fetch(`${first.url}/api/whoami/7`)).status, 404, 'routePrefix from host.json replaces api');
    await first.stop();
    await assert.rejects(fetch(`${first.url}/v1/whoami/7`), 'the port is closed after stop()');

    const second = await start('second', true);
    assert.deepEqual(
      (globalThis as { devhostLoadOrder?: string[] }).devhostLoadOrder,
      ['setup.js', 'functions/whoami.js'],
      'the app loaded again, not from cache',
    );
    assert.deepEqual(second.functions, ['whoami'], 'functions registered again');
    assert.equal(second.masterKey, first.masterKey, 'an existing keys file is reused');
    const denied = await fetch(`${second.url}/v1/whoami/8`);
    assert.equal(denied.status, 401);
    assert.equal(await denied.text(), '');
    const allowed = await fetch(`${second.url}/v1/whoami/8?code=${second.functionKey}`);
    assert.deepEqual(await allowed.json(), { instance: 'second', id: '8' });
    await second.stop();
    assert.ok(existsSync(path.join(work, 'secrets.json')));
  });
});
