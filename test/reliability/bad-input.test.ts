/**
 * Bad input from every side: fuzzed event bodies, malformed rule files, malformed queue messages
 * and odd DICOM that Orthanc accepts. Each meets a clear answer and harms nothing else.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { orthancEventSchema, QUEUES } from '../../shared/pipeline/messages';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import {
  addPrivateSequence,
  convertTransferSyntax,
  cutOff,
  shortenPixelData,
  useIso2022Japanese,
} from '../support/odd-dicom';
import { waitFor } from '../support/process';
import { startStack, type Stack } from '../e2e/stack';
import { LONG, allDone, figure, outputProblems, queueDepth, sleep, uploadFiles, walk } from './common';

const run = promisify(execFile);
const FUZZ_CASES = LONG ? 10_000 : 1_000;
const VALID_ID = '0123abcd-0123abcd-0123abcd-0123abcd-0123abcd';

interface FuzzCase {
  kind: string;
  body: Buffer | string;
  contentType?: string;
  method?: string;
}

/** Deterministic-enough fuzz: each family of malformed bodies, cycled, with random variation. */
function fuzzCase(i: number): FuzzCase {
  const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)];
  const junkValues = [
    null,
    true,
    false,
    0,
    -1,
    1e308,
    'StableStudy',
    '',
    [],
    {},
    [VALID_ID],
    { resourceId: VALID_ID },
    'x'.repeat(100),
    '../../etc/passwd',
    "'; DROP TABLE jobs; --",
    '\u0000',
    '\ud800',
  ];
  const families: Array<() => FuzzCase> = [
    () => ({
      kind: 'wrong types',
      body: JSON.stringify({ changeType: pick(junkValues), resourceId: pick(junkValues) }),
    }),
    () => ({
      kind: 'wrong types',
      body: JSON.stringify({ changeType: pick(['StableStudy', 'StableSeries']), resourceId: pick(junkValues) }),
    }),
    () => ({
      kind: 'wrong types',
      body: JSON.stringify({
        changeType: pick(['NewInstance', 'stablestudy', 'StableStudy ', 'StablePatient', 'Deleted']),
        resourceId: VALID_ID,
      }),
    }),
    () => ({
      kind: 'wrong types',
      body: JSON.stringify({
        changeType: 'StableStudy',
        resourceId: pick([
          VALID_ID.toUpperCase(),
          VALID_ID.slice(1),
          `${VALID_ID}-00`,
          VALID_ID.replace(/-/g, ''),
          `${VALID_ID}\n`,
          ` ${VALID_ID}`,
        ]),
      }),
    }),
    () => ({
      kind: 'wrong types',
      body: JSON.stringify({
        changeType: 'StableStudy',
        resourceId: VALID_ID,
        [pick(['extra', '__proto__', 'constructor', 'force', 'source'])]: pick(junkValues),
      }),
    }),
    () => ({ kind: 'wrong types', body: JSON.stringify(pick(junkValues)) }),
    () => ({ kind: 'wrong types', body: JSON.stringify([{ changeType: 'StableStudy', resourceId: VALID_ID }]) }),
    () => ({
      kind: 'huge',
      body: JSON.stringify({
        changeType: 'StableStudy',
        resourceId: 'a'.repeat(64 * 1024 + Math.floor(Math.random() * 512 * 1024)),
      }),
    }),
    () => ({
      kind: 'huge',
      body: `{"changeType":"StableStudy","resourceId":"${VALID_ID}","pad":"${' '.repeat(70_000)}"}`,
    }),
    () => ({ kind: 'huge', body: '['.repeat(5_000 + Math.floor(Math.random() * 20_000)) }),
    () => ({
      kind: 'binary',
      body: randomBytes(1 + Math.floor(Math.random() * 4096)),
      contentType: pick(['application/json', 'application/octet-stream']),
    }),
    () => ({
      kind: 'binary',
      body: Buffer.concat([
        Buffer.from(`{"changeType":"StableStudy","resourceId":"${VALID_ID.slice(0, 20)}`),
        Buffer.from([0xff, 0xfe, 0x00, 0xc3]),
        Buffer.from('"}'),
      ]),
    }),
    () => ({ kind: 'binary', body: Buffer.from(`{"changeType":"StableStudy","resourceId":"${VALID_ID}"}\u0000`) }),
    () => {
      const valid = JSON.stringify({ changeType: 'StableStudy', resourceId: VALID_ID });
      const cut = 1 + Math.floor(Math.random() * (valid.length - 2));
      return { kind: 'wrong JSON', body: valid.slice(0, cut) };
    },
    () => ({
      kind: 'wrong JSON',
      body: pick([
        `{changeType: 'StableStudy', resourceId: '${VALID_ID}'}`,
        `{"changeType":"StableStudy","resourceId":"${VALID_ID}",}`,
        `{"changeType":"StableStudy" "resourceId":"${VALID_ID}"}`,
        'NaN',
        'undefined',
        '{"a":1}{"b":2}',
        `<event changeType="StableStudy"/>`,
        `changeType=StableStudy&resourceId=${VALID_ID}`,
        '/* */ {}',
        '\ufeff{',
      ]),
    }),
    () => ({
      kind: 'wrong content-type',
      body: pick([
        `changeType=StableStudy&resourceId=${VALID_ID.slice(2)}`,
        '<xml/>',
        '--boundary\r\nContent-Disposition: form-data; name="changeType"\r\n\r\nStableStudy\r\n--boundary--',
      ]),
      contentType: pick([
        'application/x-www-form-urlencoded',
        'text/xml',
        'multipart/form-data; boundary=boundary',
        'text/plain',
      ]),
    }),
    () => ({ kind: 'empty', body: '', contentType: pick(['application/json', 'text/plain']) }),
    () => ({
      kind: 'wrong method',
      body: JSON.stringify({ changeType: 'StableStudy', resourceId: VALID_ID }),
      method: pick(['GET', 'PUT', 'DELETE', 'PATCH']),
    }),
  ];
  for (;;) {
    const c = families[i % families.length]();
    // Never send a valid event by accident: the point is that nothing gets in.
    if (typeof c.body === 'string' && c.method === undefined) {
      try {
        if (orthancEventSchema.safeParse(JSON.parse(c.body)).success && Buffer.byteLength(c.body) <= 64 * 1024)
          continue;
      } catch {
        // not JSON: fine
      }
    }
    return c;
  }
}

