/**
 * The process harness (test/support/process.ts) that every integration test relies on to leave no
 * servers or folders behind, and to fail loudly instead of skipping.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { FatalWaitError, freePort, portOpen, requireBinary, spawnManaged, waitFor } from '../support/process';

const PROBE = path.resolve(__dirname, '../support/harness-probe.ts');

/** Gone, or a zombie nobody reaps (this machine's init does not): either way no longer running. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

async function runProbe(
  how: 'exit' | 'throw' | 'wait',
  signal?: NodeJS.Signals,
): Promise<{ child: number; grandchild: number; dir: string; code: number | null }> {
  const probe = spawn(process.execPath, ['--import', 'tsx', PROBE, how], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  probe.stdout.on('data', (c: Buffer) => (out += c.toString()));
  probe.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => probe.once('exit', (code) => resolve(code)));
  try {
    await waitFor(() => out.includes('"grandchild"'), {
      timeoutMs: 20_000,
      description: 'the probe to report its children',
      onTimeout: () => out,
    });
  } catch (error) {
    probe.kill('SIGKILL');
    throw error;
  }
  const info = JSON.parse(out.split('\n').find((l) => l.startsWith('{'))!) as {
    child: number;
    grandchild: number;
    dir: string;
  };
  if (signal) {
    assert.ok(alive(info.grandchild), 'the probe is still running before the signal');
    probe.kill(signal);
  }
  const code = await exited;
  return { ...info, code };
}

describe('test harness: processes and folders', () => {
  for (const how of ['exit', 'throw'] as const) {
    it(`kills child process groups and removes temp folders when a test process ends by ${how}`, async () => {
      const r = await runProbe(how);
      assert.notEqual(r.code, 0);
      await waitFor(() => !alive(r.child) && !alive(r.grandchild), {
        timeoutMs: 5_000,
        description: 'probe processes to be gone',
      });
      assert.equal(existsSync(r.dir), false, `${r.dir} removed`);
    });
  }

  it('cleans up on SIGINT (Ctrl-C)', async () => {
    const r = await runProbe('wait', 'SIGINT');
    assert.equal(r.code, 130);
    await waitFor(() => !alive(r.child) && !alive(r.grandchild), {
      timeoutMs: 5_000,
      description: 'probe processes to be gone',
    });
    assert.equal(existsSync(r.dir), false);
  });

  it('stop() also ends what the child forked', async () => {
    const proc = spawnManaged('sh', ['-c', 'sleep 300 & echo "grandchild $!"; wait']);
    await waitFor(() => /grandchild \d+/.test(proc.output()), { timeoutMs: 5_000, description: 'sh to fork' });
    const grandchild = Number(/grandchild (\d+)/.exec(proc.output())![1]);
    await proc.stop('SIGTERM', 2_000);
    assert.equal(proc.running(), false);
    await waitFor(() => !alive(grandchild), { timeoutMs: 5_000, description: 'the forked sleep to be gone' });
  });

  it('fails loudly, naming the Debian package and the install script, when a binary is missing', () => {
    assert.throws(
      () => requireBinary('autorthanc-no-such-binary', 'no-such-package'),
      (error: Error) => {
        assert.match(error.message, /autorthanc-no-such-binary/);
        assert.match(error.message, /Debian package 'no-such-package'/);
        assert.match(error.message, /bash scripts\/install-system-deps\.sh/);
        return true;
      },
    );
    assert.ok(requireBinary('sh', 'dash').endsWith('/sh'));
  });

  it('waitFor times out with the description and the last error, and stops at once on a FatalWaitError', async () => {
    await assert.rejects(
      waitFor(
        () => {
          throw new Error('not yet: connection refused');
        },
        { timeoutMs: 300, intervalMs: 50, description: 'the moon to rise' },
      ),
      /Timed out after 300 ms waiting for the moon to rise \(last error: not yet: connection refused\)/,
    );
    const started = Date.now();
    await assert.rejects(
      waitFor(
        () => {
          throw new FatalWaitError('server exited');
        },
        { timeoutMs: 10_000, description: 'a dead server' },
      ),
      /server exited/,
    );
    assert.ok(Date.now() - started < 2_000);
    let calls = 0;
    await waitFor(() => ++calls === 3, { timeoutMs: 5_000, intervalMs: 10, description: 'the third call' });
    assert.equal(calls, 3);
  });

  it('freePort gives a bindable loopback port that nothing listens on', async () => {
    const port = await freePort();
    assert.ok(port > 1024 && port < 65536);
    assert.equal(await portOpen(port), false);
  });
});
