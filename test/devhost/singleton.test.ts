/**
 * Timer listeners are singletons across instances that share a host id and a storage account, as in
 * the Functions host: one blob lease per timer (`azure-webjobs-hosts/locks/{hostId}/Host.Functions.{name}.Listener`);
 * the other instances retry for it, take over when the holder stops (it releases the lease) and,
 * after a crash, only once the lease has lapsed.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BlobServiceClient } from '@azure/storage-blob';
import { readHostSettings } from '../../devhost/settings';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { freePort, makeTempDir, spawnManaged, waitFor, type ManagedProcess } from '../support/process';

const REPO = path.resolve(__dirname, '../..');
const APP = path.join(__dirname, 'sample-app');
const HOST_ID = 'singleton-host';
const LOCK_BLOB = `locks/${HOST_ID}/Host.Functions.ticker.Listener`;

interface Instance {
  name: string;
  proc: ManagedProcess;
  log: string;
}

interface Run {
  instance: string;
  start: number;
  end?: number;
}

describe('devhost timer singletons across instances', { timeout: 180_000 }, () => {
  let azurite: AzuriteServer;
  let work: string;
  const instances: Instance[] = [];

  async function startInstance(name: string): Promise<Instance> {
    const port = await freePort();
    const log = path.join(work, `${name}.jsonl`);
    const proc = spawnManaged(
      process.execPath,
      ['--import', 'tsx', path.join(REPO, 'devhost/cli.ts'), '--app', APP, '--port', String(port)],
      {
        cwd: REPO,
        env: {
          ...process.env,
          AzureWebJobsStorage: azurite.connectionString,
          SAMPLE_LOG: log,
          SAMPLE_TICKER: '1',
          AzureFunctionsWebHost__hostid: HOST_ID,
          AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
          DEVHOST_SECRETS_FILE: path.join(work, 'secrets.json'),
          // The shortest lease and recovery interval the host allows, so takeovers fit in a test.
          AzureFunctionsJobHost__singleton__listenerLockPeriod: '00:00:15',
          AzureFunctionsJobHost__singleton__listenerLockRecoveryPollingInterval: '00:00:15',
        },
        name,
      },
    );
    const instance = { name, proc, log };
    instances.push(instance);
    await waitFor(() => proc.output().includes('Host started'), {
      timeoutMs: 30_000,
      description: `${name} to start`,
      onTimeout: () => proc.output(),
    });
    return instance;
  }

  function runsOf(instance: Instance): Run[] {
    if (!existsSync(instance.log)) return [];
    const runs: Run[] = [];
    for (const line of readFileSync(instance.log, 'utf8').split('\n').filter(Boolean)) {
      const record = JSON.parse(line) as { fn?: string; phase?: string; at: number };
      if (record.fn !== 'ticker') continue;
      if (record.phase === 'start') runs.push({ instance: instance.name, start: record.at });
      else if (record.phase === 'end') runs[runs.length - 1].end = record.at;
    }
    return runs;
  }

  /** Every run of every instance, in time order; none may begin before the previous one ended. */
  function assertNoOverlap(killedAt: Map<string, number>): Run[] {
    const all = instances.flatMap(runsOf).sort((a, b) => a.start - b.start);
    for (let i = 1; i < all.length; i += 1) {
      const previous = all[i - 1];
      const previousEnd = previous.end ?? killedAt.get(previous.instance) ?? Infinity;
      assert.ok(
        all[i].start >= previousEnd,
        `run of ${all[i].instance} at ${all[i].start} overlaps ${previous.instance}'s run (${previous.start}–${previousEnd})`,
      );
    }
    return all;
  }

  before(async () => {
    azurite = await startAzurite();
    work = makeTempDir('devhost-singleton-');
  });
  after(async () => {
    for (const instance of instances) await instance.proc.stop('SIGKILL');
    await azurite?.stop();
  });

  it("reads the lease from host.json's singleton section (or its app-setting override), within the host's bounds", () => {
    const env = (extra: Record<string, string>) => ({ AZURE_FUNCTIONS_ENVIRONMENT: 'Development', ...extra });
    assert.deepEqual(readHostSettings(APP, env({})).singleton, {
      listenerLockPeriodMs: 60_000,
      listenerLockRecoveryPollingIntervalMs: 60_000,
    });
    assert.deepEqual(
      readHostSettings(
        APP,
        env({
          AzureFunctionsJobHost__singleton__listenerLockPeriod: '00:00:20',
          AzureFunctionsJobHost__singleton__listenerLockRecoveryPollingInterval: '00:00:30',
        }),
      ).singleton,
      { listenerLockPeriodMs: 20_000, listenerLockRecoveryPollingIntervalMs: 30_000 },
    );
    assert.throws(
      () => readHostSettings(APP, env({ AzureFunctionsJobHost__singleton__listenerLockPeriod: '00:01:30' })),
      /listenerLockPeriod must be between 00:00:15 and 00:01:00/,
    );
    assert.throws(
      () =>
        readHostSettings(
          APP,
          env({ AzureFunctionsJobHost__singleton__listenerLockRecoveryPollingInterval: '00:00:05' }),
        ),
      /listenerLockRecoveryPollingInterval must be at least 00:00:15/,
    );
  });

  it('runs a timer on one instance at a time, hands it over on stop, and after a crash once the lease lapsed', async () => {
    const [a, b] = [await startInstance('instance-a'), await startInstance('instance-b')];
    await waitFor(() => runsOf(a).filter((r) => r.end).length >= 2, {
      timeoutMs: 15_000,
      description: 'two runs on the first instance',
    });
    assert.equal(runsOf(b).length, 0, 'the second instance does not run the timer while the first holds the lock');
    assert.match(
      b.proc.output(),
      /Unable to acquire Singleton lock \(singleton-host\/Host\.Functions\.ticker\.Listener\)/,
    );
    const lockBlob = BlobServiceClient.fromConnectionString(azurite.connectionString)
      .getContainerClient('azure-webjobs-hosts')
      .getBlockBlobClient(LOCK_BLOB);
    assert.equal((await lockBlob.getProperties()).leaseState, 'leased');

    // A graceful stop ends the running invocation, then releases the lease: B takes over at its next retry.
    const stoppedAt = Date.now();
    await a.proc.stop('SIGTERM');
    assert.match(a.proc.output(), /Singleton lock released/);
    await waitFor(() => runsOf(b).length > 0, { timeoutMs: 25_000, description: 'the second instance to take over' });
    const tookOver = runsOf(b)[0].start - stoppedAt;
    assert.ok(tookOver <= 17_000, `taken over within one recovery interval (${tookOver} ms)`);

    // A crash leaves the lease held until it lapses: a new instance must not run the timer before then.
    await waitFor(() => runsOf(b).filter((r) => r.end).length >= 1, { timeoutMs: 10_000, description: 'a run on B' });
    const killedAt = Date.now();
    await b.proc.stop('SIGKILL');
    const c = await startInstance('instance-c');
    assert.match(c.proc.output(), /Unable to acquire Singleton lock/, 'the crashed instance still holds the lease');
    await waitFor(() => runsOf(c).length > 0, { timeoutMs: 40_000, description: 'the third instance to take over' });
    const afterCrash = runsOf(c)[0].start - killedAt;
    assert.ok(afterCrash >= 5_000, `not before the crashed holder's lease could lapse (${afterCrash} ms)`);
    assert.ok(afterCrash <= 33_000, `within the lease period plus one recovery interval (${afterCrash} ms)`);

    const all = assertNoOverlap(new Map([[b.name, killedAt]]));
    assert.deepEqual([...new Set(all.map((r) => r.instance))], ['instance-a', 'instance-b', 'instance-c']);
    await c.proc.stop('SIGTERM');
  });
});
