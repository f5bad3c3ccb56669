import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient } from '../../shared/orthanc/client';
import { storescu } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { startPostgres, type PostgresServer } from '../support/postgres';

describe('Orthanc with its index in a real PostgreSQL', { timeout: 120_000 }, () => {
  let postgres: PostgresServer;
  let orthanc: OrthancServer;
  before(async () => {
    postgres = await startPostgres();
    orthanc = await startOrthanc({ postgres });
  });
  after(async () => {
    await orthanc?.stop();
    await postgres?.stop();
  });

  it('uses the PostgreSQL index plugin and stores a study sent with storescu', async () => {
    const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    assert.match(String((await client.system()).DatabaseBackendPlugin), /PostgreSQLIndex/);
    const study = await generateStudy({ series: [{ seriesNumber: 1, instances: 2 }] });
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
    const [found] = await client.lookup(study.studyInstanceUID);
    assert.equal((await client.listInstances('studies', found.ID)).length, 2);
  });
});
