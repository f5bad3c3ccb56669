/**
 * The bench rows of studies made of many small files (issue 23): "Download 600 MR", "Stable to
 * published 600 MR" and "12 studies at once", each against the raw limit measured in the same run:
 * one keep-alive `curl` fetching the same `/instances/{id}/file` 8 at a time, a plain client that
 * really reuses Orthanc's connections (Node's own agent reconnected for every file, see
 * shared/orthanc/keepAliveAgent.ts).
 *
 * `bench/run.ts` runs them in the full bench; alone:
 *   node --import tsx bench/small-instances.ts [--quick] [--runs N] [--rows download,stable,many]
 * writes bench/results/small-instances.json and .md (bench/results/ is not tracked).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, promises as fs, watch, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { jobIdFor, newJob, type Job } from '../shared/pipeline/job';
import type { OutputLocks } from '../shared/pipeline/ports';
import { createOutputNaming } from '../shared/pipeline/naming';
import { downloadStep } from '../shared/pipeline/steps/download';
import type { OrthancInstance } from '../shared/orthanc/schemas';
import { startStack, type Stack } from '../test/e2e/stack';
import { generateStudy, type GeneratedStudy } from '../test/support/dicom';
import { freePort, makeTempDir, requireBinary } from '../test/support/process';
import { createFairShare } from '../shared/util/fair-share';
import { load, stat, timed } from './stats';

const run = promisify(execFile);

export interface SmallSizes {
  runs: number;
  /** Series x instances of the MR study of the download and stable rows. */
  mrSeries: number;
  mrPerSeries: number;
  /** Studies x instances of the "at once" row. */
  manyStudies: number;
  manyInstances: number;
}

export const SMALL_SIZES = {
  full: { runs: 5, mrSeries: 2, mrPerSeries: 300, manyStudies: 12, manyInstances: 80 },
  quick: { runs: 3, mrSeries: 2, mrPerSeries: 300, manyStudies: 12, manyInstances: 80 },
} satisfies Record<string, SmallSizes>;

export interface RowsOut {
  rows: string[];
  results: Record<string, unknown>;
}

const seconds = (ms: number) => ms / 1000;
const fmt = (s: number) => s.toFixed(2);

/**
 * The raw limit: one curl process, HTTP keep-alive, `parallel` transfers at once, every file to disk.
 * curl reuses Orthanc's connections whatever its `Keep-Alive: timeout=1` says.
 */
export async function curlFetch(
  stack: Pick<Stack, 'orthanc'>,
  instanceIds: string[],
  dir: string,
  parallel = 8,
): Promise<void> {
  await fs.rm(dir, { recursive: true, force: true });
  await fs.mkdir(dir, { recursive: true });
  const config = path.join(dir, '.curl');
  await fs.writeFile(
    config,
    instanceIds
      .map((id) => `url = "${stack.orthanc.url}/instances/${id}/file"\noutput = "${path.join(dir, `${id}.dcm`)}"\n`)
      .join(''),
  );
  await run(
    'curl',
    [
      '--silent',
      '--show-error',
      '--fail',
      '--user',
      `${stack.orthanc.username}:${stack.orthanc.password}`,
      '--parallel',
      '--parallel-max',
      String(parallel),
      '--config',
      config,
    ],
    { maxBuffer: 16 * 1024 * 1024 },
  );
}

/** Warm-up, then `runs` rounds timing each contender once, in rotating order (see compareRounds in run.ts). */
async function alternate<K extends string>(runs: number, contenders: Record<K, () => Promise<unknown>>) {
  const names = Object.keys(contenders) as K[];
  const out = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round <= runs; round += 1) {
    for (let i = 0; i < names.length; i += 1) {
      const name = names[(i + round) % names.length];
      const s = await timed(contenders[name]);
      if (round > 0) out[name].push(s);
    }
  }
  return out;
}

/** Makes the stored studies read stable without an event of Orthanc's (see settle in run.ts). */
async function settle(stack: Stack, ids: string[]): Promise<void> {
  await stack.orthanc.stop();
  await stack.orthanc.start();
  for (const id of ids)
    if (!(await stack.client.getStudy(id)).IsStable) throw new Error(`study ${id} is unstable after a restart`);
}

