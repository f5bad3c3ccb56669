/**
 * Duplicates and races (the same study reported 100 times at once, by the webhook and by the change
 * feed: one job, one output; a stable event replayed while instances arrive again: no job), and
 * hostile names (DICOM values made to escape or break paths: every output stays under the storage
 * root with a readable name).
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { generateStudy } from '../support/dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from '../e2e/stack';
import { LONG, allDone, figure, leftovers, outputProblems, queueDepth, sleep, uploadFiles, walk } from './common';

const DUPLICATES = LONG ? 500 : 100;
const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

/** Why a path component is not a safe, readable name (undefined when it is). */
function nameProblem(component: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(component)) return 'control character';
  if (/[/\\:*?"<>|]/.test(component)) return 'separator or reserved character';
  if (component === '' || component === '.' || component === '..') return 'empty or dot name';
  if (component.startsWith('.') || component.startsWith('-')) return 'leading dot or dash';
  if (WINDOWS_RESERVED.test(component)) return 'Windows-reserved name';
  if (Buffer.byteLength(component) > 255) return 'longer than 255 bytes';
  if (component.includes('\ufffd')) return 'replacement character (lost text)';
  if (!/[\p{L}\p{N}]/u.test(component)) return 'no letter or digit';
  return undefined;
}

describe('duplicates, races and hostile names', { timeout: 300_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ stableAgeSeconds: 1 });
  });
  after(async () => stack?.stop());

  it(`collapses ${DUPLICATES} concurrent events, the webhook and the change feed into one job and one output`, async () => {
    await stack.writeRule('race', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'race test' }],
    });
    const study = await generateStudy({
      patientID: 'P-RACE',
      studyID: '99',
      studyDescription: 'race test',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 4, rows: 64 }],
    });
    const logStart = stack.host.logs().length;
    await stack.sendStudy(study);
    const resourceId = await stack.studyId(study.studyInstanceUID);
    // Fire the moment Orthanc calls the study stable, when its Lua hook posts too.
    await waitFor(async () => (await stack.client.getStudy(resourceId)).IsStable, {
      timeoutMs: 30_000,
      intervalMs: 20,
      description: 'the study to become stable',
    });
    const [answers, feed] = await Promise.all([
      Promise.all(
        Array.from({ length: DUPLICATES }, () =>
          stack.post('orthanc/events', { changeType: 'StableStudy', resourceId }).then((r) => r.status),
        ),
      ),
      fetch(`${stack.host.url}/admin/functions/changeFeed`, {
        method: 'POST',
        headers: { 'x-functions-key': stack.masterKey, 'Content-Type': 'application/json' },
        body: JSON.stringify({ input: '' }),
      }).then((r) => r.status),
    ]);
    assert.deepEqual([...new Set(answers)], [202]);
    assert.equal(feed, 202);
    const evaluated = () => {
      const log = stack.host.logs().slice(logStart);
      return (log.match(new RegExp(`Study ${resourceId} rule 'race': job-(created|exists)`, 'g')) ?? []).length;
    };
    const fromFeed = () => /Change feed: \d+ stable resources enqueued/.test(stack.host.logs().slice(logStart));
    // 100 posts + the Lua hook + the change feed, each evaluated.
    await waitFor(() => evaluated() >= DUPLICATES + 2 && fromFeed(), {
      timeoutMs: 90_000,
      description: 'every duplicate to be evaluated',
      onTimeout: () => `evaluated ${evaluated()}, change feed enqueued: ${fromFeed()}`,
    });
    const [job] = await allDone(stack, 1, (j) => j.ruleId === 'race', 90_000);
    await waitFor(
      async () =>
        (await queueDepth(stack, 'evaluate')) === 0 &&
        (await queueDepth(stack, 'step-download')) === 0 &&
        (await queueDepth(stack, 'step-publish')) === 0,
      { timeoutMs: 90_000, description: 'duplicate step messages to drain' },
    );
    await sleep(1000);
    const jobs = await stack.jobs((j) => j.ruleId === 'race');
    const outputs = await fs.readdir(path.join(stack.storageDir, 'race'));
    const created = (
      stack.host
        .logs()
        .slice(logStart)
        .match(/rule 'race': job-created/g) ?? []
    ).length;
    figure(
      `duplicates: ${DUPLICATES} concurrent events + webhook + change feed → ${evaluated()} evaluations, ${jobs.length} job (${created} created), ${outputs.length} output, ${job.steps.find((s) => s.name === 'download')?.attempts} download run`,
    );
    assert.equal(jobs.length, 1);
    assert.equal(job.status, 'succeeded', job.error);
    assert.deepEqual(outputs, ['P-RACE-Müller-EX99']);
    assert.deepEqual(await outputProblems(stack, job), []);
    assert.equal(job.steps.find((s) => s.name === 'download')?.attempts, 1, 'the download ran once');
  });

  it('makes no job from a replayed stable event while the study receives instances again; the next stable event makes one job with every instance', async () => {
    await stack.writeRule('replay', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'replay test' }],
    });
    const study = await generateStudy({
      patientID: 'P-REPLAY',
      studyID: '77',
      studyDescription: 'replay test',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 2, rows: 64 },
        { seriesNumber: 2, modality: 'MR', instances: 40, rows: 64 },
      ],
    });
    await stack.sendStudy(
      study,
      study.series[0].files.map((f) => f.path),
    );
    const [first] = await allDone(stack, 1, (j) => j.ruleId === 'replay', 90_000);
    const resourceId = await stack.studyId(study.studyInstanceUID);
    const logStart = stack.host.logs().length;
    const verdicts = () =>
      [
        ...stack.host
          .logs()
          .slice(logStart)
          .matchAll(new RegExp(`Study ${resourceId} rule 'replay': (\\S+)`, 'g')),
      ].map((m) => m[1]);
    const decision = () => verdicts().find((v) => v === 'skipped-unstable' || v === 'job-created');

    // Keep instances arriving (one association each, well inside the 1 s StableAge) while the old
    // StableStudy is replayed, as the change feed does when it reads it late.
    const pending = study.series[1].files.map((f) => f.path);
    await stack.sendStudy(study, [pending.shift()!]);
    assert.equal((await stack.post('orthanc/events', { changeType: 'StableStudy', resourceId })).status, 202);
    while (decision() === undefined && pending.length > 0) await stack.sendStudy(study, [pending.shift()!]);
    assert.ok(pending.length > 0, 'the replayed event was evaluated while instances were still arriving');
    const sentBefore = 40 - pending.length;
    await stack.sendStudy(study, pending);
    assert.ok(verdicts().includes('skipped-unstable'), `verdicts while instances arrived: ${verdicts().join(', ')}`);
    assert.ok(!verdicts().includes('job-created'), `no job while instances arrived: ${verdicts().join(', ')}`);

    await allDone(stack, 2, (j) => j.ruleId === 'replay', 90_000);
    await sleep(3000); // room for a stray third job
    const jobs = await stack.jobs((j) => j.ruleId === 'replay');
    assert.equal(
      jobs.length,
      2,
      `two jobs: ${JSON.stringify(jobs.map((j) => ({ source: j.source, lastUpdate: j.lastUpdate, status: j.status })))}`,
    );
    const second = jobs.find((j) => j.id !== first.id)!;
    const held = second.outputPath ? (await walk(second.outputPath)).files.length : 0;
    figure(
      `replayed-stable: old StableStudy evaluated while instances arrived (after ${sentBefore} of 40) → ${decision()}; ${jobs.length} jobs, the second holds ${held}/42 instances`,
    );
    assert.equal(second.status, 'succeeded', second.error);
    assert.equal(held, 42);
    assert.deepEqual(await outputProblems(stack, second), []);
    assert.deepEqual(await leftovers(stack.storageDir), []);
  });

  it('keeps every output under the storage root with a readable name, whatever the DICOM values', async () => {
    await stack.writeRule('hostile', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'hostile test' }],
    });
    await stack.writeRule('hostile-series', {
      CheckOn: 'Series',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'hostile test' }],
    });
    const cases: Array<{ patientID: string; patientName: string; studyID: string; seriesNumber: string }> = [
      { patientID: '../../../../tmp/escape', patientName: '../..^x', studyID: '../1', seriesNumber: '../2' },
      { patientID: '/etc/passwd', patientName: '/root^/', studyID: '/', seriesNumber: '/3' },
      { patientID: 'nul\u0000byte', patientName: 'Nul\u0000Name^A', studyID: '4\u00004', seriesNumber: '4\u0000' },
      {
        patientID: 'ctl\u0001\u0007\u001b[31m\r\nx',
        patientName: 'Tab\tName^\u007f',
        studyID: '5\r\n',
        seriesNumber: '5\t',
      },
      { patientID: 'CON', patientName: 'NUL^PRN', studyID: 'AUX', seriesNumber: 'COM1' },
      { patientID: 'LPT1.txt', patientName: 'com2.json', studyID: 'nul.', seriesNumber: 'CON.' },
      {
        patientID: 'A'.repeat(60) + 'B'.repeat(60),
        patientName: `${'Ö'.repeat(150)}^${'x'.repeat(300)}`,
        studyID: '7'.repeat(100),
        seriesNumber: '8'.repeat(12),
      },
      { patientID: 'Ünïcødé-患者-😀', patientName: '山田^太郎', studyID: 'Ω9', seriesNumber: '٣' },
      { patientID: '.hidden', patientName: '...^', studyID: '..', seriesNumber: '..' },
      {
        patientID: 'back\\slash:colon*star?"q"<a>|pipe',
        patientName: 'Zero\u200bWidth\u202eRTL^',
        studyID: 'C:\\x',
        seriesNumber: '\\\\srv\\share',
      },
    ];
    const uids: string[] = [];
    for (const [i, c] of cases.entries()) {
      // A distinct, harmless StudyDescription suffix keeps the cases apart when names sanitise alike.
      const study = await generateStudy({
        patientID: c.patientID,
        patientName: c.patientName,
        studyID: c.studyID,
        studyDescription: `hostile test ${i}`,
        accessionNumber: `ACC-H-${i}`,
        allowOverlongValues: true,
        series: [
          { seriesNumber: i + 1, modality: 'MR', instances: 2, rows: 64, extra: { SeriesNumber: c.seriesNumber } },
        ],
      });
      // Over REST: storescu (DCMTK's network layer) refuses values longer than their VR allows.
      assert.deepEqual(await uploadFiles(stack, study.files), [200, 200], `Orthanc stores case ${i}`);
      uids.push(study.studyInstanceUID);
    }
    const jobs = await allDone(
      stack,
      cases.length * 2,
      (j) => j.ruleId.startsWith('hostile') && uids.includes(j.studyInstanceUid ?? ''),
      150_000,
    );
    const failed = jobs.filter((j) => j.status !== 'succeeded').map((j) => `${j.ruleId}: ${j.error}`);
    const root = await fs.realpath(stack.storageDir);
    const escaped: string[] = [];
    const unreadable: string[] = [];
    for (const job of jobs.filter((j) => j.status === 'succeeded')) {
      const real = await fs.realpath(job.outputPath!);
      if (!real.startsWith(`${root}/`)) escaped.push(real);
      assert.deepEqual(await outputProblems(stack, job), []);
    }
    const tree = await walk(stack.storageDir);
    for (const rel of [...tree.dirs, ...tree.files]) {
      for (const component of rel.split('/')) {
        const problem = nameProblem(component);
        if (problem) unreadable.push(`${JSON.stringify(component)}: ${problem}`);
      }
    }
    // Nothing appeared beside the storage root (the stack's work folder holds only rules, storage, the private staging and keys).
    const beside = (await fs.readdir(path.dirname(stack.storageDir))).filter(
      (n) => !['rules', 'storage', 'staging', 'secrets.json'].includes(n),
    );
    const studyOutputs = await fs.readdir(path.join(stack.storageDir, 'hostile'));
    const seriesOutputs = await fs.readdir(path.join(stack.storageDir, 'hostile-series'));
    figure(
      `hostile-names: ${cases.length} studies with ../, /, NUL, control, reserved, long and non-ASCII values → ${jobs.length - failed.length}/${jobs.length} jobs succeeded, ${studyOutputs.length + seriesOutputs.length} outputs, ${escaped.length + beside.length} outside the storage root, ${unreadable.length} unreadable names`,
    );
    console.log(
      `  e.g. ${studyOutputs
        .slice(0, 10)
        .map((n) => JSON.stringify(n))
        .join(', ')}`,
    );
    assert.deepEqual(failed, []);
    assert.deepEqual(escaped, []);
    assert.deepEqual(beside, []);
    assert.deepEqual(unreadable, []);
    assert.equal(studyOutputs.length, cases.length, `one study output per case: ${studyOutputs.join(', ')}`);
    assert.equal(seriesOutputs.length, cases.length, `one series output per case: ${seriesOutputs.join(', ')}`);
    assert.deepEqual(await leftovers(stack.storageDir), []);
  });
});
