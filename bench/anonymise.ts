/**
 * Anonymise benchmark: our anonymise step (read, de-identify, rewrite every file of a downloaded
 * study, bounded concurrency) against Orthanc's own POST /studies/{id}/anonymize on the same study in
 * the same run. Reports instances per second (median and spread over the runs, after a warm-up) and
 * the ratio. Usage: npm run bench:anonymise [-- --instances 120 --runs 5 --modality CT]
 */
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
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

    const orthancRates: number[] = [];
    for (let i = 0; i <= runs; i += 1) {
      const started = process.hrtime.bigint();
      const { data } = await client.raw<{ ID: string }>('POST', `/studies/${studyId}/anonymize`, {
        data: {},
        headers: { 'Content-Type': 'application/json' },
      });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      await client.raw('DELETE', `/studies/${data.ID}`);
      if (i > 0) orthancRates.push(instances / seconds); // run 0 is the warm-up
    }

    const ours: number[] = [];
    const anonymiser = createAnonymiser({ secret: 'bench-secret', settings: anonymiseSettingsSchema.parse({}) });
    for (let i = 0; i <= runs; i += 1) {
      const dir = makeTempDir('bench-anon-');
      cpSync(study.dir, dir, { recursive: true });
      const started = process.hrtime.bigint();
      const result = await anonymiseFolder(dir, anonymiser, { concurrency: Number(values.concurrency) });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (result.instances !== instances) throw new Error(`anonymised ${result.instances} of ${instances}`);
      if (i > 0) ours.push(instances / seconds);
    }

    const report = {
      benchmark: 'anonymise',
      study: { modality, instances, size: modality === 'CT' ? '512x512x16' : '256x256x16' },
      runs,
      ours: { instancesPerSecond: median(ours), ...spread(ours) },
      orthancAnonymize: { instancesPerSecond: median(orthancRates), ...spread(orthancRates) },
      ratio: median(ours) / median(orthancRates),
      machine: { cpus: (await import('node:os')).cpus().length, node: process.version },
      at: new Date().toISOString(),
    };
    mkdirSync(path.join(__dirname, 'results'), { recursive: true });
    writeFileSync(path.join(__dirname, 'results', 'anonymise.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log('| comparison | ours (instances/s) | reference (instances/s) | ratio |');
    console.log('|---|---|---|---|');
    console.log(
      `| anonymise ${instances} ${modality} | ${report.ours.instancesPerSecond.toFixed(0)} (${report.ours.min.toFixed(0)}-${report.ours.max.toFixed(0)}) | Orthanc /anonymize ${report.orthancAnonymize.instancesPerSecond.toFixed(0)} (${report.orthancAnonymize.min.toFixed(0)}-${report.orthancAnonymize.max.toFixed(0)}) | ${report.ratio.toFixed(2)}x |`,
    );
  } finally {
    await orthanc.stop();
  }
}

main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
