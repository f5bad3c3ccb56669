/**
 * Private staging and the per-project key: anonymising jobs download into staging (never under the
 * storage root), anonymise from staging into `.WORKING` (resumable after a crash), and clean up when
 * they end; pseudonyms and UIDs derive from HKDF(secret, project); the secret itself is checked.
 * (The whole flow on the real stack is test/e2e/staging.test.ts.)
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { before, describe, it } from 'node:test';
import { createPseudonymiser } from '../../shared/composition/pseudonymiser';
import { ConfigError, loadConfig } from '../../shared/config';
import { createAnonymiser } from '../../shared/dicom/anonymiser';
import {
  anonymiseFolder,
  DEFAULT_MEMORY_BUDGET_BYTES,
  metaSopInstanceUid,
  sharedMemoryBudget,
} from '../../shared/dicom/folder';
import { anonymiseSettingsSchema } from '../../shared/dicom/options';
import { anonymisedUid, patientPseudonym, projectKey } from '../../shared/dicom/pseudonyms';
import { newJob, type Job, type RuleSnapshot, type StepResult } from '../../shared/pipeline/job';
import { createOutputNaming, jobPaths } from '../../shared/pipeline/naming';
import { cleanUpEndedJob, discardStaging, stagingFolder, sweepStaging } from '../../shared/pipeline/staging';
import { retryJob } from '../../shared/operator/jobs';
import { anonymiseStep } from '../../shared/pipeline/steps/anonymise';
import { downloadStep, type DownloadDeps } from '../../shared/pipeline/steps/download';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { createMemoryJobStore, createMemoryStorage } from '../support/memory-storage';
import { makeTempDir } from '../support/process';
import { createFairShare } from '../../shared/util/fair-share';

const SECRET = 'unit-staging-secret-0123456789abcdef0123';
const log = { info: () => undefined, warn: () => undefined, error: () => undefined };

function jobFor(
  ruleId: string,
  anonymise?: Record<string, unknown>,
  steps: RuleSnapshot['steps'] = ['download', 'anonymise'],
): Job {
  // As the rule loader makes it: the settings parsed, defaults filled in.
  const rule: RuleSnapshot = {
    id: ruleId,
    checkOn: 'Study',
    steps,
    destinations: [],
    ...(anonymise ? { anonymise: anonymiseSettingsSchema.parse(anonymise) } : {}),
  };
  const id = Buffer.from(ruleId.padEnd(16, '-').slice(0, 16)).toString('hex');
  return newJob(
    { rule, level: 'Study', resourceId: 'study-1', lastUpdate: '20260101T000000', source: 'webhook', forced: false },
    id,
  );
}

function tree(root: string): string[] {
  return existsSync(root) ? readdirSync(root, { recursive: true }).map(String).sort() : [];
}

describe('per-project key (HKDF)', () => {
  const pseudonymiser = createPseudonymiser({ anonymisationSecret: SECRET, rulesPath: '/nonexistent' })!;

  it('derives a 256-bit key per project, deterministic, never the secret itself', () => {
    const a = projectKey(SECRET, 'brain');
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.equal(projectKey(SECRET, 'brain'), a);
    assert.notEqual(projectKey(SECRET, 'heart'), a);
    assert.notEqual(projectKey(`${SECRET}x`, 'brain'), a);
    assert.ok(!a.includes(Buffer.from(SECRET).toString('hex')));
  });

  it('gives two rules different pseudonyms, UIDs and tokens unless they name the same project', async () => {
    const [r1, r2, s1, s2, named] = [
      jobFor('r1'),
      jobFor('r2'),
      jobFor('s1', { Project: 'trial-7' }),
      jobFor('s2', { Project: 'trial-7' }),
      jobFor('other', { Project: 'r1' }),
    ];
    const uid = '1.2.826.0.1.3680043.2.1125.77';
    assert.notEqual(
      await pseudonymiser.patientPseudonym(r1, 'MRN-1'),
      await pseudonymiser.patientPseudonym(r2, 'MRN-1'),
    );
    assert.notEqual(pseudonymiser.uid(r1, uid), pseudonymiser.uid(r2, uid));
    assert.notEqual(pseudonymiser.token(r1, uid), pseudonymiser.token(r2, uid));
    assert.equal(await pseudonymiser.patientPseudonym(s1, 'MRN-1'), await pseudonymiser.patientPseudonym(s2, 'MRN-1'));
    assert.equal(pseudonymiser.uid(s1, uid), pseudonymiser.uid(s2, uid));
    assert.equal(pseudonymiser.token(s1, uid), pseudonymiser.token(s2, uid));
    // The default project is the rule's id.
    assert.equal(pseudonymiser.uid(named, uid), pseudonymiser.uid(r1, uid));
    assert.equal(pseudonymiser.uid(r1, uid), anonymisedUid(projectKey(SECRET, 'r1'), uid));
    assert.equal(
      await pseudonymiser.patientPseudonym(r1, 'MRN-1'),
      patientPseudonym(projectKey(SECRET, 'r1'), 'MRN-1'),
    );
    assert.notEqual(pseudonymiser.uid(r1, uid), anonymisedUid(SECRET, uid), 'the raw secret is never the key');
  });

  it('refuses an empty or overlong Project in a rule', () => {
    assert.equal(anonymiseSettingsSchema.safeParse({ Project: '  ' }).success, false);
    assert.equal(anonymiseSettingsSchema.safeParse({ Project: 'x'.repeat(129) }).success, false);
    assert.equal(anonymiseSettingsSchema.parse({ Project: ' trial-7 ' }).Project, 'trial-7');
  });
});

describe('AUTOMATION_ANONYMISATION_SECRET and AUTOMATION_STAGING_PATH', () => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      return error.problems;
    }
  };

  for (const [why, value] of [
    ['shorter than 32 bytes', 'e2e-anonymisation-secret'],
    ['a replace-me placeholder', 'replace-me-with-a-long-random-secret-of-64-hex-chars'],
    ['a change-me placeholder', 'change-me-to-a-long-random-secret'],
    ['an angle-bracket placeholder', '<put a long random secret here please>'],
    ['one repeated character', 'x'.repeat(48)],
  ] as const) {
    it(`refuses a secret that is ${why}, naming the variable and never echoing the value`, () => {
      const found = problems({ AUTOMATION_ANONYMISATION_SECRET: value });
      assert.equal(found.length, 1, found.join('\n'));
      assert.match(found[0], /^AUTOMATION_ANONYMISATION_SECRET: /);
      assert.ok(!found[0].includes(value), 'the value is not repeated');
    });
  }

  it('accepts 32 random bytes, and no secret at all (sites that do not anonymise)', () => {
    assert.deepEqual(
      problems({ AUTOMATION_ANONYMISATION_SECRET: 'c2f1e0a9b8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1' }),
      [],
    );
    assert.equal(loadConfig({}).anonymisationSecret, undefined);
  });

  it('puts staging beside the storage root by default, named after it, and refuses it inside (or around) the storage root', () => {
    assert.equal(
      loadConfig({ ORTHANC_AUTOMATION_STORAGE_PATH: '/srv/research/out' }).stagingPath,
      '/srv/research/.out-staging',
    );
    assert.equal(
      loadConfig({
        ORTHANC_AUTOMATION_STORAGE_PATH: '/srv/out',
        AUTOMATION_STAGING_PATH: '/var/lib/autorthanc/staging',
      }).stagingPath,
      '/var/lib/autorthanc/staging',
    );
    for (const staging of ['/srv/out', '/srv/out/rule/.staging', '/srv']) {
      const found = problems({
        ORTHANC_AUTOMATION_STORAGE_PATH: '/srv/out',
        ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: '/etc/rules',
        AUTOMATION_STAGING_PATH: staging,
      });
      assert.equal(found.length, 1, `${staging}: ${found.join('\n')}`);
      assert.match(found[0], /^AUTOMATION_STAGING_PATH: .*outside ORTHANC_AUTOMATION_STORAGE_PATH/);
    }
    assert.match(
      problems({
        ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: '/etc/autorthanc/rules',
        AUTOMATION_STAGING_PATH: '/etc/autorthanc',
      })[0],
      /^AUTOMATION_STAGING_PATH: /,
    );
  });
});

describe(
  'anonymising jobs: staging, then de-identified files only under the storage root',
  { timeout: 120_000 },
  () => {
    let study: GeneratedStudy;
    let identifiers: string[];
    before(async () => {
      study = await generateStudy({
        patientID: 'PID-UNIT-STAGE',
        patientName: 'Stager^Ulla',
        accessionNumber: 'ACC-UNIT-9',
        studyDescription: 'staging',
        series: [
          { seriesNumber: 1, modality: 'MR', instances: 3 },
          { seriesNumber: 2, modality: 'SC', instances: 1 },
        ],
      });
      identifiers = [
        'PID-UNIT-STAGE',
        'Stager',
        'ACC-UNIT-9',
        study.studyInstanceUID,
        ...study.series.flatMap((s) => [s.seriesInstanceUID, ...s.files.map((f) => f.sopInstanceUID)]),
      ];
    });

    /** A fake Orthanc serving the generated study's files. */
    function orthancOf(s: GeneratedStudy): DownloadDeps['orthanc'] {
      const instances = s.series.flatMap((series) =>
        series.files.map((f) => ({
          ID: f.sopInstanceUID,
          ParentSeries: series.seriesInstanceUID,
          FileSize: f.size,
          MainDicomTags: { SOPInstanceUID: f.sopInstanceUID },
        })),
      );
      return {
        listInstances: async () => instances,
        getSeries: async (id: string) => {
          const series = s.series.find((x) => x.seriesInstanceUID === id)!;
          return {
            ID: id,
            ParentStudy: 'study-1',
            MainDicomTags: {
              SeriesNumber: String(series.seriesNumber),
              SeriesDate: series.seriesDate,
              SeriesInstanceUID: id,
            },
          };
        },
        getStudy: async () => ({
          ID: 'study-1',
          PatientMainDicomTags: { PatientID: s.patientID, PatientName: s.patientName },
          MainDicomTags: { StudyInstanceUID: s.studyInstanceUID, StudyID: s.studyID },
        }),
        instanceFile: async (id: string) =>
          Readable.from([readFileSync(s.series.flatMap((x) => x.files).find((f) => f.sopInstanceUID === id)!.path)]),
      } as unknown as DownloadDeps['orthanc'];
    }

    async function downloadInto(job: Job, over: { stale?: boolean } = {}) {
      const root = makeTempDir('staging-unit-');
      const storagePath = path.join(root, 'storage');
      const stagingPath = path.join(root, 'staging');
      mkdirSync(storagePath);
      const naming = createOutputNaming(createPseudonymiser({ anonymisationSecret: SECRET, rulesPath: root }));
      const deps: DownloadDeps = {
        orthanc: orthancOf(study),
        outputLocks: createMemoryStorage().outputLocks,
        naming,
        storagePath,
        stagingPath,
        files: createFairShare(2),
      };
      if (over.stale) {
        const name = await naming.outputName(job, await deps.orthanc.getStudy('study-1'));
        mkdirSync(path.join(storagePath, job.ruleId, `${name}.WORKING`), { recursive: true });
        writeFileSync(path.join(storagePath, job.ruleId, `${name}.WORKING`, 'left.dcm'), 'an earlier job');
      }
      const result = (await downloadStep(deps)({ job, log, progress: async () => undefined })) as StepResult;
      job.outputPath = result.outputPath;
      return { root, storagePath, stagingPath, result };
    }

    it("downloads the originals into the job's private staging and nothing under the storage root (an earlier half-done .WORKING is cleared)", async () => {
      const job = jobFor('research', { BurnedInAnnotation: 'exclude' });
      const { storagePath, stagingPath, result } = await downloadInto(job, { stale: true });
      assert.equal(result.instances, 4);
      assert.deepEqual(
        tree(path.join(storagePath, 'research')),
        [],
        'nothing under the rule folder after download, before anonymise',
      );
      const staged = tree(stagingFolder(stagingPath, job.id)).filter((f) => f.endsWith('.dcm'));
      assert.equal(staged.length, 4, 'the originals are in staging');
      assert.ok(
        readFileSync(path.join(stagingFolder(stagingPath, job.id), staged[0])).includes(Buffer.from(study.patientID)),
        'staging holds originals',
      );
    });

    it('anonymises from staging into .WORKING (names match the content), then deletes the staging folder', async () => {
      const job = jobFor('research', { BurnedInAnnotation: 'exclude' });
      const { root, storagePath, stagingPath } = await downloadInto(job);
      const step = anonymiseStep({ secret: SECRET, rulesPath: root, stagingPath, concurrency: 2 });
      const result = (await step({ job, log, progress: async () => undefined })) as StepResult;
      assert.equal(result.instances, 3);
      assert.equal(existsSync(stagingFolder(stagingPath, job.id)), false);
      const working = `${job.outputPath}.WORKING`;
      const files = tree(working).filter((f) => f.endsWith('.dcm'));
      assert.equal(files.length, 3);
      for (const rel of files) {
        const bytes = readFileSync(path.join(working, rel));
        for (const id of identifiers) assert.equal(bytes.indexOf(Buffer.from(id)), -1, `${rel} holds ${id}`);
        assert.equal(
          `${metaSopInstanceUid(bytes)}.dcm`,
          path.basename(rel),
          'named after its project-keyed SOP Instance UID',
        );
      }
      assert.deepEqual(readdirSync(path.join(storagePath, 'research')), [path.basename(working)]);
    });

    it("shares the process's memory budget with every step running beside it", async () => {
      const job = jobFor('research', { BurnedInAnnotation: 'exclude' });
      const { stagingPath } = await downloadInto(job);
      const anonymiser = createAnonymiser({
        secret: projectKey(SECRET, 'research'),
        settings: anonymiseSettingsSchema.parse({ BurnedInAnnotation: 'exclude' }),
      });
      // Another step holds the whole budget: this folder must wait for it, not open a budget of its own.
      const held = await sharedMemoryBudget().acquire(DEFAULT_MEMORY_BUDGET_BYTES);
      let finished = false;
      const run = anonymiseFolder(stagingFolder(stagingPath, job.id), anonymiser, {
        concurrency: 2,
        output: `${job.outputPath}.WORKING`,
      }).then((r) => ((finished = true), r));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(finished, false, 'no file read while the shared budget is taken');
      held();
      assert.equal((await run).instances, 3);
      assert.equal(sharedMemoryBudget().inFlight, 0);
    });

    it('resumes a run cut short (and one cut between move and delete) without losing or duplicating a file', async () => {
      const job = jobFor('research', { BurnedInAnnotation: 'exclude' });
      const { stagingPath } = await downloadInto(job);
      const staging = stagingFolder(stagingPath, job.id);
      const working = `${job.outputPath}.WORKING`;
      const anonymiser = createAnonymiser({
        secret: projectKey(SECRET, 'research'),
        settings: anonymiseSettingsSchema.parse({ BurnedInAnnotation: 'exclude' }),
      });
      let calls = 0;
      const crash = async () => {
        calls += 1;
        if (calls === 2) throw new Error('host killed');
      };
      const originals = tree(staging).filter((f) => f.endsWith('.dcm'));
      const keep = path.join(makeTempDir('staging-copy-'), 'copy');
      cpSync(staging, keep, { recursive: true });
      await assert.rejects(
        anonymiseFolder(staging, anonymiser, { concurrency: 1, progress: crash, output: working }),
        /host killed/,
      );
      const left = tree(staging).filter((f) => f.endsWith('.dcm'));
      assert.ok(
        left.length < originals.length && left.length > 0,
        `part done (${left.length} of ${originals.length} left)`,
      );
      // An original whose anonymised file already made it, as if the host died between rename and delete.
      const moved = originals.find((f) => !left.includes(f))!;
      cpSync(path.join(keep, moved), path.join(staging, moved));
      writeFileSync(path.join(staging, `${moved}.anonymising`), 'half-written');
      const result = await anonymiseFolder(staging, anonymiser, { concurrency: 2, output: working });
      assert.equal(result.instances, 3);
      assert.equal(tree(working).filter((f) => f.endsWith('.dcm')).length, 3);
      assert.deepEqual(
        tree(staging).filter((f) => statSync(path.join(staging, f)).isFile()),
        [],
        'no original or temporary file left in staging',
      );
    });

    it('a failed job leaves nothing under the storage root and no staging; a succeeded one keeps its result', async () => {
      const job = jobFor('research', { BurnedInAnnotation: 'fail' });
      const { root, storagePath, stagingPath } = await downloadInto(job);
      const step = anonymiseStep({ secret: SECRET, rulesPath: root, stagingPath, concurrency: 1 });
      await assert.rejects(step({ job, log, progress: async () => undefined }), /BurnedInAnnotation policy is "fail"/);
      assert.deepEqual(tree(storagePath), [], 'the failed step removed its .WORKING and the rule folder it made');
      // As if a later step (zip) had failed: its half-written file goes when the job ends.
      mkdirSync(path.dirname(job.outputPath!), { recursive: true });
      writeFileSync(jobPaths(job).zipWorking, 'half a zip');
      job.status = 'failed';
      await cleanUpEndedJob({ stagingPath, outputLocks: { acquire: async () => ({ acquired: true }) } }, job);
      assert.deepEqual(tree(storagePath), [], 'nothing under the storage root');
      assert.deepEqual(tree(stagingPath), [], 'no staging');

      const other = jobFor('research', { BurnedInAnnotation: 'exclude' });
      const second = await downloadInto(other);
      await anonymiseStep({ secret: SECRET, rulesPath: second.root, stagingPath: second.stagingPath, concurrency: 1 })({
        job: other,
        log,
        progress: async () => undefined,
      });
      other.status = 'failed';
      await cleanUpEndedJob(
        {
          stagingPath: second.stagingPath,
          outputLocks: { acquire: async () => ({ acquired: false, holder: 'b'.repeat(32) }) },
        },
        other,
      );
      assert.equal(
        existsSync(`${other.outputPath}.WORKING`),
        true,
        'a later job that took the output over keeps its working folder',
      );
      other.status = 'succeeded';
      await cleanUpEndedJob(
        {
          stagingPath: second.stagingPath,
          outputLocks: { acquire: async () => assert.fail('not asked for a succeeded job') },
        },
        other,
      );
      assert.equal(existsSync(`${other.outputPath}.WORKING`), true);
    });

    it('leaves pipelines that do not anonymise exactly as autorthanc does', async () => {
      const root = makeTempDir('staging-plain-');
      const job = jobFor('plain', undefined, ['download']);
      job.outputPath = path.join(root, 'storage', 'plain', 'P1-Doe-EX1');
      mkdirSync(`${job.outputPath}.WORKING`, { recursive: true });
      writeFileSync(path.join(`${job.outputPath}.WORKING`, 'a.dcm'), 'x');
      job.status = 'failed';
      await cleanUpEndedJob(
        {
          stagingPath: path.join(root, 'staging'),
          outputLocks: { acquire: async () => assert.fail('plain jobs are not touched') },
        },
        job,
      );
      assert.deepEqual(tree(path.join(root, 'storage', 'plain')), [
        'P1-Doe-EX1.WORKING',
        path.join('P1-Doe-EX1.WORKING', 'a.dcm'),
      ]);
    });
  },
);

