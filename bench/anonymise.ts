/**
 * Anonymise benchmark: our anonymise step (read, de-identify, rewrite every file of a downloaded
 * study, bounded concurrency) against Orthanc's own POST /studies/{id}/anonymize on the same study in
 * the same run. Reports instances per second (median and spread over the runs, after a warm-up) and
 * the ratio. Usage: npm run bench:anonymise [-- --instances 120 --runs 5 --modality CT]
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createAnonymiser } from '../shared/dicom/anonymiser';
import { anonymiseFolder } from '../shared/dicom/folder';
import { anonymiseSettingsSchema } from '../shared/dicom/options';
import { createOrthancClient } from '../shared/orthanc/client';
import { storescu } from '../test/support/dcmtk';
import { generateStudy } from '../test/support/dicom';
import { startOrthanc } from '../test/support/orthanc';
import { makeTempDir } from '../test/support/process';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '100' },
    runs: { type: 'string', default: '5' },
    modality: { type: 'string', default: 'MR' },
    concurrency: { type: 'string', default: '4' },
  },
});
const instances = Number(values.instances);
const runs = Number(values.runs);
const modality = values.modality === 'CT' ? 'CT' : 'MR';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs: number[]) => ({ min: Math.min(...xs), max: Math.max(...xs) });

async function main(): Promise<void> {
  const orthanc = await startOrthanc({ stableAgeSeconds: 60 });
  try {
    const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    const study = await generateStudy({
      privateTags: true,
      nestedSequences: true,
      series: [{ seriesNumber: 1, modality, instances }],
    });
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
    const studyId = (await client.lookup(study.studyInstanceUID))[0].ID;

    // Rounds alternate which side goes first, so drift on a shared machine (other work, Orthanc
    // settling) falls on both alike; round 0 is the warm-up (it also starts the worker threads).
    const orthancRates: number[] = [];
    const ours: number[] = [];
    const anonymiser = createAnonymiser({ secret: 'bench-secret', settings: anonymiseSettingsSchema.parse({}) });
    const orthancRun = async (round: number) => {
      const started = process.hrtime.bigint();
      const { data } = await client.raw<{ ID: string }>('POST', `/studies/${studyId}/anonymize`, {
        data: {},
        headers: { 'Content-Type': 'application/json' },
      });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await client.raw('DELETE', `/studies/${data.ID}`);
      if (round > 0) orthancRates.push(instances / seconds);
    };
    const ourRun = async (round: number) => {
      const dir = makeTempDir('bench-anon-');
      cpSync(study.dir, dir, { recursive: true });
      const started = process.hrtime.bigint();
      const result = await anonymiseFolder(dir, anonymiser, { concurrency: Number(values.concurrency) });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (result.instances !== instances) throw new Error(`anonymised ${result.instances} of ${instances}`);
      if (round > 0) ours.push(instances / seconds);
    };
    const load = [os.loadavg()[0]];
    for (let round = 0; round <= runs; round += 1) {
      for (const side of round % 2 === 0 ? [orthancRun, ourRun] : [ourRun, orthancRun]) await side(round);
      load.push(os.loadavg()[0]);
    }

    const report = {
      benchmark: 'anonymise',
      study: { modality, instances, size: modality === 'CT' ? '512x512x16' : '256x256x16' },
      runs,
      ours: { instancesPerSecond: median(ours), ...spread(ours) },
      orthancAnonymize: { instancesPerSecond: median(orthancRates), ...spread(orthancRates) },
      ratio: median(ours) / median(orthancRates),
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadAverage1m: { min: Math.min(...load), max: Math.max(...load) },
      },
      at: new Date().toISOString(),
    };
    mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    writeFileSync(path.join(__dirname, 'results', 'anonymise.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log('| comparison | ours (instances/s) | reference (instances/s) | ratio |');
    console.log('|---|---|---|---|');
    console.log(
      `| anonymise ${instances} ${modality} | ${report.ours.instancesPerSecond.toFixed(0)} (${report.ours.min.toFixed(0)}-${report.ours.max.toFixed(0)}) | Orthanc /anonymize ${report.orthancAnonymize.instancesPerSecond.toFixed(0)} (${report.orthancAnonymize.min.toFixed(0)}-${report.orthancAnonymize.max.toFixed(0)}) | ${report.ratio.toFixed(2)}x |`,
    );
    console.log(
      `load average (1 min) during the runs: ${Math.min(...load).toFixed(1)}-${Math.max(...load).toFixed(1)} on ${os.cpus().length} cores`,
    );
  } finally {
    await orthanc.stop();
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
