/**
 * A hurahura-like watcher on one rule folder (test/support/hurahura_watch.py, Debian's
 * python3-watchdog under /usr/bin/python3): the events it reports, and which of them hurahura acts on.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { spawnManaged, waitFor, type ManagedProcess } from './process';

export interface WatchEvent {
  kind: 'dir-created' | 'dir-moved' | 'file-created' | 'file-moved' | 'deleted';
  name: string;
  /** What hurahura would act on: a directory created or moved in, an archive created, no `.WORKING` name. */
  acts: boolean;
}

export interface Watcher {
  events(): WatchEvent[];
  /** Names hurahura would pick up, in order. */
  acted(): string[];
  stop(): Promise<void>;
}

const PYTHON = '/usr/bin/python3';

export async function watchLikeHurahura(folder: string): Promise<Watcher> {
  const probe = spawnSync(PYTHON, ['-c', 'import watchdog.observers'], { encoding: 'utf8' });
  if (probe.status !== 0)
    throw new Error(`Debian's python3-watchdog is required (apt-get install python3-watchdog): ${probe.stderr}`);
  const child: ManagedProcess = spawnManaged(PYTHON, [path.join(__dirname, 'hurahura_watch.py'), folder], {
    name: 'hurahura-watch',
  });
  const parsed = (): Array<WatchEvent | { kind: 'ready' }> =>
    child
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as WatchEvent);
  await waitFor(() => parsed().some((e) => e.kind === 'ready'), {
    timeoutMs: 15_000,
    description: 'the watchdog observer to start',
    onTimeout: () => child.output(),
  });
  const events = () => parsed().filter((e): e is WatchEvent => e.kind !== 'ready');
  return {
    events,
    acted: () =>
      events()
        .filter((e) => e.acts)
        .map((e) => e.name),
    stop: () => child.stop('SIGTERM'),
  };
}