describe('start-up sweep of staging', () => {
  it('deletes the staging of ended and unknown jobs and anything else, keeps that of running jobs', async () => {
    const staging = makeTempDir('staging-sweep-');
    const running = jobFor('running');
    const ended = { ...jobFor('ended'), status: 'failed' as const };
    for (const name of [running.id, ended.id, 'c'.repeat(32), 'stray']) {
      mkdirSync(path.join(staging, name, 'SE1'), { recursive: true });
      writeFileSync(path.join(staging, name, 'SE1', 'x.dcm'), 'original');
    }
    writeFileSync(path.join(staging, 'loose.dcm'), 'original');
    const jobs = new Map<string, Job>([
      [running.id, running],
      [ended.id, ended],
    ]);
    const swept = await sweepStaging(staging, { get: async (id: string) => jobs.get(id) });
    assert.deepEqual(swept, { kept: 1, removed: 4 });
    assert.deepEqual(readdirSync(staging), [running.id]);
    assert.deepEqual(await sweepStaging(path.join(staging, 'missing'), { get: async () => undefined }), {
      kept: 0,
      removed: 0,
    });
  });
});

describe('retry', () => {
  it("deletes the failed job's stale staging before the job is queued again", async () => {
    const staging = makeTempDir('staging-retry-');
    const jobs = createMemoryJobStore();
    const { job: stored } = await jobs.create({ ...jobFor('retried'), status: 'failed' });
    mkdirSync(path.join(stagingFolder(staging, stored.id), 'SE1'), { recursive: true });
    writeFileSync(path.join(stagingFolder(staging, stored.id), 'SE1', 'x.dcm'), 'original');
    const statusWhenDiscarded: string[] = [];
    const outcome = await retryJob(jobs, stored.id, new Date(), async (job) => {
      statusWhenDiscarded.push((await jobs.get(job.id))!.status);
      await discardStaging(staging, job.id);
    });
    assert.equal(outcome.kind, 'retried');
    assert.deepEqual(
      statusWhenDiscarded,
      ['failed'],
      'discarded while the job was still failed, before anything can run it',
    );
    assert.equal(existsSync(stagingFolder(staging, stored.id)), false);
    assert.equal((await jobs.get(stored.id))?.status, 'queued');
  });
});
