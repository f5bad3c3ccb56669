/**
 * The download step with a fake Orthanc: autorthanc layout under `.WORKING`, FileSize checked,
 * bounded concurrency, a retry starts from an empty working folder, and a busy output waits.
 * (The real thing against Orthanc is test/e2e/pipeline.scenarios.ts.)
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { newJob, type RuleSnapshot, type StepResult } from '../../shared/pipeline/job';
import { createOutputNaming } from '../../shared/pipeline/naming';
import { downloadStep, type DownloadDeps } from '../../shared/pipeline/steps/download';
import { createMemoryStorage } from '../support/memory-storage';
import { createFairShare } from '../../shared/util/fair-share';

const STUDY = 'study-1';
const SERIES = [
  { id: 'series-1', tags: { SeriesNumber: '1', SeriesDate: '20240315', SeriesInstanceUID: '1.2.3.1' } },
  { id: 'series-2', tags: { SeriesNumber: '2', SeriesDate: '20240315', SeriesInstanceUID: '1.2.3.2' } },
];
const INSTANCES = Array.from({ length: 6 }, (_, i) => ({
  ID: `inst-${i}`,
  ParentSeries: SERIES[i % 2].id,
  FileSize: 1000 + i,
  MainDicomTags: { SOPInstanceUID: `1.2.3.${(i % 2) + 1}.${i}` },
}));

function fakeOrthanc(options: { delayMs?: number; shortBy?: Record<string, number> } = {}) {
  let open = 0;
  const state = { maxOpen: 0, files: 0 };
  const orthanc = {
    listInstances: async () => INSTANCES,
    getSeries: async (id: string) => ({
      ID: id,
      ParentStudy: STUDY,
      MainDicomTags: SERIES.find((s) => s.id === id)!.tags,
    }),
    getStudy: async () => ({
      ID: STUDY,
      PatientMainDicomTags: { PatientID: 'P1', PatientName: 'Doe^Jane' },
      MainDicomTags: { StudyID: '42', StudyInstanceUID: '1.2.3' },
    }),
    instanceFile: async (id: string) => {
      const instance = INSTANCES.find((i) => i.ID === id)!;
      open += 1;
      state.files += 1;
      state.maxOpen = Math.max(state.maxOpen, open);
      await new Promise((resolve) => setTimeout(resolve, options.delayMs ?? 0));
      const stream = Readable.from([Buffer.alloc(instance.FileSize - (options.shortBy?.[id] ?? 0), id)]);
      stream.on('close', () => (open -= 1));
      return stream;
    },
  };
  return { orthanc: orthanc as unknown as DownloadDeps['orthanc'], state };
}

const rule: RuleSnapshot = { id: 'brain', checkOn: 'Study', steps: ['download'], destinations: [] };
const job = () =>
  newJob(
    { rule, level: 'Study', resourceId: STUDY, lastUpdate: '20240315T120000', source: 'webhook', forced: false },
    'job-1',
  );
const context = () => ({
  job: job(),
  log: { info: () => undefined, warn: () => undefined, error: () => undefined },
  progress: async () => undefined,
});

describe('download step', () => {
  const roots: string[] = [];
  after(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
  function deps(orthanc: DownloadDeps['orthanc'], over: Partial<DownloadDeps> = {}): DownloadDeps {
    const storagePath = mkdtempSync(path.join(os.tmpdir(), 'download-'));
    roots.push(storagePath);
    return {
      orthanc,
      outputLocks: createMemoryStorage().outputLocks,
      naming: createOutputNaming(undefined),
      storagePath,
      files: createFairShare(2),
      ...over,
    };
  }
  const working = (d: DownloadDeps) => path.join(d.storagePath, 'brain', 'P1-Doe-EX42.WORKING');

  it('writes every instance in autorthanc layout under .WORKING, with counts, a bounded number at a time', async () => {
    const { orthanc, state } = fakeOrthanc({ delayMs: 20 });
    const d = deps(orthanc);
    const result = (await downloadStep(d)(context())) as StepResult;
    assert.equal(result.instances, 6);
    assert.equal(
      result.bytes,
      INSTANCES.reduce((sum, i) => sum + i.FileSize, 0),
    );
    assert.equal(result.outputPath, path.join(d.storagePath, 'brain', 'P1-Doe-EX42'));
    assert.deepEqual(readdirSync(working(d)).sort(), ['SE1-20240315-1.2.3.1', 'SE2-20240315-1.2.3.2']);
    assert.deepEqual(readdirSync(path.join(working(d), 'SE2-20240315-1.2.3.2')).sort(), [
      '1.2.3.2.1.dcm',
      '1.2.3.2.3.dcm',
      '1.2.3.2.5.dcm',
    ]);
    assert.equal(readFileSync(path.join(working(d), 'SE1-20240315-1.2.3.1', '1.2.3.1.0.dcm')).length, 1000);
    assert.equal(state.maxOpen, 2, 'never more downloads at once than the share has slots');
    assert.equal(existsSync(result.outputPath), false, 'nothing under the final name before publish');
  });

  it("fails an instance whose size differs from Orthanc's FileSize, naming it", async () => {
    const { orthanc } = fakeOrthanc({ shortBy: { 'inst-3': 10 } });
    await assert.rejects(
      downloadStep(deps(orthanc))(context()),
      /instance inst-3: received 993 bytes, Orthanc reports 1003/,
    );
  });

  it('starts a retry from an empty working folder: nothing is left of an earlier attempt', async () => {
    const { orthanc } = fakeOrthanc();
    const d = deps(orthanc);
    const stale = path.join(working(d), 'SE9-19990101-9.9.9');
    mkdirSync(stale, { recursive: true });
    writeFileSync(path.join(stale, 'old.dcm'), 'from an earlier attempt');
    writeFileSync(path.join(working(d), 'partial.tmp'), 'x');
    await downloadStep(d)(context());
    assert.deepEqual(readdirSync(working(d)).sort(), ['SE1-20240315-1.2.3.1', 'SE2-20240315-1.2.3.2']);
  });

  it('waits, writing nothing, while another job holds the same output', async () => {
    const { orthanc, state } = fakeOrthanc();
    const { jobs, outputLocks } = createMemoryStorage();
    const d = deps(orthanc, { outputLocks });
    // job-0, unfinished, holds the output this job's download would write.
    await jobs.create(
      newJob(
        { rule, level: 'Study', resourceId: 'other', lastUpdate: '20240315T120000', source: 'webhook', forced: false },
        'job-0',
      ),
    );
    assert.deepEqual(await outputLocks.acquire(path.join(d.storagePath, 'brain', 'P1-Doe-EX42'), 'job-0'), {
      acquired: true,
    });
    const result = await downloadStep(d)(context());
    assert.ok('wait' in result && result.wait.detail.waitingFor === 'job-0');
    assert.equal(state.files, 0);
    assert.equal(existsSync(working(d)), false);
  });
});
