/**
 * A stand-in for a test file that leaves things behind, used by test/unit/fixtures-harness.test.ts:
 * it starts a process group (sh + a forked sleep) and a temp folder, prints them as JSON, then ends
 * the way argv[2] says: `exit` (process.exit), `throw` (uncaught error) or `wait` (until a signal).
 */
import { makeTempDir, spawnManaged, waitFor } from './process';

async function main(): Promise<void> {
  const dir = makeTempDir('harness-probe-');
  const proc = spawnManaged('sh', ['-c', 'sleep 300 & echo "grandchild $!"; wait']);
  await waitFor(() => /grandchild \d+/.test(proc.output()), {
    timeoutMs: 5_000,
    description: 'the probe child to start',
  });
  const grandchild = Number(/grandchild (\d+)/.exec(proc.output())![1]);
  process.stdout.write(`${JSON.stringify({ child: proc.pid, grandchild, dir })}\n`);
  const how = process.argv[2];
  if (how === 'exit') process.exit(3);
  if (how === 'throw') throw new Error('probe failure');
  setInterval(() => undefined, 1_000);
}

void main();
