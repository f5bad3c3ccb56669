/**
 * Issue 2's acceptance: a generated 2-series study goes into a real Orthanc (Debian binary, the
 * project's deploy/orthanc config and Lua hook, StableAge 2 s) by real C-STORE (dcmtk storescu),
 * Orthanc declares it stable in /changes, and everything is read back through shared/orthanc.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { readAll, sha256 } from '../support/bytes';
import { findscu, storescu } from '../support/dcmtk';
import { datasetBytes, generateStudy, type GeneratedStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { waitFor } from '../support/process';

function fileMeta(file: Buffer): Record<string, unknown> {
  const { DicomMessage, DicomMetaDictionary } = dcmjs.data;
  const parsed = DicomMessage.readFile(
    file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer,
    { untilTag: '00080005' },
  );
  return DicomMetaDictionary.naturalizeDataset(parsed.meta);
}

describe('Orthanc round trip: storescu in, StableStudy, shared/orthanc out', { timeout: 60_000 }, () => {
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
      patientBirthDate: '19640229',
      patientSex: 'M',
      studyID: '4242',
      studyDate: '20240315',
      studyDescription: 'Round trip Kopf',
      accessionNumber: 'ACC-RT-1',
      institutionName: 'Klinikum Süd',
      referringPhysicianName: 'Schäfer^Anna',
      series: [
        { seriesNumber: 1, modality: 'MR', seriesDescription: 'T1 sag', instances: 3 },
        { seriesNumber: 2, modality: 'CT', seriesDescription: 'CT Thorax', instances: 2 },
      ],
    });
    await storescu(study.files, {
      host: '127.0.0.1',
      port: orthanc.dicomPort,
      calledAet: orthanc.aet,
      callingAet: 'RTSENDER',
    });
  });
  after(async () => orthanc?.stop());

  it('gets StableStudy in /changes once StableAge has passed', async () => {
    const [found] = await client.lookup(study.studyInstanceUID);
    assert.equal(found?.Type, 'Study', 'the StudyInstanceUID resolves to a study');
    studyId = found.ID;
    const sent = Date.now();
    let since = 0;
    let stable = false;
    await waitFor(
      async () => {
        for (;;) {
          const page = await client.changes({ since, limit: 100 });
          stable ||= page.Changes.some((c) => c.ChangeType === 'StableStudy' && c.ID === studyId);
          since = page.Last;
          if (page.Done) return stable;
        }
      },
      { timeoutMs: 30_000, description: `StableStudy for ${studyId} in /changes` },
    );
    // StableAge is 2 s: the event must not come earlier (it would mean Orthanc ignored the setting).
    assert.ok(Date.now() - sent >= 1_000, 'StableStudy waited for StableAge');
    assert.equal((await client.getStudy(studyId)).IsStable, true);
  });

  it('reads back patient and study tags, including the non-ASCII names', async () => {
    const read = await client.getStudy(studyId);
    assert.deepEqual(
      {
        PatientName: read.PatientMainDicomTags.PatientName,
        PatientID: read.PatientMainDicomTags.PatientID,
        PatientBirthDate: read.PatientMainDicomTags.PatientBirthDate,
        PatientSex: read.PatientMainDicomTags.PatientSex,
      },
      { PatientName: 'Müller^Jürgen', PatientID: 'RT-001', PatientBirthDate: '19640229', PatientSex: 'M' },
    );
    assert.deepEqual(
      {
        StudyInstanceUID: read.MainDicomTags.StudyInstanceUID,
        StudyID: read.MainDicomTags.StudyID,
        StudyDate: read.MainDicomTags.StudyDate,
        StudyDescription: read.MainDicomTags.StudyDescription,
        AccessionNumber: read.MainDicomTags.AccessionNumber,
        InstitutionName: read.MainDicomTags.InstitutionName,
        ReferringPhysicianName: read.MainDicomTags.ReferringPhysicianName,
      },
      {
        StudyInstanceUID: study.studyInstanceUID,
        StudyID: '4242',
        StudyDate: '20240315',
        StudyDescription: 'Round trip Kopf',
        AccessionNumber: 'ACC-RT-1',
        InstitutionName: 'Klinikum Süd',
        ReferringPhysicianName: 'Schäfer^Anna',
      },
    );
    assert.equal(read.Series.length, 2);
    const series = await Promise.all(read.Series.map((id) => client.getSeries(id)));
    const summary = series
      .map((s) => ({
        uid: s.MainDicomTags.SeriesInstanceUID,
        number: Number(s.MainDicomTags.SeriesNumber),
        modality: s.MainDicomTags.Modality,
        description: s.MainDicomTags.SeriesDescription,
        instances: s.Instances.length,
      }))
      .sort((a, b) => a.number - b.number);
    assert.deepEqual(
      summary,
      study.series.map((s) => ({
        uid: s.seriesInstanceUID,
        number: s.seriesNumber,
        modality: s.modality,
        description: s.description,
        instances: s.files.length,
      })),
    );
    const first = (await client.listInstances('studies', studyId))[0];
    const tags = await client.getInstanceTags(first.ID);
    assert.equal(tags.PatientName, 'Müller^Jürgen');
    assert.equal(await client.getMetadata('instances', first.ID, 'RemoteAET'), 'RTSENDER');
  });

  // Over C-STORE the receiver writes its own Part-10 meta header (group 0002: its implementation
  // class UID and version, PS3.10 7.1), so byte identity is checked on the dataset that was sent,
  // and the meta on the fields that must carry over.
  it('returns every instance with the dataset byte-identical (sha256) to the generated file', async () => {
    const instances = await client.listInstances('studies', studyId);
    assert.equal(instances.length, study.files.length);
    for (const series of study.series) {
      for (const file of series.files) {
        const instance = instances.find((i) => i.MainDicomTags.SOPInstanceUID === file.sopInstanceUID);
        assert.ok(instance, `Orthanc holds ${file.sopInstanceUID}`);
        const stored = await readAll(await client.instanceFile(instance.ID));
        const generated = await readFile(file.path);
        assert.equal(stored.length, instance.FileSize);
        assert.equal(sha256(datasetBytes(stored)), sha256(datasetBytes(generated)), `dataset of ${file.path}`);
        const [storedMeta, generatedMeta] = [fileMeta(stored), fileMeta(generated)];
        for (const key of ['MediaStorageSOPClassUID', 'MediaStorageSOPInstanceUID', 'TransferSyntaxUID']) {
          assert.equal(storedMeta[key], generatedMeta[key], `${key} of ${file.path}`);
        }
      }
    }
  });

  // Uploaded over REST, Orthanc keeps the file exactly as sent, meta header included.
  it('returns a REST-uploaded file byte-identical (sha256) as a whole', async () => {
    const extra = await generateStudy({
      patientName: 'Größe^Zoë',
      series: [{ seriesNumber: 9, modality: 'CT', instances: 1 }],
    });
    const bytes = await readFile(extra.files[0]);
    const { data } = await client.raw<{ ID: string; Status: string }>(
      'POST',
      '/instances',
      { data: bytes, headers: { 'Content-Type': 'application/dicom' } },
      false,
    );
    assert.equal(data.Status, 'Success');
    const stored = await readAll(await client.instanceFile(data.ID));
    assert.equal(sha256(stored), sha256(bytes));
    assert.equal((await client.getInstanceTags(data.ID)).PatientName, 'Größe^Zoë');
  });

  it('answers a real C-FIND (findscu) from a registered AET with the patient name, and refuses an unknown one', async () => {
    const keys = { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: study.studyInstanceUID, PatientName: '' };
    await assert.rejects(
      findscu({ host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet, callingAet: 'STRANGER' }, keys),
      /findscu .*failed/,
    );
    await client.putModality('FINDER', { AET: 'FINDER', Host: '127.0.0.1', Port: 104, allow: ['find'] });
    const matches = await findscu(
      { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet, callingAet: 'FINDER' },
      {
        QueryRetrieveLevel: 'STUDY',
        StudyInstanceUID: study.studyInstanceUID,
        PatientName: '',
        PatientID: '',
        NumberOfStudyRelatedInstances: '',
      },
    );
    assert.equal(matches.length, 1);
    assert.equal(matches[0].PatientName, 'Müller^Jürgen');
    assert.equal(matches[0].PatientID, 'RT-001');
    assert.equal(Number(matches[0].NumberOfStudyRelatedInstances), 5);
  });
});
