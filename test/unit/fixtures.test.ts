/**
 * The DICOM fixture generator (test/support/dicom.ts): every other test trusts its files, so they are
 * checked here with two independent readers (dcmjs and dcmtk's dcmdump).
 */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import { dcmdump } from '../support/dcmtk';
import { datasetBytes, generateStudy, SOP_CLASS, type GeneratedStudy } from '../support/dicom';
import { makeTempDir } from '../support/process';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

function read(file: string) {
  const buf = readFileSync(file);
  // Copy out of Node's shared buffer pool: dcmjs reads the whole ArrayBuffer.
  const dict = DicomMessage.readFile(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  return {
    raw: buf,
    dict,
    meta: DicomMetaDictionary.naturalizeDataset(dict.meta),
    ds: DicomMetaDictionary.naturalizeDataset(dict.dict),
  };
}

function range(values: ArrayLike<number>): { min: number; max: number } {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i += 1) {
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  return { min, max };
}

const UTF8_NAME = Buffer.from('Müller^Jürgen', 'utf8');

describe('DICOM fixture generator', () => {
  let study: GeneratedStudy;
  before(async () => {
    study = await generateStudy({
      studyID: '4711',
      accessionNumber: 'ACC-4711',
      privateTags: true,
      nestedSequences: true,
      series: [
        { seriesNumber: 3, modality: 'MR', seriesDescription: 'T1 sag', instances: 2 },
        { seriesNumber: 7, modality: 'CT', seriesDescription: 'CT chest', instances: 2, seriesDate: '20240202' },
      ],
      instanceExtra: ({ seriesNumber, instanceIndex }) =>
        seriesNumber === 7 && instanceIndex === 1 ? { ImageComments: 'second CT slice' } : undefined,
    });
  });

  it('lays out <dir>/<seriesNumber>/<n>.dcm and reports real sizes', () => {
    assert.equal(study.files.length, 4);
    assert.deepEqual(
      study.files.map((f) => path.relative(study.dir, f)),
      ['3/1.dcm', '3/2.dcm', '7/1.dcm', '7/2.dcm'],
    );
    for (const s of study.series) for (const f of s.files) assert.equal(f.size, statSync(f.path).size);
    // 256x256x2 bytes of MR pixels, 512x512x2 of CT: the files are realistically sized.
    assert.ok(study.series[0].files[0].size > 256 * 256 * 2);
    assert.ok(study.series[1].files[0].size > 512 * 512 * 2);
  });

  it('writes Part-10 files with consistent meta and SOP classes (dcmjs)', () => {
    for (const s of study.series) {
      for (const f of s.files) {
        const { raw, meta, ds } = read(f.path);
        assert.equal(raw.subarray(128, 132).toString('latin1'), 'DICM');
        assert.equal(meta.TransferSyntaxUID, '1.2.840.10008.1.2.1');
        assert.equal(meta.MediaStorageSOPClassUID, ds.SOPClassUID);
        assert.equal(meta.MediaStorageSOPInstanceUID, f.sopInstanceUID);
        assert.match(String(meta.ImplementationClassUID), /^[0-9.]+$/);
        assert.equal(ds.SOPClassUID, SOP_CLASS[s.modality as 'MR' | 'CT']);
        assert.equal(ds.SOPInstanceUID, f.sopInstanceUID);
        assert.equal(ds.SeriesInstanceUID, s.seriesInstanceUID);
        assert.equal(ds.StudyInstanceUID, study.studyInstanceUID);
        assert.equal(ds.Modality, s.modality);
        assert.equal(ds.SeriesDescription, s.description);
        assert.equal(Number(ds.SeriesNumber), s.seriesNumber);
        assert.equal(ds.SeriesDate, s.seriesDate);
        assert.equal(ds.StudyID, '4711');
        assert.equal(ds.AccessionNumber, 'ACC-4711');
        assert.ok(datasetBytes(raw).length < raw.length);
      }
    }
    assert.equal(study.series[1].seriesDate, '20240202');
  });

  it('numbers and positions instances, with distinct non-trivial pixel data', () => {
    const [mr1, mr2] = study.series[0].files.map((f) => read(f.path).ds);
    assert.equal(Number(mr1.InstanceNumber), 1);
    assert.equal(Number(mr2.InstanceNumber), 2);
    assert.notDeepEqual(mr1.ImagePositionPatient, mr2.ImagePositionPatient);
    const mrPixels = new Uint16Array((mr1.PixelData as ArrayBuffer[])[0]);
    assert.equal(mr1.Rows, 256);
    assert.equal(mrPixels.length, 256 * 256);
    assert.ok(new Set(mrPixels).size > 100, 'MR pixels vary');
    assert.ok(range(mrPixels).max < 4096, 'MR pixels fit BitsStored 12');
    assert.notDeepEqual(
      Buffer.from((mr2.PixelData as ArrayBuffer[])[0]),
      Buffer.from(mrPixels.buffer),
      'slices differ',
    );

    const ct = read(study.series[1].files[0].path).ds;
    assert.equal(ct.Rows, 512);
    assert.equal(ct.Columns, 512);
    assert.equal(ct.PixelRepresentation, 1);
    assert.equal(Number(ct.RescaleIntercept), -1024);
    const ctPixels = new Int16Array((ct.PixelData as ArrayBuffer[])[0]);
    assert.equal(ctPixels.length, 512 * 512);
    assert.ok(range(ctPixels).min < 0, 'CT stored values are signed');
    assert.ok(range(ctPixels).max > 1024 + 500, 'CT has bone-like values');
    assert.equal(read(study.series[1].files[1].path).ds.ImageComments, 'second CT slice');
    assert.equal(ct.ImageComments, undefined);
  });

  it('keeps the non-ASCII patient name as UTF-8 under ISO_IR 192', () => {
    const { raw, ds } = read(study.files[0]);
    assert.equal(ds.SpecificCharacterSet, 'ISO_IR 192');
    assert.equal((ds.PatientName as { Alphabetic: string }[])[0].Alphabetic, 'Müller^Jürgen');
    assert.equal(study.patientName, 'Müller^Jürgen');
    assert.ok(raw.includes(UTF8_NAME), 'the bytes on disk are UTF-8');
  });

  it('adds private tags and identifiers inside sequences when asked', () => {
    const { dict, ds } = read(study.files[1]);
    assert.equal(dict.dict['00290010'].Value?.[0], 'ACME PRIVATE');
    assert.match(String(dict.dict['00291010'].Value?.[0]), /Müller\^Jürgen/);
    assert.equal((ds.OtherPatientIDsSequence as { PatientID: string }[])[0].PatientID, `${study.patientID}-OLD`);
    assert.equal((ds.RequestAttributesSequence as { AccessionNumber: string }[])[0].AccessionNumber, 'ACC-4711');
    assert.equal(
      (ds.ReferencedStudySequence as { ReferencedSOPInstanceUID: string }[])[0].ReferencedSOPInstanceUID,
      study.studyInstanceUID,
    );
    assert.equal(
      (ds.SourceImageSequence as { ReferencedSOPInstanceUID: string }[])[0].ReferencedSOPInstanceUID,
      study.series[0].files[0].sopInstanceUID,
    );
  });

  it('is accepted by dcmtk (dcmdump), name included', async () => {
    for (const file of study.files) {
      const dump = await dcmdump(file);
      assert.match(dump, /\(0010,0010\) PN \[Müller\^Jürgen\]/);
      assert.match(dump, /\(0008,0005\) CS \[ISO_IR 192\]/);
      assert.match(dump, /\(0002,0010\) UI =LittleEndianExplicit/);
      assert.match(dump, /\(7fe0,0010\) OW/);
    }
  });

  it('makes valid, unique 2.25 UIDs', () => {
    const uids = [
      study.studyInstanceUID,
      ...study.series.flatMap((s) => [s.seriesInstanceUID, ...s.files.map((f) => f.sopInstanceUID)]),
    ];
    assert.equal(new Set(uids).size, uids.length);
    for (const uid of uids) {
      assert.match(uid, /^2\.25\.(0|[1-9][0-9]*)$/);
      assert.ok(uid.length <= 64, `${uid} fits the 64-character UI limit`);
    }
  });

  it('is byte-for-byte reproducible with a seed, and differs without', async () => {
    const spec = { seed: 'fixture-seed', series: [{ seriesNumber: 1, modality: 'CT' as const, instances: 1 }] };
    const a = await generateStudy({ ...spec, outDir: makeTempDir('fixture-a-') });
    const b = await generateStudy({ ...spec, outDir: makeTempDir('fixture-b-') });
    const c = await generateStudy({ ...spec, seed: 'another-seed', outDir: makeTempDir('fixture-c-') });
    assert.equal(a.studyInstanceUID, b.studyInstanceUID);
    assert.equal(a.studyID, b.studyID);
    assert.ok(readFileSync(a.files[0]).equals(readFileSync(b.files[0])));
    assert.notEqual(a.studyInstanceUID, c.studyInstanceUID);
    const unseeded = await generateStudy({ series: spec.series });
    assert.notEqual(unseeded.studyInstanceUID, a.studyInstanceUID);
  });
});
