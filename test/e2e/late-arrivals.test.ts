/**
 * Late arrivals end to end, watched the way hurahura watches (Debian's python3-watchdog on each rule
 * folder): a study published once, then more instances of it arrive, twice. `replace` publishes the
 * new zip under the same name (after the quiet period), `ignore` makes no job, `new-version` publishes
 * `NAME-v2.zip` and `NAME-v3.zip` beside `NAME.zip`. Every zip the watcher sees is a file created, every
 * folder a directory moved in, and no `.WORKING` name is ever acted on.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { watchLikeHurahura, type Watcher } from '../support/watcher';
import { startStack, type Stack } from './stack';

const run = promisify(execFile);
const POLICIES = ['replace', 'ignore', 'new-version'] as const;

async function zipSeriesCount(zip: string): Promise<number> {
  const { stdout } = await run('zipinfo', ['-1', zip]);
  return new Set(
    stdout
      .split('\n')
      .filter((l) => l.endsWith('.dcm'))
      .map((l) => l.split('/').slice(-2)[0]),
  ).size;
}

describe('late arrivals end to end, seen by a hurahura-like watcher', { timeout: 300_000 }, () => {
  let stack: Stack;
  const watchers = new Map<string, Watcher>();
  let study: GeneratedStudy;
  const name = 'LATE1-Doe-EX77';

  before(async () => {
    stack = await startStack({ stableAgeSeconds: 2, env: { AUTOMATION_REPLACE_QUIET_SECONDS: '4' } });
    for (const policy of POLICIES) {
      await stack.writeRule(`late-${policy}`, {
        CheckOn: 'Study',
        IsActive: true,
        Steps: ['download', 'zip'],
        // The new-version rule keeps its folder too: folders must be seen as moved in, zips as created.
        ...(policy === 'new-version' ? { Zip: { KeepFolder: true } } : {}),
        Tags: [{ TagName: 'StudyDescription', Value: 'late arrival' }],
        OnNewInstances: policy,
      });
      watchers.set(policy, await watchLikeHurahura(path.join(stack.storageDir, `late-${policy}`)));
    }
    study = await generateStudy({
      patientID: 'LATE1',
      patientName: 'Doe^Jane',
      studyID: '77',
      studyDescription: 'late arrival',
      series: [1, 2, 3].map((n) => ({ seriesNumber: n, modality: 'CT' as const, instances: 2 })),
    });
  });
  after(async () => {
    for (const w of watchers.values()) await w.stop();
    await stack?.stop();
  });

  const folder = (policy: string) => path.join(stack.storageDir, `late-${policy}`);
  const jobsOf = (policy: string) => stack.jobs((j) => j.ruleId === `late-${policy}`);

  it('publishes the first arrival under NAME for every policy', async () => {
    await stack.sendStudy(
      study,
      study.series[0].files.map((f) => f.path),
    );
    const jobs = await stack.waitForJobs(3, (j) => j.ruleId.startsWith('late-'));
    for (const job of jobs) assert.equal(job.status, 'succeeded', `${job.ruleId}: ${job.error}`);
    for (const policy of POLICIES) assert.equal(await zipSeriesCount(path.join(folder(policy), `${name}.zip`)), 1);
  });

  it('second and third arrivals: replace re-publishes NAME, ignore makes no job, new-version adds NAME-v2 and NAME-v3', async (t) => {
    const id = await stack.studyId(study.studyInstanceUID);
    for (const [index, series] of [study.series[1], study.series[2]].entries()) {
      const arrival = index + 2;
      await stack.sendStudy(
        study,
        series.files.map((f) => f.path),
      );
      await stack.waitForJobs(arrival, (j) => j.ruleId === 'late-replace', { timeoutMs: 60_000 });
      await stack.waitForJobs(arrival, (j) => j.ruleId === 'late-new-version', { timeoutMs: 60_000 });
      await waitFor(
        () =>
          stack.host
            .logs()
            .split('\n')
            .filter((l) => l.includes(`Study ${id} rule 'late-ignore': skipped-published`)).length >=
          index + 1,
        {
          timeoutMs: 30_000,
          description: 'the ignore rule to skip the late arrival',
          onTimeout: () => stack.host.logs().slice(-3000),
        },
      );
    }
    for (const job of [...(await jobsOf('replace')), ...(await jobsOf('new-version'))])
      assert.equal(job.status, 'succeeded', `${job.ruleId}: ${job.error}`);
    assert.equal((await jobsOf('ignore')).length, 1, 'ignore: no job after the first');

    assert.deepEqual(readdirSync(folder('replace')), [`${name}.zip`]);
    assert.equal(await zipSeriesCount(path.join(folder('replace'), `${name}.zip`)), 3, 'replaced by the full study');
    assert.deepEqual(readdirSync(folder('ignore')), [`${name}.zip`]);
    assert.equal(await zipSeriesCount(path.join(folder('ignore'), `${name}.zip`)), 1, 'the first result stays');
    assert.deepEqual(readdirSync(folder('new-version')).sort(), [
      name,
      `${name}-v2`,
      `${name}-v2.zip`,
      `${name}-v3`,
      `${name}-v3.zip`,
      `${name}.zip`,
    ]);
    assert.equal(await zipSeriesCount(path.join(folder('new-version'), `${name}.zip`)), 1);
    assert.equal(await zipSeriesCount(path.join(folder('new-version'), `${name}-v2.zip`)), 2);
    assert.equal(await zipSeriesCount(path.join(folder('new-version'), `${name}-v3.zip`)), 3);

    // What the watchers saw (inotify may report a moment after the rename).
    await waitFor(
      () => watchers.get('new-version')!.acted().length >= 6 && watchers.get('replace')!.acted().length >= 3,
      {
        timeoutMs: 10_000,
        description: 'the watchers to report every publication',
        onTimeout: () => JSON.stringify(Object.fromEntries([...watchers].map(([k, w]) => [k, w.events()]))),
      },
    );
    for (const [policy, watcher] of watchers) {
      t.diagnostic(`${policy}: ${JSON.stringify(watcher.events())}`);
      for (const e of watcher.events()) if (e.name.includes('.WORKING')) assert.equal(e.acts, false, JSON.stringify(e));
      for (const e of watcher.events().filter((x) => x.acts))
        assert.ok(
          (e.kind === 'file-created' && e.name.endsWith('.zip')) || e.kind === 'dir-moved' || e.kind === 'dir-created',
          JSON.stringify(e),
        );
    }
    assert.deepEqual(watchers.get('replace')!.acted(), [`${name}.zip`, `${name}.zip`, `${name}.zip`]);
    assert.deepEqual(watchers.get('ignore')!.acted(), [`${name}.zip`]);
    assert.deepEqual(watchers.get('new-version')!.acted(), [
      `${name}.zip`,
      name,
      `${name}-v2.zip`,
      `${name}-v2`,
      `${name}-v3.zip`,
      `${name}-v3`,
    ]);
    // replace never re-published the name sooner than the quiet period (4 s) after the previous publication.
    const published = (await jobsOf('replace'))
      .map((j) => Date.parse(j.steps.find((s) => s.name === 'publish')?.endedAt ?? ''))
      .sort((a, b) => a - b);
    for (let i = 1; i < published.length; i += 1) {
      const gap = (published[i] - published[i - 1]) / 1000;
      t.diagnostic(`replace: publication ${i + 1} came ${gap}s after the previous one`);
      assert.ok(gap >= 3.9, `re-published after ${gap}s`);
    }
  });
});
