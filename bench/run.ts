/**
 * npm run bench [-- --quick] [-- --runs 5]
 *
 * Every performance claim as a ratio against a reference a user could pick instead, measured in the
 * same run on the same machine (absolute times on shared machines are noise). Generates its own data,
 * starts the stack as the tests do (Orthanc, Azurite, the function app under the devhost), runs each
 * comparison after a warm-up, and writes bench/results/latest.json and latest.md.
 */
import { execFile } from 'node:child_process';
import { createWriteStream, cpSync, mkdirSync, promises as fs, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { zipFolder } from '../shared/archive/zip';
import { createAnonymiser } from '../shared/dicom/anonymiser';
import { anonymiseFolder } from '../shared/dicom/folder';
import { anonymiseSettingsSchema } from '../shared/dicom/options';
import { jobIdFor, newJob } from '../shared/pipeline/job';
import type { OutputLocks } from '../shared/pipeline/ports';
import { QUEUES } from '../shared/pipeline/messages';
import { createOutputNaming } from '../shared/pipeline/naming';
import { downloadStep } from '../shared/pipeline/steps/download';
import { forwardOnce } from '../shared/pipeline/steps/forward';
import { createStowClient } from '../shared/dicomweb/stow';
import { filesUnder } from '../shared/util/files';
import { startStack, type Stack } from '../test/e2e/stack';
import { generateStudy, type GeneratedStudy } from '../test/support/dicom';
import { startOrthanc } from '../test/support/orthanc';
import { makeTempDir, requireBinary, waitFor } from '../test/support/process';
import { benchDownloadMr, benchManyAtOnce, benchStableToPublished, curlFetch, SMALL_SIZES } from './small-instances';
import { createFairShare } from '../shared/util/fair-share';
import { load, stat, timed, type Stat } from './stats';

const run = promisify(execFile);
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, runs: { type: 'string' } } });
const quick = values.quick;
const SIZES = quick
  ? { runs: 3, mrSeries: 2, mrPerSeries: 20, ctInstances: 120, latencyStudies: 20, sweepStudies: 300 }
  : { runs: 5, mrSeries: 4, mrPerSeries: 30, ctInstances: 500, latencyStudies: 30, sweepStudies: 2000 };
if (values.runs) SIZES.runs = Number(values.runs);

const percentile = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)];

/** What a comparison times; `prepare`, where given, runs untimed before each timed run. */
type Contender = (() => Promise<unknown>) | { prepare: () => Promise<unknown> | void; run: () => Promise<unknown> };

/**
 * Warm-up each once, then `runs` rounds that time every contender once, the order rotating per
 * round: drift on a shared machine (other work, Orthanc still settling after the upload) then
 * falls on all of them alike instead of on whichever ran first.
 */
async function compareRounds<K extends string>(
  runs: number,
  contenders: Record<K, Contender>,
): Promise<Record<K, number[]>> {
  const names = Object.keys(contenders) as K[];
  const seconds = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<K, number[]>;
  for (let round = 0; round <= runs; round += 1) {
    for (let i = 0; i < names.length; i += 1) {
      const name = names[(i + round) % names.length];
      const contender = contenders[name];
      if (typeof contender !== 'function') await contender.prepare();
      const s = await timed(typeof contender === 'function' ? contender : contender.run);
      if (round > 0) seconds[name].push(s);
    }
  }
  return seconds;
}

async function rssKb(pid: number): Promise<number> {
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

/** Samples a process's resident memory every 100 ms while `work` runs; returns the peak in MB. */
async function peakRss(pid: number, work: () => Promise<unknown>): Promise<number> {
  let peak = await rssKb(pid);
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rssKb(pid));
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  })();
  try {
    await work();
  } finally {
    sampling = false;
    await sampler;
  }
  return peak / 1024;
}

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const file of await filesUnder(dir)) total += (await fs.stat(file)).size;
  return total;
}

