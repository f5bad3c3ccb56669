/**
 * Orthanc with its index in a real PostgreSQL (Debian's orthanc-postgresql plugin, enabled only
 * through the environment variables deploy/orthanc/orthanc.json reads, as compose does).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { storescu } from '../support/dcmtk';
import { generateStudy, type GeneratedStudy } from '../support/dicom';
import { startOrthanc, waitForStableStudy, type OrthancServer } from '../support/orthanc';
import { postgresBinDir, startPostgres, type PostgresServer } from '../support/postgres';

function sql(postgres: PostgresServer, query: string): string {
  return execFileSync(
    path.join(postgresBinDir(), 'psql'),
    [
      '-XAtq',
      '-h',
      postgres.host,
      '-p',
      String(postgres.port),
      '-U',
      postgres.username,
      '-d',
      postgres.database,
      '-c',
      query,
    ],
    {
      env: { ...process.env, PGPASSWORD: postgres.password },
      encoding: 'utf8',
    },
  ).trim();
}

describe('Orthanc with its index in a real PostgreSQL', { timeout: 60_000 }, () => {
  let postgres: PostgresServer;
  let orthanc: OrthancServer;
  let client: OrthancClient;
  let study: GeneratedStudy;
  let studyId: string;

  before(async () => {
    postgres = await startPostgres();
    orthanc = await startOrthanc({ postgres, stableAgeSeconds: 1 });
    client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    study = await generateStudy({
      patientID: 'PG-001',
      series: [
        { seriesNumber: 1, modality: 'MR', instances: 2 },
        { seriesNumber: 2, modality: 'CT', instances: 1 },
      ],
    });
  });
  after(async () => {
    await orthanc?.stop();
    await postgres?.stop();
  });

  it('runs on the PostgreSQL index plugin', async () => {
    const system = await client.system();
    assert.match(String(system.DatabaseBackendPlugin), /libOrthancPostgreSQLIndex\.so/);
  });

  it('stores a study sent with storescu, and the index rows are in PostgreSQL', async () => {
    const before = Number(sql(postgres, 'SELECT count(*) FROM resources'));
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
    studyId = await waitForStableStudy(orthanc, study.studyInstanceUID, 20_000);
    const read = await client.getStudy(studyId);
    assert.equal(read.PatientMainDicomTags.PatientName, 'Müller^Jürgen');
    assert.equal(read.Series.length, 2);
    assert.equal((await client.listInstances('studies', studyId)).length, 3);
    // 1 patient + 1 study + 2 series + 3 instances, in the database Orthanc was pointed at.
    assert.equal(Number(sql(postgres, 'SELECT count(*) FROM resources')) - before, 7);
    assert.equal(sql(postgres, `SELECT count(*) FROM resources WHERE publicid = '${studyId}'`), '1');
  });

  it('keeps no SQLite index in the storage folder, and still has the study after an Orthanc restart', async () => {
    assert.equal(existsSync(path.join(orthanc.storageDir, 'index')), false, 'no SQLite index file');
    await orthanc.stop();
    await orthanc.start();
    const read = await client.getStudy(studyId);
    assert.equal(read.MainDicomTags.StudyInstanceUID, study.studyInstanceUID);
    assert.equal((await client.listInstances('studies', studyId)).length, 3);
  });
});
