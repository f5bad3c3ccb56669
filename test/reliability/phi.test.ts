/**
 * No PHI in errors, logs, job records, API answers or telemetry unless AUTOMATION_LOG_PHI=true.
 *
 * A plain (not anonymising) pipeline names its output `<PatientID>-<surname>-EX<StudyID>`. Its
 * storage root is a tmpfs whose inodes are used up (a full disk of small files), so the download's
 * `mkdir` of `<name>.WORKING` fails with ENOSPC quoting that path, attempt after attempt, until the
 * job fails. Then the function host's log, the job record and its index row in Table storage, every
 * operator API answer and every item sent to a local Application Insights endpoint are searched for
 * the patient's ID and name (distinctive strings, so a hit cannot be a coincidence).
 *
 * Controls, so an empty search means something: Orthanc holds the ID and the name, the job's error
 * says ENOSPC on `<job:ID>.WORKING` (the path was there and was rewritten), and the same run with
 * AUTOMATION_LOG_PHI=true finds the patient's ID in the error, the log and telemetry.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import type { Job } from '../../shared/pipeline/job';
import { generateStudy } from '../support/dicom';
import { startStack, type Stack } from '../e2e/stack';
import { figure } from './common';
import { startIngestion } from '../support/ingestion';

const run = promisify(execFile);

const PATIENT_ID = 'PHX58213QZ';
const SURNAME = 'Quaxelbrunn';
const GIVEN = 'Wendelgard';

/** The storage root on a tmpfs with few inodes; the rule folder exists, then every free inode is taken. */
async function fillInodes(storageDir: string, ruleId: string): Promise<number> {
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=16m,nr_inodes=128,mode=0755', 'tmpfs', storageDir]);
  } catch (error) {
    throw new Error(
      `the PHI test mounts a tmpfs on the storage root and needs root (mount -t tmpfs): ${(error as Error).message}`,
      { cause: error },
    );
  }
  await fs.mkdir(path.join(storageDir, ruleId));
  let files = 0;
  for (;;) {
    try {
      await fs.writeFile(path.join(storageDir, `ballast-${files}`), '');
      files += 1;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return files;
      throw error;
    }
  }
}

interface Outcome {
  job: Job;
  haystacks: Array<[string, string]>;
  orthanc: string;
}

async function failOnFullDisk(logPhi: boolean): Promise<Outcome> {
  const ingestion = await startIngestion();
  const rule = logPhi ? 'plain_logphi' : 'plain';
  let stack: Stack | undefined;
  try {
    stack = await startStack({
      stableAgeSeconds: 1,
      enforceAuth: true,
      env: {
        ...ingestion.env,
        AUTOMATION_LOG_PHI: String(logPhi),
        // Retries one second apart, so five attempts end in poison quickly.
        AzureFunctionsJobHost__extensions__queues__visibilityTimeout: '00:00:01',
      },
    });
    const s = stack;
    await fillInodes(s.storageDir, rule);
    await s.writeRule(rule, {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'StudyDescription', Level: 'Study', Value: 'phi grep' }],
    });
    const study = await generateStudy({
      patientID: PATIENT_ID,
      patientName: `${SURNAME}^${GIVEN}`,
      studyID: '41',
      studyDescription: 'phi grep',
      series: [{ seriesNumber: 1, modality: 'MR', instances: 2, rows: 64 }],
    });
    await s.sendStudy(study);
    const [job] = await s.waitForJobs(1, (j) => j.ruleId === rule, { timeoutMs: 120_000 });
    assert.equal(job.status, 'failed', `the job fails while the disk is full (${job.error})`);

    // Telemetry: the step's failure arrives as an exception with the job id.
    const deadline = Date.now() + 60_000;
    while (
      !ingestion.received.some((e) => JSON.stringify(e).includes('ExceptionData') && JSON.stringify(e).includes(job.id))
    ) {
      if (Date.now() > deadline)
        throw new Error(
          `no exception for job ${job.id} reached the ingestion endpoint: ${JSON.stringify(ingestion.received).slice(0, 2000)}`,
        );
      await new Promise((resolve) => setTimeout(resolve, 250));
    }

    const get = async (route: string) => {
      const answer = await fetch(`${s.host.url}/api/${route}`, { headers: { 'x-functions-key': s.functionKey } });
      return `${route} ${answer.status} ${await answer.text()}`;
    };
    const api = [
      await get('jobs'),
      await get(`jobs/${job.id}`),
      await get('jobs?status=failed'),
      await get(`jobs?resource=${job.resourceId}`),
      await get('stats'),
      await get('status'),
      await get('health'),
      await get('rules'),
    ];
    const record = [
      JSON.stringify(await s.jobStore.get(job.id)),
      JSON.stringify(await s.jobStore.summariesSince(new Date(Date.now() - 3_600_000))),
    ];
    const orthanc = JSON.stringify(await s.client.getStudy(job.resourceId));
    return {
      job: (await s.jobStore.get(job.id))!,
      orthanc,
      haystacks: [
        ['function host log', s.host.logs()],
        ['job record and index row', record.join('\n')],
        ['API answers', api.join('\n')],
        ['telemetry', JSON.stringify(ingestion.received)],
      ],
    };
  } finally {
    if (stack) await run('umount', ['-l', stack.storageDir]).catch(() => undefined);
    await stack?.stop();
    ingestion.stop();
  }
}