function count(log: string, needle: string): number {
  return log.split(needle).length - 1;
}

describe('bad input', { timeout: LONG ? 1_200_000 : 360_000 }, () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({
      stableAgeSeconds: 1,
      env: { AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:01' },
    });
  });
  after(async () => stack?.stop());

  it(`answers ${FUZZ_CASES} fuzzed event bodies with 4xx and enqueues nothing`, async () => {
    const evaluationsBefore = count(stack.host.logs(), "Executing 'Functions.evaluate'");
    const jobsBefore = (await stack.jobs()).length;
    const statuses = new Map<number, number>();
    const kinds = new Map<string, number>();
    const wrong: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < FUZZ_CASES) {
          const c = fuzzCase(next++);
          kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
          const answer = await fetch(`${stack.host.url}/api/orthanc/events`, {
            method: c.method ?? 'POST',
            headers: {
              'x-functions-key': stack.functionKey,
              ...(c.contentType !== undefined || c.method === undefined
                ? { 'Content-Type': c.contentType ?? 'application/json' }
                : {}),
            },
            body: c.method === 'GET' ? undefined : c.body,
          });
          await answer.arrayBuffer();
          statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
          if (answer.status < 400 || answer.status >= 500)
            wrong.push(`${c.kind} ${c.method ?? 'POST'} ${answer.status}: ${String(c.body).slice(0, 120)}`);
        }
      }),
    );
    await sleep(3000);
    const evaluations = count(stack.host.logs(), "Executing 'Functions.evaluate'") - evaluationsBefore;
    const depth = await queueDepth(stack, QUEUES.evaluate);
    const newJobs = (await stack.jobs()).length - jobsBefore;
    const byStatus = [...statuses]
      .sort((a, b) => a[0] - b[0])
      .map(([s, n]) => `${s}×${n}`)
      .join(' ');
    figure(
      `bad-input/events: ${FUZZ_CASES} fuzzed bodies (${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}) → ${FUZZ_CASES - wrong.length}/${FUZZ_CASES} 4xx (${byStatus}), ${evaluations + depth} enqueued, ${newJobs} jobs`,
    );
    assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} answers were not 4xx`);
    assert.equal(evaluations, 0, 'no evaluation ran');
    assert.equal(depth, 0, 'the evaluate queue is empty');
    assert.equal(newJobs, 0, 'no job was created');
    // The function still works for a well-formed event afterwards (an unknown resource: 202, then nothing to evaluate).
    assert.equal((await stack.post('orthanc/events', { changeType: 'StableStudy', resourceId: VALID_ID })).status, 202);
  });

  it('reports malformed rule files and keeps the other rules working', async () => {
    await stack.writeRule('broken-json', '{ "CheckOn": "Study", "IsActive": true, ');
    await stack.writeRule('bad-schema', {
      CheckOn: 'Planet',
      IsActive: 'sometimes',
      Action: 'DELETE',
      Tags: 'everything',
    });
    await stack.writeRule('binary-junk', randomBytes(300).toString('latin1'));
    await stack.writeRule('good-beside-bad', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'rules test' }],
    });
    const study = await generateStudy({
      patientID: 'P-RULES',
      studyDescription: 'rules test',
      series: [{ seriesNumber: 1, instances: 2, rows: 64 }],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'good-beside-bad');
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(await outputProblems(stack, job), []);
    const logs = stack.host.logs();
    const reported = ['broken-json.json', 'bad-schema.json', 'binary-junk.json'].filter((f) =>
      new RegExp(`Rule file problem: ${f.replace('.', '\\.')}`).test(logs),
    );
    const cli = await run(
      process.execPath,
      ['--import', 'tsx', path.join(__dirname, '../../scripts/rules-cli.ts'), 'check', stack.rulesDir],
      { cwd: path.join(__dirname, '../..') },
    ).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
    );
    const cliReported = ['broken-json.json', 'bad-schema.json', 'binary-junk.json'].filter((f) => cli.out.includes(f));
    figure(
      `bad-input/rules: 3 malformed rule files → ${reported.length}/3 reported in the app's log, ${cliReported.length}/3 by \`npm run rules check\` (exit ${cli.code}), the good rule's job succeeded`,
    );
    assert.equal(
      reported.length,
      3,
      `the app logs each broken file:\n${logs
        .split('\n')
        .filter((l) => l.includes('Rule file'))
        .join('\n')}`,
    );
    assert.equal(cliReported.length, 3, cli.out);
    assert.notEqual(cli.code, 0);
    for (const id of ['broken-json', 'bad-schema', 'binary-junk']) await stack.removeRule(id);
  });

  it('moves malformed queue messages to poison and marks the job they name', async () => {
    const [victim] = await stack.jobs((j) => j.ruleId === 'good-beside-bad');
    const messages: Array<{ queue: string; body: unknown; raw?: boolean }> = [
      { queue: QUEUES.step('download'), body: { jobId: victim.id, step: 'download', extra: 'not allowed' } },
      { queue: QUEUES.step('publish'), body: { jobId: victim.id, step: 42 } },
      { queue: QUEUES.step('zip'), body: { jobId: 12345 } },
      { queue: QUEUES.step('anonymise'), body: 'not json at all {', raw: true },
      { queue: QUEUES.evaluate, body: { level: 'Planet', resourceId: 'x' } },
    ];
    const logsBefore = stack.host.logs().length;
    const { QueueServiceClient } = await import('@azure/storage-queue');
    const service = QueueServiceClient.fromConnectionString(stack.azurite.connectionString);
    for (const m of messages) {
      if (m.raw) {
        const queue = service.getQueueClient(m.queue);
        await queue.createIfNotExists();
        await queue.sendMessage(String(m.body)); // not base64: undecodable
      } else await stack.queues.send(m.queue, m.body);
    }
    // The host moves each to `<queue>-poison` (at once when undecodable, after 5 tries otherwise).
    const poisoned = () => {
      const log = stack.host.logs().slice(logsBefore);
      return messages.filter((m) => log.includes(`Moving message to queue '${m.queue}-poison'`)).map((m) => m.queue);
    };
    await waitFor(() => poisoned().length === messages.length, {
      timeoutMs: 90_000,
      description: 'every malformed message to reach its poison queue',
      onTimeout: () => `poisoned: ${poisoned().join(', ')}\n${stack.host.logs().slice(-3000)}`,
    });
    await waitFor(
      async () =>
        ((await stack.jobStore.get(victim.id))?.warnings ?? []).filter((w) => w.includes('malformed message')).length >=
        2,
      { timeoutMs: 30_000, description: 'the named job to be marked' },
    ).catch(() => undefined);
    const marked = await stack.jobStore.get(victim.id);
    const notes = marked?.warnings.filter((w) => w.includes('malformed message')) ?? [];
    figure(
      `bad-input/queue: ${messages.length} malformed messages (bad fields, wrong types, not base64, bad evaluate) → ${poisoned().length}/${messages.length} moved to poison, ${notes.length}/2 naming a job noted on that job, which stays ${marked?.status}`,
    );
    assert.equal(notes.length, 2, JSON.stringify(marked?.warnings));
    assert.equal(marked?.status, 'succeeded', 'a stray message does not undo a finished job');
  });

  it('processes odd DICOM Orthanc accepts, or fails its job with the file and reason, while other jobs continue', async () => {
    await stack.writeRule('odd', {
      CheckOn: 'Study',
      IsActive: true,
      Steps: ['download', 'anonymise', 'zip'],
      Zip: { Level: 1, KeepFolder: true },
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'odd test' }],
    });
    const variants: Array<{ name: string; apply: (file: string) => Promise<void> | void }> = [
      { name: 'explicit big endian', apply: (f) => convertTransferSyntax(f, 'explicitBigEndian') },
      { name: 'deflated', apply: (f) => convertTransferSyntax(f, 'deflatedExplicitLittleEndian') },
      { name: 'implicit little endian', apply: (f) => convertTransferSyntax(f, 'implicitLittleEndian') },
      { name: 'ISO 2022 IR 6\\ISO 2022 IR 87', apply: useIso2022Japanese },
      { name: 'private sequences', apply: addPrivateSequence },
      { name: 'short pixel data', apply: (f) => shortenPixelData(f) },
      { name: 'file cut off in pixel data', apply: (f) => cutOff(f) },
    ];
    const sent: Array<{ name: string; uid: string; accepted: boolean; status: number }> = [];
    for (const [index, variant] of variants.entries()) {
      const study = await generateStudy({
        patientID: `P-ODD-${index}`,
        studyID: String(index),
        studyDescription: 'odd test',
        series: [{ seriesNumber: 1, modality: 'MR', instances: 3, rows: 64 }],
      });
      // The odd file is the second of three; REST upload stores any transfer syntax DCMTK reads.
      await variant.apply(study.files[1]);
      const statuses = await uploadFiles(stack, study.files);
      const accepted = statuses.every((x) => x === 200);
      const status = statuses.find((x) => x !== 200) ?? 200;
      sent.push({ name: variant.name, uid: study.studyInstanceUID, accepted, status });
    }
    const normal = await generateStudy({
      patientID: 'P-ODD-NORMAL',
      studyDescription: 'odd test',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 4, rows: 64 }],
    });
    await stack.sendStudy(normal);

    const uids = [...sent.map((s) => s.uid), normal.studyInstanceUID];
    const jobs = await allDone(
      stack,
      uids.length,
      (j: Job) => j.ruleId === 'odd' && uids.includes(j.studyInstanceUid ?? ''),
      120_000,
    );
    const outcome: string[] = [];
    let processed = 0;
    let failedWithReason = 0;
    for (const s of sent) {
      const job = jobs.find((j) => j.studyInstanceUid === s.uid)!;
      if (job.status === 'succeeded') {
        assert.deepEqual(await outputProblems(stack, job), [], s.name);
        // Every anonymised file still parses with dcmtk.
        const unreadable: string[] = [];
        for (const rel of (await walk(job.outputPath!)).files.filter((f) => f.endsWith('.dcm'))) {
          await run('dcmdump', [path.join(job.outputPath!, rel)], { maxBuffer: 64 * 1024 * 1024 }).catch(
            (e: { stderr: string }) => unreadable.push(`${rel}: ${e.stderr.trim().split('\n').slice(0, 3).join(' ')}`),
          );
        }
        assert.deepEqual(unreadable, [], `${s.name}: every output file parses with dcmdump`);
        processed += 1;
        outcome.push(`${s.name}: processed${s.accepted ? '' : ` (Orthanc kept ${job.steps[0].instances} of 3)`}`);
      } else {
        assert.match(
          job.error ?? '',
          /\.dcm|instance [0-9a-f-]{44}/,
          `${s.name}: the reason names the file: ${job.error}`,
        );
        failedWithReason += 1;
        outcome.push(`${s.name}: failed "${job.error}"`);
      }
    }
    const normalJob = jobs.find((j) => j.studyInstanceUid === normal.studyInstanceUID)!;
    assert.equal(normalJob.status, 'succeeded', normalJob.error);
    const accepted = sent.filter((s) => s.accepted).length;
    figure(
      `bad-input/dicom: ${variants.length} odd variants, Orthanc accepted ${accepted}/${variants.length} whole, ${processed} processed correctly, ${failedWithReason} failed with file and reason, the normal job beside them succeeded`,
    );
    for (const line of outcome) console.log(`  ${line}`);
    for (const s of sent.filter((x) => !x.accepted))
      console.log(`  ${s.name}: Orthanc refused the odd file (HTTP ${s.status})`);
  });
});