const noLocks: OutputLocks = { acquire: async () => ({ acquired: true }), release: async () => undefined };

function mrStudy(description: string, sizes: SmallSizes): Promise<GeneratedStudy> {
  return generateStudy({
    studyDescription: description,
    series: Array.from({ length: sizes.mrSeries }, (_, i) => ({
      seriesNumber: i + 1,
      modality: 'MR' as const,
      instances: sizes.mrPerSeries,
    })),
  });
}

const bytesOf = (instances: OrthancInstance[]) => instances.reduce((n, i) => n + i.FileSize, 0);

/** "Download 600 MR": the download step alone (as the CT row) against curl, on a stack whose studies are stable. */
export async function benchDownloadMr(stack: Stack, sizes: SmallSizes, work: string): Promise<RowsOut> {
  const mr = await mrStudy('bench mr600', sizes);
  await stack.sendStudy(mr);
  const id = await stack.studyId(mr.studyInstanceUID);
  await settle(stack, [id]);
  const instances = await stack.client.listInstances('studies', id);
  const draft = {
    rule: { id: 'bench-mr600', checkOn: 'Study' as const, steps: ['download' as const], destinations: [] },
    level: 'Study' as const,
    resourceId: id,
    lastUpdate: 'x',
    source: 'manual' as const,
    forced: false,
  };
  const job = newJob(draft, jobIdFor(draft));
  const naming = createOutputNaming(undefined);
  const loadBefore = load();
  const times = await alternate(sizes.runs, {
    ours: () =>
      downloadStep({
        orthanc: stack.client,
        outputLocks: noLocks,
        naming,
        storagePath: path.join(work, 'dl-mr'),
        files: createFairShare(8),
      })({ job, log: console, progress: async () => undefined }),
    raw: () =>
      curlFetch(
        stack,
        instances.map((i) => i.ID),
        path.join(work, 'raw-mr'),
      ),
  });
  const d = { ours: stat(times.ours), raw: stat(times.raw), instances: instances.length, bytes: bytesOf(instances) };
  const ratio = d.raw.median / d.ours.median;
  const mb = d.bytes / 1e6;
  return {
    results: { downloadMr: { ...d, ratioToRaw: ratio, load: [loadBefore, load()] } },
    rows: [
      `| Download ${instances.length} MR 256x256 (${mb.toFixed(0)} MB), s | ${fmt(d.ours.median)} (${fmt(d.ours.min)}-${fmt(d.ours.max)}) | curl keep-alive x8 ${fmt(d.raw.median)} (${fmt(d.raw.min)}-${fmt(d.raw.max)}) | ${ratio.toFixed(2)}x raw | >= 0.8x raw |`,
    ],
  };
}

/** Removes every published result and working folder of a rule, so the next job publishes afresh. */
export async function clearRuleOutput(stack: Stack, ruleId: string): Promise<void> {
  await fs.rm(path.join(stack.storageDir, ruleId), { recursive: true, force: true });
}