/** Where each PHI string occurs, case-insensitively. */
function hits(haystacks: Array<[string, string]>): string[] {
  const needles = [PATIENT_ID, SURNAME, GIVEN];
  return haystacks.flatMap(([where, text]) =>
    needles.filter((n) => text.toLowerCase().includes(n.toLowerCase())).map((n) => `${where}: ${n}`),
  );
}

describe('PHI in errors, logs, records, API answers and telemetry', { timeout: 400_000 }, () => {
  it('carries none of the patient when a plain pipeline fails on a full disk', async () => {
    const { job, haystacks, orthanc } = await failOnFullDisk(false);
    for (const phi of [PATIENT_ID, SURNAME, GIVEN]) assert.ok(orthanc.includes(phi), `control: Orthanc holds ${phi}`);
    // Control: the error quoted the output path, rewritten to the job's id and the layout's suffix.
    // (Node's recursive mkdir reports a full inode table as ENOENT; a plain mkdir says ENOSPC.)
    assert.match(job.error ?? '', new RegExp(`^download: .*(ENOSPC|ENOENT).*'<job:${job.id}>\\.WORKING'`), job.error);
    const found = hits(haystacks);
    const searched = haystacks.map(([where, text]) => `${where} ${Math.round(text.length / 1024)} KB`).join(', ');
    figure(
      `phi: plain pipeline failed on a full disk with "${job.error}"; patient ID, surname and given name found ${found.length} times in ${searched} (Orthanc holds all 3)`,
    );
    assert.deepEqual(found, []);
  });

  it('shows them when AUTOMATION_LOG_PHI=true (the search finds what is there)', async () => {
    const { job, haystacks } = await failOnFullDisk(true);
    assert.match(job.error ?? '', /^download: .*(ENOSPC|ENOENT)/);
    assert.ok(
      job.error?.includes(`${PATIENT_ID}-${SURNAME}-EX41.WORKING`),
      `the error names the output path: ${job.error}`,
    );
    const found = hits(haystacks);
    for (const where of ['function host log', 'job record and index row', 'API answers', 'telemetry'])
      assert.ok(
        found.includes(`${where}: ${PATIENT_ID}`),
        `${where} has the patient ID with AUTOMATION_LOG_PHI=true: ${found.join(', ')}`,
      );
    figure(
      `phi (AUTOMATION_LOG_PHI=true): the same failure's error "${job.error}"; patient ID found in ${new Set(found.map((f) => f.split(':')[0])).size}/4 places`,
    );
  });
});