/**
 * Makes every stored study read stable without Orthanc sending a stable event of its own. The bench
 * runs with a StableAge of an hour, so that no event of Orthanc's races the ones it posts. Evaluation
 * ignores studies still receiving instances. Orthanc keeps that set in memory only, and a restart
 * clears it without logging StableStudy (as Orthanc 1.10 does); the latency loop checks that no job
 * came first. `ids` are checked.
 */
async function settle(stack: Stack, ids: string[]): Promise<void> {
  await stack.orthanc.stop();
  await stack.orthanc.start();
  for (const id of ids) {
    if (!(await stack.client.getStudy(id)).IsStable)
      throw new Error(`study ${id} is still unstable after an Orthanc restart`);
  }
}

/** The download is measured alone: no other job ever holds its output. */
const noLocks: OutputLocks = { acquire: async () => ({ acquired: true }), release: async () => undefined };

async function main(): Promise<void> {
  requireBinary('zip', 'zip');
  requireBinary('curl', 'curl');
  const results: Record<string, unknown> = {
    quick,
    sizes: SIZES,
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
      node: process.version,
      // How busy the machine was (1-minute load average over its CPUs), at the start and at the end.
      loadPerCpu: [load()],
    },
    at: new Date().toISOString(),
  };
  const rows: string[] = [];
  const stack: Stack = await startStack({ stableAgeSeconds: 3600, env: { AUTOMATION_DOWNLOAD_CONCURRENCY: '8' } });
  try {
    console.log('bench: generating data');
    const mr = await generateStudy({
      studyDescription: 'bench mr',
      series: Array.from({ length: SIZES.mrSeries }, (_, i) => ({
        seriesNumber: i + 1,
        modality: 'MR' as const,
        instances: SIZES.mrPerSeries,
      })),
    });
    const ct = await generateStudy({
      patientID: 'BENCH-CT',
      studyID: '1',
      studyDescription: 'bench ct',
      series: [{ seriesNumber: 1, modality: 'CT', instances: SIZES.ctInstances }],
    });
    const small: GeneratedStudy[] = [];
    for (let i = 0; i < SIZES.latencyStudies; i += 1)
      small.push(
        await generateStudy({
          studyDescription: 'bench latency',
          series: [{ seriesNumber: 1, modality: 'MR', instances: 2 }],
        }),
      );
    await stack.sendStudy(mr);
    await stack.sendStudy(ct);
    for (const s of small) await stack.sendStudy(s);
    const mrId = await stack.studyId(mr.studyInstanceUID);
    const ctId = await stack.studyId(ct.studyInstanceUID);
    await settle(stack, [mrId, ctId, await stack.studyId(small[small.length - 1].studyInstanceUID)]);
    const ctBytes = ct.series[0].files.reduce((n, f) => n + f.size, 0);
    const work = makeTempDir('bench-');

    // 1. Download: our step vs Orthanc's archive vs the raw limit (parallel /file fetches).
    console.log('bench: download');
    const naming = createOutputNaming(undefined);
    const draft = {
      rule: { id: 'bench', checkOn: 'Study' as const, steps: ['download' as const], destinations: [] },
      level: 'Study' as const,
      resourceId: ctId,
      lastUpdate: 'x',
      source: 'manual' as const,
      forced: false,
    };
    const job = newJob(draft, jobIdFor(draft));
    const auth = `Basic ${Buffer.from(`${stack.orthanc.username}:${stack.orthanc.password}`).toString('base64')}`;
    const instances = await stack.client.listInstances('studies', ctId);
    // The raw limit: one keep-alive curl, 8 transfers at once (bench/small-instances.ts). Until
    // 2026-12-02 it was node:http, whose agent opened a new connection for every file (Orthanc's
    // `Keep-Alive: timeout=1` is below its margin): a slower "limit" than a plain client reaches.
    const downloads = await compareRounds(SIZES.runs, {
      ours: () =>
        downloadStep({
          orthanc: stack.client,
          outputLocks: noLocks,
          naming,
          storagePath: path.join(work, 'dl'),
          files: createFairShare(8),
        })({ job, log: console, progress: async () => undefined }),
      archive: async () => {
        const response = await fetch(`${stack.orthanc.url}/studies/${ctId}/archive`, {
          headers: { Authorization: auth },
        });
        await pipeline(Readable.fromWeb(response.body as never), createWriteStream(path.join(work, 'archive.zip')));
      },
      raw: () =>
        curlFetch(
          stack,
          instances.map((i) => i.ID),
          path.join(work, 'raw'),
        ),
    });
    const [oursDownload, archive, raw] = [downloads.ours, downloads.archive, downloads.raw];
    const mbps = (s: Stat) => ctBytes / 1e6 / s.median;
    const d = {
      ours: stat(oursDownload),
      orthancArchive: stat(archive),
      rawParallel: stat(raw),
      megabytes: ctBytes / 1e6,
    };
    results.download = {
      ...d,
      ratioToRaw: d.rawParallel.median / d.ours.median,
      ratioToArchive: d.orthancArchive.median / d.ours.median,
    };
    rows.push(
      `| Download ${SIZES.ctInstances} CT 512x512 (${(ctBytes / 1e6).toFixed(0)} MB), MB/s | ${mbps(d.ours).toFixed(0)} | raw (curl keep-alive x8 /file) ${mbps(d.rawParallel).toFixed(0)}; Orthanc /archive ${mbps(d.orthancArchive).toFixed(0)} | ${(d.rawParallel.median / d.ours.median).toFixed(2)}x raw, ${(d.orthancArchive.median / d.ours.median).toFixed(2)}x archive | >= 0.95x raw, > 1x archive |`,
    );

    // 1b. Many small files (bench/small-instances.ts): the download step against curl on 600 MR.
    const smallSizes = { ...(quick ? SMALL_SIZES.quick : SMALL_SIZES.full), runs: SIZES.runs };
    const addRows = (out: { rows: string[]; results: Record<string, unknown> }) => {
      rows.push(...out.rows);
      Object.assign(results, out.results);
    };
    console.log('bench: download 600 MR');
    addRows(await benchDownloadMr(stack, smallSizes, work));

    // 2. Anonymise: our step vs Orthanc /anonymize, instances per second, on the MR and the CT study.
    console.log('bench: anonymise');
    const anonymiser = createAnonymiser({ secret: 'bench', settings: anonymiseSettingsSchema.parse({}) });
    const anonymiseRow = async (study: GeneratedStudy, studyId: string, count: number, label: string) => {
      let anonDir = '';
      const anonymisations = await compareRounds(SIZES.runs, {
        ours: {
          prepare: () => {
            anonDir = makeTempDir('bench-anon-');
            cpSync(study.dir, anonDir, { recursive: true });
          },
          run: () => anonymiseFolder(anonDir, anonymiser, { concurrency: 4 }),
        },
        orthanc: async () => {
          const { data } = await stack.client.raw<{ ID: string }>('POST', `/studies/${studyId}/anonymize`, {
            data: {},
            headers: { 'Content-Type': 'application/json' },
            timeout: 600_000,
          });
          await stack.client.raw('DELETE', `/studies/${data.ID}`);
        },
      });
      const a = { ours: stat(anonymisations.ours), orthanc: stat(anonymisations.orthanc), instances: count };
      rows.push(
        `| Anonymise ${count} ${label}, instances/s | ${(count / a.ours.median).toFixed(0)} | Orthanc /anonymize ${(count / a.orthanc.median).toFixed(0)} (includes its storing) | ${(a.orthanc.median / a.ours.median).toFixed(2)}x | >= 1.5x |`,
      );
      return { ...a, ratio: a.orthanc.median / a.ours.median };
    };
    results.anonymise = await anonymiseRow(mr, mrId, SIZES.mrSeries * SIZES.mrPerSeries, 'MR 256x256');
    results.anonymiseCt = await anonymiseRow(ct, ctId, SIZES.ctInstances, 'CT 512x512');

    // 3. Zip: our step vs Info-ZIP at the same level, on the downloaded CT folder.
    console.log('bench: zip');
    const source = path.join(work, 'dl', 'bench', (await fs.readdir(path.join(work, 'dl', 'bench')))[0]);
    const zipBytes = await folderBytes(source);
    const zips = await compareRounds(SIZES.runs, {
      ours: {
        prepare: () => fs.rm(path.join(work, 'ours.zip'), { force: true }),
        run: () => zipFolder(source, path.join(work, 'ours.zip'), { level: 1, name: 'study' }),
      },
      infoZip: {
        prepare: () => fs.rm(path.join(work, 'infozip.zip'), { force: true }),
        run: () => run('zip', ['-r', '-1', '-q', path.join(work, 'infozip.zip'), '.'], { cwd: source }),
      },
    });
    const z = { ours: stat(zips.ours), infoZip: stat(zips.infoZip), megabytes: zipBytes / 1e6 };
    results.zip = { ...z, ratio: z.infoZip.median / z.ours.median };
    rows.push(
      `| Zip ${(zipBytes / 1e6).toFixed(0)} MB at level 1, MB/s | ${(zipBytes / 1e6 / z.ours.median).toFixed(0)} | Info-ZIP zip -r -1 ${(zipBytes / 1e6 / z.infoZip.median).toFixed(0)} | ${(z.infoZip.median / z.ours.median).toFixed(2)}x | >= 1.2x |`,
    );

    // 4. Latency: event accepted by orthancEvents to job published, small studies, one at a time.
    console.log('bench: latency');
    await stack.writeRule('bench-latency', {
      CheckOn: 'Study',
      Steps: ['download'],
      Tags: [{ TagName: 'StudyDescription', Value: 'bench latency' }],
    });
    const latencies: number[] = [];
    const overheads: number[] = [];
    for (const s of small) {
      const id = await stack.studyId(s.studyInstanceUID);
      if ((await stack.jobs((j) => j.resourceId === id)).length > 0)
        throw new Error(`study ${id} has a job before its event was posted`);
      const t0 = Date.now();
      const answer = await stack.post('orthanc/events', { changeType: 'StableStudy', resourceId: id });
      if (answer.status !== 202) throw new Error(`orthancEvents answered ${answer.status}`);
      const [done] = await stack.waitForJobs(1, (j) => j.resourceId === id && j.ruleId === 'bench-latency', {
        timeoutMs: 30_000,
      });
      const total = Date.parse(done.finishedAt!) - t0;
      const stepsMs = done.steps.reduce((n, st) => n + (st.durationMs ?? 0), 0);
      latencies.push(total);
      overheads.push(total - stepsMs);
    }
    results.latency = {
      studies: latencies.length,
      p50Ms: percentile(latencies, 50),
      p95Ms: percentile(latencies, 95),
      overheadP50Ms: percentile(overheads, 50),
      overheadP95Ms: percentile(overheads, 95),
    };
    rows.push(
      `| Latency, event to published (${latencies.length} small studies), ms | p50 ${percentile(latencies, 50)}, p95 ${percentile(latencies, 95)}; outside the steps p50 ${percentile(overheads, 50)}, p95 ${percentile(overheads, 95)} | (steps' own work) | | overhead p95 < 1000 ms |`,
    );

    // 4b. 12 studies at once through the app, against curl of all their files; its rule goes before the sweep.
    console.log('bench: 12 studies at once');
    addRows(await benchManyAtOnce(stack, smallSizes, work));
    await stack.removeRule('bench-many');

    // 5. Peak memory of the function host: the large CT study through download, anonymise, zip.
    console.log('bench: memory');
    await stack.writeRule('bench-large', {
      CheckOn: 'Study',
      Steps: ['download', 'anonymise', 'zip'],
      Tags: [{ TagName: 'StudyDescription', Value: 'bench ct' }],
    });
    const pid = stack.host.pid()!;
    const rssBefore = (await rssKb(pid)) / 1024;
    const peak = await peakRss(pid, async () => {
      await stack.post('orthanc/events', { changeType: 'StableStudy', resourceId: ctId });
      const [done] = await stack.waitForJobs(1, (j) => j.ruleId === 'bench-large', { timeoutMs: 600_000 });
      if (done.status !== 'succeeded') throw new Error(`large job ${done.status}: ${done.error}`);
    });
    results.memory = { studyMegabytes: ctBytes / 1e6, hostRssBeforeMb: rssBefore, hostPeakRssMb: peak };
    rows.push(
      `| Peak RSS of the function host, ${(ctBytes / 1e6).toFixed(0)} MB study through download, anonymise, zip | ${peak.toFixed(0)} MB (idle ${rssBefore.toFixed(0)} MB) | | | < 300 MB |`,
    );

    // 6. Sweep over many small studies: wall time until every evaluation ran, and peak memory.
    console.log(`bench: sweep over ${SIZES.sweepStudies} studies (storing them first)`);
    const sweepFiles: string[] = [];
    let lastSweepStudy = '';
    for (let i = 0; i < SIZES.sweepStudies; i += 1) {
      const s = await generateStudy({
        studyDescription: 'bench sweep',
        series: [{ seriesNumber: 1, modality: 'MR', instances: 1, rows: 32, columns: 32 }],
      });
      sweepFiles.push(...s.files);
      lastSweepStudy = s.studyInstanceUID;
    }
    await stack.sendStudy(mr, sweepFiles);
    await settle(stack, [await stack.studyId(lastSweepStudy)]);
    await fs.writeFile(
      path.join(stack.rulesDir, 'master.json'),
      JSON.stringify({ DailyCheckHour: new Date().getHours(), DailySweepEnabled: true }),
    );
    const totalStudies = (await stack.client.listStudies({ since: 0, limit: 100_000 })).length;
    let sweepSeconds = 0;
    const sweepPeak = await peakRss(pid, async () => {
      sweepSeconds =
        (await timed(async () => {
          const invoked = await fetch(`${stack.host.url}/admin/functions/dailySweep`, {
            method: 'POST',
            headers: { 'x-functions-key': stack.masterKey, 'Content-Type': 'application/json' },
            body: '{"input":""}',
          });
          if (invoked.status !== 202) throw new Error(`sweep invocation answered ${invoked.status}`);
          // Done when the sweep has queued everything and the evaluate queue has stayed empty for a while.
          let emptySince = 0;
          await waitFor(
            async () => {
              const depth = (await stack.queues.depth(QUEUES.evaluate)) ?? 0;
              if (depth > 0) emptySince = 0;
              else emptySince ||= Date.now();
              return (
                emptySince > 0 &&
                Date.now() - emptySince > 3000 &&
                stack.host.logs().includes(`Sweep: ${totalStudies} studies enqueued`)
              );
            },
            { timeoutMs: 900_000, intervalMs: 250, description: 'the sweep to finish' },
          );
        })) - 3;
    });
    results.sweep = {
      studies: totalStudies,
      seconds: sweepSeconds,
      studiesPerSecond: totalStudies / sweepSeconds,
      hostPeakRssMb: sweepPeak,
    };
    rows.push(
      `| Sweep over ${totalStudies} studies | ${sweepSeconds.toFixed(1)} s (${(totalStudies / sweepSeconds).toFixed(0)} studies/s), peak RSS ${sweepPeak.toFixed(0)} MB | | | |`,
    );

    // 6. Forward the CT study to a second Orthanc (with the DICOMweb plugin): our forward step by
    // STOW-RS vs Orthanc's own C-STORE (/modalities/{name}/store, synchronous) to the same peer.
    console.log('bench: forward');
    const peer = await startOrthanc({ dicomWeb: true, aet: 'BENCHPEER' });
    try {
      await stack.client.putModality('BENCHPEER', { AET: peer.aet, Host: '127.0.0.1', Port: peer.dicomPort });
      const stow = createStowClient({ url: `${peer.url}/dicom-web`, username: peer.username, password: peer.password });
      const forwardDraft = {
        rule: { id: 'bench-forward', checkOn: 'Study' as const, steps: ['forward' as const], destinations: ['WEB'] },
        level: 'Study' as const,
        resourceId: ctId,
        lastUpdate: 'x',
        source: 'manual' as const,
        forced: false,
      };
      const peerAuth = `Basic ${Buffer.from(`${peer.username}:${peer.password}`).toString('base64')}`;
      // Each run stores into an empty peer: an instance already there is cheaper to accept.
      const emptyPeer = async () => {
        const listed = await fetch(`${peer.url}/studies`, { headers: { Authorization: peerAuth } });
        for (const id of (await listed.json()) as string[])
          await fetch(`${peer.url}/studies/${id}`, { method: 'DELETE', headers: { Authorization: peerAuth } });
      };
      const forwards = await compareRounds(SIZES.runs, {
        ours: {
          prepare: emptyPeer,
          run: async () => {
            const transfer = {};
            const deps = { orthanc: stack.client, modalities: async () => ({}), dicomweb: { WEB: stow } };
            const outcome = await forwardOnce(
              { ...deps, concurrency: 4, pollSeconds: 1, maxAttempts: 1, stuckAfterMs: 60_000 },
              newJob(forwardDraft, jobIdFor(forwardDraft)),
              'WEB',
              transfer,
            );
            if (!('sent' in outcome)) throw new Error(`STOW-RS forward did not finish: ${JSON.stringify(transfer)}`);
          },
        },
        cStore: {
          prepare: emptyPeer,
          run: () =>
            stack.client.raw('POST', '/modalities/BENCHPEER/store', {
              data: { Resources: [ctId], Synchronous: true },
              headers: { 'Content-Type': 'application/json' },
              timeout: 600_000,
            }),
        },
      });
      const arrived = (await (
        await fetch(`${peer.url}/statistics`, { headers: { Authorization: peerAuth } })
      ).json()) as {
        CountInstances: number;
      };
      if (arrived.CountInstances !== SIZES.ctInstances)
        throw new Error(
          `the peer holds ${arrived.CountInstances} instances after the last run, not ${SIZES.ctInstances}`,
        );
      const f = { stow: stat(forwards.ours), cStore: stat(forwards.cStore), megabytes: ctBytes / 1e6 };
      results.forward = { ...f, ratio: f.cStore.median / f.stow.median };
      rows.push(
        `| Forward ${SIZES.ctInstances} CT (${(ctBytes / 1e6).toFixed(0)} MB) to a second Orthanc, MB/s | STOW-RS ${(ctBytes / 1e6 / f.stow.median).toFixed(0)} | Orthanc C-STORE ${(ctBytes / 1e6 / f.cStore.median).toFixed(0)} | ${(f.cStore.median / f.stow.median).toFixed(2)}x | >= 1x |`,
      );
    } finally {
      await peer.stop();
    }
  } finally {
    await stack.stop();
  }
  // 7. Orthanc's own StableStudy to the published folder: a stack of its own, with a StableAge of 2 s.
  console.log('bench: stable to published 600 MR');
  const stableOut = await benchStableToPublished(
    { ...(quick ? SMALL_SIZES.quick : SMALL_SIZES.full), runs: SIZES.runs },
    makeTempDir('bench-stable-'),
  );
  rows.push(...stableOut.rows);
  Object.assign(results, stableOut.results);
  (results.machine as { loadPerCpu: number[] }).loadPerCpu.push(load());
  const table = [
    '| comparison | ours | reference (same run) | ratio (ours faster when > 1) | target |',
    '|---|---|---|---|---|',
    ...rows,
  ].join('\n');
  mkdirSync(path.join(__dirname, 'results'), { recursive: true });
  writeFileSync(path.join(__dirname, 'results', 'latest.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(
    path.join(__dirname, 'results', 'latest.md'),
    `${table}\n\nMachine: ${JSON.stringify(results.machine)}; ${quick ? 'quick' : 'full'} sizes ${JSON.stringify(SIZES)}; ${String(results.at)}\n`,
  );
  console.log(table);
}

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(error);
    process.exit(1);
  },
);