/** "12 studies at once": forced runs of every study posted together; aggregate download span vs curl of them all. */
export async function benchManyAtOnce(stack: Stack, sizes: SmallSizes, work: string): Promise<RowsOut> {
  const studies: GeneratedStudy[] = [];
  for (let i = 0; i < sizes.manyStudies; i += 1)
    studies.push(
      await generateStudy({
        studyDescription: 'bench many',
        series: [{ seriesNumber: 1, modality: 'MR', instances: sizes.manyInstances }],
      }),
    );
  // Sent together, one association each, as 12 scanners or one busy router would.
  await Promise.all(studies.map((s) => stack.sendStudy(s)));
  const ids = await Promise.all(studies.map((s) => stack.studyId(s.studyInstanceUID)));
  await settle(stack, ids);
  const all = (await Promise.all(ids.map((id) => stack.client.listInstances('studies', id)))).flat();
  await stack.writeRule('bench-many', {
    CheckOn: 'Study',
    Steps: ['download'],
    Tags: [{ TagName: 'StudyDescription', Value: 'bench many' }],
  });
  const spans: number[] = [];
  const raws: number[] = [];
  const worstWaitRatios: number[] = [];
  const waitsOverOwn: number[] = [];
  const rounds: Array<Array<Record<string, number>>> = [];
  const loadBefore = load();
  const seen = new Set<string>();
  const ours = async () => {
    await clearRuleOutput(stack, 'bench-many');
    const posted = Date.now();
    const answers = await Promise.all(ids.map((id) => stack.post(`studies/${id}/run`, { rules: ['bench-many'] })));
    for (const a of answers) if (a.status !== 202) throw new Error(`run answered ${a.status}`);
    const jobs = await stack.waitForJobs(
      ids.length,
      (j) => j.ruleId === 'bench-many' && !seen.has(j.id) && Date.parse(j.createdAt) >= posted - 1000,
      { timeoutMs: 300_000 },
    );
    for (const j of jobs) seen.add(j.id);
    const failed = jobs.filter((j) => j.status !== 'succeeded');
    if (failed.length > 0) throw new Error(`${failed.length} 'bench many' jobs failed: ${failed[0].error}`);
    const downloads = jobs.map((j) => j.steps.find((s) => s.name === 'download')!);
    const start = Math.min(...downloads.map((s) => Date.parse(s.startedAt!)));
    const end = Math.max(...downloads.map((s) => Date.parse(s.endedAt!)));
    // A study's wait: from the moment its run was posted to its download starting; its own download: that step's time.
    const ratios = downloads.map((s) => (Date.parse(s.startedAt!) - posted) / Math.max(1, s.durationMs ?? 0));
    const perStudy = jobs.map((j, i) => ({
      evaluated: seconds(Date.parse(j.createdAt) - posted),
      downloadStarted: seconds(Date.parse(downloads[i].startedAt!) - posted),
      download: seconds(downloads[i].durationMs ?? 0),
    }));
    return {
      span: seconds(end - start),
      worst: Math.max(...ratios),
      over: ratios.filter((r) => r > 1).length,
      perStudy,
    };
  };
  for (let round = 0; round <= sizes.runs; round += 1) {
    const first = round % 2 === 0;
    const rawOnce = () =>
      timed(() =>
        curlFetch(
          stack,
          all.map((i) => i.ID),
          path.join(work, 'raw-many'),
        ),
      );
    const r1 = first ? await rawOnce() : undefined;
    const o = await ours();
    const r2 = first ? undefined : await rawOnce();
    if (round === 0) continue;
    raws.push((r1 ?? r2)!);
    spans.push(o.span);
    worstWaitRatios.push(o.worst);
    waitsOverOwn.push(o.over);
    rounds.push(o.perStudy);
  }
  const m = {
    ours: stat(spans),
    raw: stat(raws),
    studies: ids.length,
    instances: all.length,
    bytes: bytesOf(all),
    worstWaitToOwnDownload: stat(worstWaitRatios),
    studiesWaitingLongerThanOwnDownload: waitsOverOwn,
    rounds,
  };
  const ratio = m.raw.median / m.ours.median;
  return {
    results: { manyAtOnce: { ...m, ratioToRaw: ratio, load: [loadBefore, load()] } },
    rows: [
      `| ${ids.length} studies x ${sizes.manyInstances} MR at once (${all.length} files, ${(m.bytes / 1e6).toFixed(0)} MB): first download start to last download end, s | ${fmt(m.ours.median)} (${fmt(m.ours.min)}-${fmt(m.ours.max)}); longest wait ${m.worstWaitToOwnDownload.median.toFixed(2)}x its own download (max ${m.worstWaitToOwnDownload.max.toFixed(2)}x) | curl keep-alive x8 of all ${fmt(m.raw.median)} | ${ratio.toFixed(2)}x raw | >= 0.8x raw; no wait > own download |`,
    ],
  };
}

