import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { readAll, sha256 } from '../support/bytes';
import { storescu } from '../support/dcmtk';
import { datasetBytes, generateStudy, type GeneratedStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { waitFor } from '../support/process';


describe('Orthanc round trip: storescu in, shared/orthanc out', { timeout: 120_000 }, () => {
  let orthanc: OrthancServer;
  let client: OrthancClient;
  let study: GeneratedStudy;
  let studyId: string;

  before(async () => {
    orthanc = await startOrthanc({ stableAgeSeconds: 2 });
    client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
    study = await generateStudy({
      patientID: 'RT-001',
      patientName: 'Müller^Jürgen',
      studyDescription: 'Round trip',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1 sag', instances: 3 },
        { seriesNumber: 2, modality: 'CT', seriesDescription: 'CT chest', instances: 2 },
      ],
    });
    await storescu(study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
  });
  after(async () => orthanc?.stop());

  it('reports StableStudy in /changes', async () => {
    const [found] = await client.lookup(study.studyInstanceUID);
    assert.equal(found.Type, 'Study');
    studyId = found.ID;
    await waitFor(async () => (await client.changes({ since: 0, limit: 1000 })).Changes.some((c) => c.ChangeType === 'StableStudy' && c.ID === studyId), { timeoutMs: 30_000, description: 'StableStudy' });
    assert.equal((await client.getStudy(studyId)).IsStable, true);
  });

  it('reads back study and patient tags, including the non-ASCII name', async () => {
    const read = await client.getStudy(studyId);
    assert.equal(read.PatientMainDicomTags.PatientName, 'Müller^Jürgen');
    assert.equal(read.PatientMainDicomTags.PatientID, 'RT-001');
    assert.equal(read.MainDicomTags.StudyInstanceUID, study.studyInstanceUID);
    assert.equal(read.MainDicomTags.StudyDescription, 'Round trip');
    assert.equal(read.Series.length, 2);
    const descriptions = (await Promise.all(read.Series.map((id) => client.getSeries(id)))).map((s) => s.MainDicomTags.SeriesDescription).sort();
    assert.deepEqual(descriptions, ['CT chest', 'T1 sag']);
  });

  // Orthanc writes its own file meta header (group 0002) on C-STORE; the dataset must be untouched.
  it('returns every instance dataset byte-identical to what was sent', async () => {
    const instances = await client.listInstances('studies', studyId);
    assert.equal(instances.length, study.files.length);
    for (const series of study.series) {
      for (const file of series.files) {
        const instance = instances.find((i) => i.MainDicomTags.SOPInstanceUID === file.sopInstanceUID);
        assert.ok(instance, `Orthanc holds ${file.sopInstanceUID}`);
        const stored = await readAll(await client.instanceFile(instance.ID));
        assert.equal(stored.length, instance.FileSize);
        assert.equal(sha256(datasetBytes(stored)), sha256(datasetBytes(await readFile(file.path))));
      }
    }
  });
});
