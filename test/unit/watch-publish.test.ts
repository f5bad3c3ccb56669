/**
 * What a hurahura-like watcher (Debian's python3-watchdog, one rule folder, not recursive) sees of the
 * zip and publish steps: each folder as a directory moved in, each zip as a file created, never a
 * `.WORKING` name acted on; a replacement only after the quiet period; a zip crossing filesystems
 * (rule folder on another mount) still a file created.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { newJob, type Job, type RuleSnapshot } from '../../shared/pipeline/job';
import { publishStep } from '../../shared/pipeline/steps/publish';
import { zipStep } from '../../shared/pipeline/steps/zip';
import { makeTempDir, waitFor } from '../support/process';
import { watchLikeHurahura, type Watcher } from '../support/watcher';

const log = { info: () => undefined, warn: () => undefined, error: () => undefined };
const progress = async () => undefined;
let counter = 0;

function jobFor(root: string, ruleId: string, name: string, steps: RuleSnapshot['steps'], keepFolder = false): Job {
  const final = path.join(root, ruleId, name);
  mkdirSync(path.join(`${final}.WORKING`, 'SE1-20240315-1.2.3.1'), { recursive: true });
  writeFileSync(path.join(`${final}.WORKING`, 'SE1-20240315-1.2.3.1', '1.2.3.1.1.dcm'), randomBytes(20_000));
  const rule: RuleSnapshot = { id: ruleId, checkOn: 'Study', steps, destinations: [], zip: { level: 1, keepFolder } };
  counter += 1;
  const job = newJob(
    { rule, level: 'Study', resourceId: `s${counter}`, lastUpdate: 'x', source: 'webhook', forced: false },
    `${'0'.repeat(31)}${counter}`,
  );
  job.outputPath = final;
  return job;
}

async function run(job: Job, quiet = 0) {
  if (job.rule.steps.includes('zip')) await zipStep()({ job, log, progress });
  return publishStep({ replaceQuietSeconds: quiet })({ job, log, progress });
}

async function settled(watcher: Watcher, names: string[]) {
  await waitFor(() => names.every((n) => watcher.acted().includes(n)), {
    timeoutMs: 10_000,
    description: `the watcher to act on ${names.join(', ')}`,
    onTimeout: () => JSON.stringify(watcher.events()),
  });
  // inotify delivers a lone IN_MOVED_TO after a short pairing wait; give late events a moment.
  await new Promise((resolve) => setTimeout(resolve, 700));
}

describe('results as a hurahura-like watcher sees them', { timeout: 90_000 }, () => {
  const cleanup: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  it('zip only, folder only, folder and zip: folders moved in, zips created, no .WORKING name acted on', async (t) => {
    const root = makeTempDir('watch-');
    mkdirSync(path.join(root, 'rule'));
    const watcher = await watchLikeHurahura(path.join(root, 'rule'));
    cleanup.push(
      () => watcher.stop(),
      () => rm(root, { recursive: true, force: true }),
    );

    await run(jobFor(root, 'rule', 'P1-Doe-EX1', ['download', 'zip']));
    await run(jobFor(root, 'rule', 'P2-Roe-EX2', ['download']));
    await run(jobFor(root, 'rule', 'P3-Poe-EX3', ['download', 'zip'], true));
    await settled(watcher, ['P1-Doe-EX1.zip', 'P2-Roe-EX2', 'P3-Poe-EX3', 'P3-Poe-EX3.zip']);
    t.diagnostic(`events: ${JSON.stringify(watcher.events())}`);

    const acted = watcher.events().filter((e) => e.acts);
    assert.deepEqual(acted.map((e) => `${e.kind} ${e.name}`).sort(), [
      'dir-moved P2-Roe-EX2',
      'dir-moved P3-Poe-EX3',
      'file-created P1-Doe-EX1.zip',
      'file-created P3-Poe-EX3.zip',
    ]);
    for (const e of watcher.events()) if (e.name.includes('.WORKING')) assert.equal(e.acts, false, JSON.stringify(e));
    assert.ok(
      !watcher.events().some((e) => e.kind === 'file-moved' && e.name.endsWith('.zip')),
      'a zip is never renamed inside the folder (hurahura would not see it)',
    );
    assert.deepEqual(readdirSync(root).sort(), ['rule'], 'nothing left in the storage root');
  });

  it('replaces a result only after the quiet period; the replacement is acted on, the old one moved aside unseen', async (t) => {
    const root = makeTempDir('watch-replace-');
    mkdirSync(path.join(root, 'rule'));
    const watcher = await watchLikeHurahura(path.join(root, 'rule'));
    cleanup.push(
      () => watcher.stop(),
      () => rm(root, { recursive: true, force: true }),
    );

    await run(jobFor(root, 'rule', 'P1-Doe-EX1', ['download', 'zip'], true));
    await settled(watcher, ['P1-Doe-EX1', 'P1-Doe-EX1.zip']);
    const second = jobFor(root, 'rule', 'P1-Doe-EX1', ['download', 'zip'], true);
    const early = await run(second, 3);
    assert.ok('wait' in early, 'a result published a moment ago is not replaced yet');
    assert.ok(early.wait.delaySeconds >= 1 && early.wait.delaySeconds <= 3, String(early.wait.delaySeconds));
    await new Promise((resolve) => setTimeout(resolve, early.wait.delaySeconds * 1000 + 100));
    // Counted before the publish: the watcher may report the renames before the step returns.
    const before = watcher.acted().length;
    const later = await publishStep({ replaceQuietSeconds: 3 })({ job: second, log, progress });
    assert.ok(!('wait' in later), 'replaced once the quiet period has passed');
    assert.match(String(later.detail?.outcome), /zip replaced, folder replaced/);
    await waitFor(() => watcher.acted().length >= before + 2, {
      timeoutMs: 10_000,
      description: 'the replacement to be seen',
      onTimeout: () => JSON.stringify(watcher.events()),
    });
    t.diagnostic(`events: ${JSON.stringify(watcher.events())}`);
    // The publish step renames the zip in first, then the folder.
    assert.deepEqual(watcher.acted(), ['P1-Doe-EX1.zip', 'P1-Doe-EX1', 'P1-Doe-EX1.zip', 'P1-Doe-EX1']);
    assert.ok(
      watcher.events().every((e) => !e.name.includes('.REPLACED-') || !e.acts),
      'the replaced result moves aside under a .WORKING name, which is not acted on',
    );
    assert.deepEqual(readdirSync(path.join(root, 'rule')).sort(), ['P1-Doe-EX1', 'P1-Doe-EX1.zip']);
  });

  it('a rule folder on another filesystem (EXDEV): the zip is copied in hidden and still appears as created', async (t) => {
    const shm = '/dev/shm';
    const root = makeTempDir('watch-exdev-');
    if (statSync(shm).dev === statSync(root).dev) throw new Error(`${shm} must be another filesystem than ${root}`);
    const elsewhere = mkdtempSync(path.join(shm, 'watch-rule-'));
    symlinkSync(elsewhere, path.join(root, 'rule'));
    const watcher = await watchLikeHurahura(elsewhere);
    cleanup.push(
      () => watcher.stop(),
      () => rm(root, { recursive: true, force: true }),
      () => rm(elsewhere, { recursive: true, force: true }),
    );
    await run(jobFor(root, 'rule', 'P9-Xu-EX9', ['download', 'zip']));
    await settled(watcher, ['P9-Xu-EX9.zip']);
    t.diagnostic(`events: ${JSON.stringify(watcher.events())}`);
    assert.deepEqual(watcher.acted(), ['P9-Xu-EX9.zip']);
    assert.ok(watcher.events().some((e) => e.kind === 'file-created' && e.name === 'P9-Xu-EX9.zip'));
    assert.deepEqual(readdirSync(elsewhere), ['P9-Xu-EX9.zip'], 'no hidden copy left');
    assert.deepEqual(readdirSync(root), ['rule']);
  });
});