/** Records when each Lua post reaches the app (by resource id) and passes it on unchanged. */
async function startEventsRecorder(): Promise<{
  url: string;
  target: { url: string };
  arrivals: Map<string, number>;
  close: () => Promise<void>;
}> {
  const target = { url: '' };
  const arrivals = new Map<string, number>();
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((request, response) => {
    const at = Date.now();
    const chunks: Buffer[] = [];
    request.on('data', (c: Buffer) => chunks.push(c));
    request.on('end', () => {
      const body = Buffer.concat(chunks);
      try {
        const event = JSON.parse(body.toString('utf8')) as { resourceId?: string; changeType?: string };
        if (event.changeType === 'StableStudy' && event.resourceId) arrivals.set(event.resourceId, at);
      } catch {
        // not ours to judge: the function app answers it
      }
      const forward = http.request(
        `${target.url}${request.url}`,
        { method: request.method, headers: request.headers, agent },
        (answer) => {
          response.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(response);
        },
      );
      forward.on('error', () => response.writeHead(502).end());
      forward.end(body);
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    target,
    arrivals,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

const STABLE_AGE_SECONDS = 2;

/**
 * "Stable to published 600 MR": Orthanc's own StableStudy (StableAge 2 s) through the Lua hook to the
 * published folder, a download-only rule, as a user of `npm start` would see it. Each run sends the
 * study again after deleting it (same Orthanc id, a new LastUpdate, so a new job) and its output.
 */
export async function benchStableToPublished(sizes: SmallSizes, work: string): Promise<RowsOut> {
  const recorder = await startEventsRecorder();
  const stack = await startStack({
    stableAgeSeconds: STABLE_AGE_SECONDS,
    orthanc: { eventsUrl: `${recorder.url}/api/orthanc/events` },
    env: { AUTOMATION_DOWNLOAD_CONCURRENCY: '8' },
  });
  recorder.target.url = stack.host.url;
  try {
    const mr = await mrStudy('bench stable', sizes);
    await stack.writeRule('bench-stable', {
      CheckOn: 'Study',
      Steps: ['download'],
      Tags: [{ TagName: 'StudyDescription', Value: 'bench stable' }],
    });
    // The moment of the final rename, as a watcher of the rule folder sees it (the job's finishedAt
    // comes later: the version record, the ledger's finish, the lock's release).
    const ruleDir = path.join(stack.storageDir, 'bench-stable');
    await fs.mkdir(ruleDir, { recursive: true });
    let renamedAt = 0;
    const watcher = watch(ruleDir, (_event, name) => {
      if (name && !String(name).includes('.WORKING') && existsSync(path.join(ruleDir, String(name))))
        renamedAt ||= Date.now();
    });
    const runsOut: Array<Record<string, number>> = [];
    const seen = new Set<string>();
    const loadBefore = load();
    for (let round = 0; round <= sizes.runs; round += 1) {
      renamedAt = 0;
      await stack.sendStudy(mr);
      const sent = Date.now();
      const id = await stack.studyId(mr.studyInstanceUID);
      const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'bench-stable' && !seen.has(j.id), {
        timeoutMs: 120_000,
      });
      seen.add(job.id);
      if (job.status !== 'succeeded') throw new Error(`'bench stable' job ${job.status}: ${job.error}`);
      const eventAt = recorder.arrivals.get(id);
      if (eventAt === undefined || eventAt < sent) throw new Error('the StableStudy post of this run was not seen');
      const instances = await stack.client.listInstances('studies', id);
      const raw = await timed(() =>
        curlFetch(
          stack,
          instances.map((i) => i.ID),
          path.join(work, 'raw-stable'),
        ),
      );
      if (!renamedAt) throw new Error('the watcher saw no published folder');
      if (round > 0) runsOut.push(breakdown(job, { sent, eventAt, raw, renamedAt }));
      await stack.client.raw('DELETE', `/studies/${id}`);
      for (const entry of await fs.readdir(ruleDir)) await fs.rm(path.join(ruleDir, entry), { recursive: true });
    }
    watcher.close();
    const pick = (k: string) => stat(runsOut.map((r) => r[k]));
    const s = {
      runs: runsOut,
      eventToPublished: pick('eventToPublished'),
      raw: pick('raw'),
      overRaw: pick('overRaw'),
      afterStableAge: pick('afterStableAge'),
      stableAgeSeconds: STABLE_AGE_SECONDS,
      instances: sizes.mrSeries * sizes.mrPerSeries,
    };
    const hops = ['evaluate', 'toDownload', 'download', 'toPublish', 'publish', 'afterRename']
      .map((k) => `${k} ${(pick(k).median * 1000).toFixed(0)}`)
      .join(', ');
    return {
      results: { stableToPublished: { ...s, load: [loadBefore, load()] } },
      rows: [
        `| Stable to published ${s.instances} MR (StableAge ${STABLE_AGE_SECONDS} s, download rule), s | event reaching the app to published ${fmt(s.eventToPublished.median)} (${fmt(s.eventToPublished.min)}-${fmt(s.eventToPublished.max)}), raw + ${fmt(s.overRaw.median)}; last instance stored to published, minus StableAge, ${fmt(s.afterStableAge.median)} (${fmt(s.afterStableAge.min)}-${fmt(s.afterStableAge.max)}); hops (ms, median) ${hops} | curl keep-alive x8 of the study ${fmt(s.raw.median)} | | <= raw + 0.25 s; median <= 1.2 s after StableAge |`,
      ],
    };
  } finally {
    await stack.stop();
    await recorder.close();
  }
}

/** One run's hops, in seconds, from the job record and the times the bench saw. */
function breakdown(
  job: Job,
  at: { sent: number; eventAt: number; raw: number; renamedAt: number },
): Record<string, number> {
  const step = (name: string) => job.steps.find((s) => s.name === name);
  const download = step('download')!;
  const publish = step('publish');
  const published = at.renamedAt;
  const created = Date.parse(job.createdAt);
  const eventToPublished = seconds(published - at.eventAt);
  return {
    eventToPublished,
    raw: at.raw,
    overRaw: eventToPublished - at.raw,
    afterStableAge: seconds(published - at.sent) - STABLE_AGE_SECONDS,
    evaluate: seconds(created - at.eventAt),
    toDownload: seconds(Date.parse(download.startedAt!) - created),
    download: seconds(download.durationMs ?? 0),
    toPublish: publish ? seconds(Date.parse(publish.startedAt!) - Date.parse(download.endedAt!)) : 0,
    /** Publish step's start to the rename. */
    publish: publish ? seconds(published - Date.parse(publish.startedAt!)) : 0,
    /** The rename to the job's recorded end. */
    afterRename: seconds(Date.parse(job.finishedAt!) - published),
  };
}

async function main(): Promise<void> {
  requireBinary('curl', 'curl');
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      rows: { type: 'string', default: 'download,many,stable' },
      // host.json's extensions.queues.batchSize for this run (an app setting override, as the host takes it).
      'queue-batch': { type: 'string' },
    },
  });
  const sizes: SmallSizes = { ...(values.quick ? SMALL_SIZES.quick : SMALL_SIZES.full) };
  if (values.runs) sizes.runs = Number(values.runs);
  const wanted = new Set(values.rows.split(','));
  const work = makeTempDir('bench-small-');
  const out: RowsOut = { rows: [], results: { at: new Date().toISOString(), sizes, cpus: os.cpus().length } };
  const add = (r: RowsOut) => {
    out.rows.push(...r.rows);
    Object.assign(out.results, r.results);
    console.log(r.rows.join('\n'));
  };
  if (wanted.has('download') || wanted.has('many')) {
    const batch = values['queue-batch'];
    const stack = await startStack({
      stableAgeSeconds: 3600,
      env: {
        AUTOMATION_DOWNLOAD_CONCURRENCY: '8',
        ...(batch
          ? {
              AzureFunctionsJobHost__extensions__queues__batchSize: batch,
              AzureFunctionsJobHost__extensions__queues__newBatchThreshold: String(Math.floor(Number(batch) / 2)),
            }
          : {}),
      },
    });
    try {
      if (wanted.has('download')) add(await benchDownloadMr(stack, sizes, work));
      if (wanted.has('many')) add(await benchManyAtOnce(stack, sizes, work));
    } finally {
      await stack.stop();
    }
  }
  if (wanted.has('stable')) add(await benchStableToPublished(sizes, work));
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'small-instances.json'), `${JSON.stringify(out.results, null, 2)}\n`);
  writeFileSync(
    path.join(dir, 'small-instances.md'),
    `| comparison | ours | reference (same run) | ratio | target |\n|---|---|---|---|---|\n${out.rows.join('\n')}\n\n${String(out.results.at)}; load (1-min average per CPU) in the JSON\n`,
  );
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
