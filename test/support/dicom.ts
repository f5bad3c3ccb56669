/**
 * Realistic DICOM studies for tests, written with dcmjs: several series, real pixel sizes
 * (MR 256x256 and CT 512x512, 16-bit), correct UIDs and Part-10 meta, UTF-8 names such as
 * `Müller^Jürgen`, and optionally private tags and nested sequences carrying identifiers.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import dcmjs, { type DicomDataset } from 'dcmjs';
import { makeTempDir } from './process';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

export const SOP_CLASS = {
  MR: '1.2.840.10008.5.1.4.1.1.4',
  CT: '1.2.840.10008.5.1.4.1.1.2',
  SC: '1.2.840.10008.5.1.4.1.1.7',
} as const;
const EXPLICIT_LE = '1.2.840.10008.1.2.1';

export interface SeriesSpec {
  seriesNumber: number;
  modality?: 'MR' | 'CT' | 'SC';
  seriesDescription?: string;
  instances: number;
  rows?: number;
  columns?: number;
  seriesDate?: string;
  /** Extra attributes (dcmjs keyword → value) on every instance of the series. */
  extra?: Record<string, unknown>;
}

export interface StudySpec {
  patientID?: string;
  patientName?: string;
  patientBirthDate?: string;
  patientSex?: string;
  studyID?: string;
  studyDescription?: string;
  studyDate?: string;
  studyTime?: string;
  accessionNumber?: string;
  institutionName?: string;
  referringPhysicianName?: string;
  series: SeriesSpec[];
  /** Extra attributes on every instance. */
  extra?: Record<string, unknown>;
  /** Extra attributes for one instance (applied last, so they win); indexes are 0-based. */
  instanceExtra?: (where: {
    seriesNumber: number;
    seriesIndex: number;
    instanceIndex: number;
  }) => Record<string, unknown> | undefined;
  /** A private creator block whose values repeat the patient's identity. */
  privateTags?: boolean;
  /** Identifiers inside sequences (OtherPatientIDsSequence, RequestAttributesSequence, ...). */
  nestedSequences?: boolean;
  /** Deterministic UIDs and pixels for a given seed. */
  seed?: string;
  /** Write values longer than their VR allows (hostile-input tests); dcmjs refuses them otherwise. */
  allowOverlongValues?: boolean;
  outDir?: string;
}

export interface GeneratedInstance {
  path: string;
  sopInstanceUID: string;
  size: number;
}

export interface GeneratedSeries {
  seriesInstanceUID: string;
  seriesNumber: number;
  seriesDate: string;
  modality: string;
  description: string;
  files: GeneratedInstance[];
}

export interface GeneratedStudy {
  dir: string;
  studyInstanceUID: string;
  patientID: string;
  patientName: string;
  patientBirthDate: string;
  studyID: string;
  studyDate: string;
  accessionNumber: string;
  institutionName: string;
  series: GeneratedSeries[];
  files: string[];
}

/** `2.25.<decimal of 128 bits>`: random, or derived from a seed for reproducible fixtures. */
export function newUid(seed?: string): string {
  const bytes = seed ? createHash('sha256').update(seed).digest().subarray(0, 16) : randomBytes(16);
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/** A small deterministic PRNG (mulberry32) so that seeded fixtures are byte-identical run to run. */
function prng(seed: string): () => number {
  let state = createHash('sha256').update(seed).digest().readUInt32LE(0);
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** MR: unsigned 12-bit in 16, a bright blob moving through the slices over a textured background. */
function mrPixels(rows: number, columns: number, seriesIndex: number, instanceIndex: number): ArrayBuffer {
  const data = new Uint16Array(rows * columns);
  const cx = columns / 2 + instanceIndex * 3;
  const cy = rows / 2 - seriesIndex * 5;
  for (let y = 0; y < rows; y += 1) {
    for (let x = 0; x < columns; x += 1) {
      const d = Math.hypot(x - cx, y - cy);
      data[y * columns + x] = (Math.max(0, 2000 - d * 12) + ((x * 7 + y * 13 + instanceIndex * 31) % 97)) & 0xfff;
    }
  }
  return data.buffer;
}

/**
 * CT: signed 16-bit stored values (RescaleIntercept -1024, so HU = stored - 1024): padding -2000
 * outside the field of view, air, a soft-tissue body with a bone ring and a contrast spot that moves
 * with the slice.
 */
function ctPixels(rows: number, columns: number, seriesIndex: number, instanceIndex: number): ArrayBuffer {
  const data = new Int16Array(rows * columns);
  const cx = columns / 2;
  const cy = rows / 2;
  const fov = Math.min(rows, columns) / 2 - 2;
  for (let y = 0; y < rows; y += 1) {
    for (let x = 0; x < columns; x += 1) {
      const d = Math.hypot(x - cx, y - cy);
      let hu: number;
      if (d > fov) hu = -3024;
      else if (d > fov * 0.8) hu = -1000;
      else if (d > fov * 0.7) hu = 700 + ((x + y) % 50);
      else hu = 40 + ((x * 3 + y * 5 + instanceIndex * 7 + seriesIndex) % 21) - 10;
      if (Math.hypot(x - cx - instanceIndex * 4, y - cy + 20) < 12) hu = 300;
      data[y * columns + x] = d > fov ? -2000 : hu + 1024;
    }
  }
  return data.buffer;
}

/** Writes one Part-10 file from a naturalised dataset, with raw (hex-keyed) extras such as private tags. */
export function writePart10(
  file: string,
  dataset: Record<string, unknown>,
  raw: DicomDataset = {},
  options: { allowOverlongValues?: boolean } = {},
): number {
  const meta = {
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: dataset.SOPClassUID,
    MediaStorageSOPInstanceUID: dataset.SOPInstanceUID,
    TransferSyntaxUID: EXPLICIT_LE,
    ImplementationClassUID: '2.25.80302813137786398554742050926734630921',
    ImplementationVersionName: 'AUTORTHANC_TEST',
  };
  const dict = new DicomDict(DicomMetaDictionary.denaturalizeDataset(meta));
  dict.dict = { ...DicomMetaDictionary.denaturalizeDataset(dataset), ...raw };
  const bytes = Buffer.from(options.allowOverlongValues ? dict.write({ allowInvalidVRLength: true }) : dict.write());
  writeFileSync(file, bytes);
  return bytes.length;
}

export async function generateStudy(spec: StudySpec): Promise<GeneratedStudy> {
  const seed = spec.seed;
  const uid = (label: string) => newUid(seed ? `${seed}/${label}` : undefined);
  const dir = spec.outDir ?? makeTempDir('study-');
  const patientID = spec.patientID ?? 'PAT-0001';
  const patientName = spec.patientName ?? 'Müller^Jürgen';
  const patientBirthDate = spec.patientBirthDate ?? '19700215';
  const random = seed ? prng(seed) : Math.random;
  const studyID = spec.studyID ?? String(1000 + Math.floor(random() * 9000));
  const studyDate = spec.studyDate ?? '20240131';
  const accessionNumber = spec.accessionNumber ?? `ACC${studyID}`;
  const institutionName = spec.institutionName ?? 'Klinikum Süd Research Imaging';
  const studyInstanceUID = uid('study');
  const frameOfReferenceUID = uid('frame');

  const series: GeneratedSeries[] = [];
  spec.series.forEach((s, seriesIndex) => {
    const modality = s.modality ?? 'MR';
    const rows = s.rows ?? (modality === 'CT' ? 512 : 256);
    const columns = s.columns ?? rows;
    const seriesInstanceUID = uid(`series-${s.seriesNumber}`);
    const seriesDate = s.seriesDate ?? studyDate;
    const description = s.seriesDescription ?? `${modality} series ${s.seriesNumber}`;
    const folder = path.join(dir, String(s.seriesNumber));
    mkdirSync(folder, { recursive: true });
    const files: GeneratedInstance[] = [];
    for (let i = 0; i < s.instances; i += 1) {
      const sopInstanceUID = uid(`instance-${s.seriesNumber}-${i}`);
      const dataset: Record<string, unknown> = {
        SpecificCharacterSet: 'ISO_IR 192',
        ImageType: ['ORIGINAL', 'PRIMARY', 'AXIAL'],
        SOPClassUID: SOP_CLASS[modality],
        SOPInstanceUID: sopInstanceUID,
        StudyDate: studyDate,
        SeriesDate: seriesDate,
        ContentDate: seriesDate,
        StudyTime: spec.studyTime ?? '101500',
        SeriesTime: '102000',
        ContentTime: '102001',
        AccessionNumber: accessionNumber,
        Modality: modality,
        Manufacturer: 'ACME Medical',
        InstitutionName: institutionName,
        ReferringPhysicianName: spec.referringPhysicianName ?? 'Schäfer^Anna',
        StationName: 'ACME-MR-01',
        StudyDescription: spec.studyDescription ?? 'Research study',
        SeriesDescription: description,
        PatientName: patientName,
        PatientID: patientID,
        PatientBirthDate: patientBirthDate,
        PatientSex: spec.patientSex ?? 'M',
        PatientAge: '054Y',
        SliceThickness: '1.5',
        StudyInstanceUID: studyInstanceUID,
        SeriesInstanceUID: seriesInstanceUID,
        StudyID: studyID,
        SeriesNumber: String(s.seriesNumber),
        InstanceNumber: String(i + 1),
        ImagePositionPatient: ['0', '0', String(i * 1.5)],
        ImageOrientationPatient: ['1', '0', '0', '0', '1', '0'],
        FrameOfReferenceUID: frameOfReferenceUID,
        SamplesPerPixel: 1,
        PhotometricInterpretation: 'MONOCHROME2',
        Rows: rows,
        Columns: columns,
        PixelSpacing: ['0.9', '0.9'],
        BitsAllocated: 16,
        ...(modality === 'CT'
          ? {
              BitsStored: 16,
              HighBit: 15,
              PixelRepresentation: 1,
              RescaleIntercept: '-1024',
              RescaleSlope: '1',
              RescaleType: 'HU',
              WindowCenter: '40',
              WindowWidth: '400',
              KVP: '120',
              ConvolutionKernel: 'B30f',
            }
          : {
              BitsStored: 12,
              HighBit: 11,
              PixelRepresentation: 0,
              MagneticFieldStrength: '3',
              EchoTime: '4.5',
              RepetitionTime: '2000',
              ScanningSequence: 'GR',
              SequenceVariant: 'SP',
              ScanOptions: '',
              MRAcquisitionType: '3D',
            }),
        ...(spec.extra ?? {}),
        ...(s.extra ?? {}),
        ...(spec.instanceExtra?.({ seriesNumber: s.seriesNumber, seriesIndex, instanceIndex: i }) ?? {}),
        PixelData: [
          modality === 'CT' ? ctPixels(rows, columns, seriesIndex, i) : mrPixels(rows, columns, seriesIndex, i),
        ],
        _vrMap: { PixelData: 'OW' },
      };
      if (spec.nestedSequences) {
        dataset.OtherPatientIDsSequence = [{ PatientID: `${patientID}-OLD`, IssuerOfPatientID: 'Klinikum Süd' }];
        dataset.RequestAttributesSequence = [
          {
            RequestedProcedureID: `RP-${accessionNumber}`,
            ScheduledProcedureStepID: `SPS-${patientID}`,
            AccessionNumber: accessionNumber,
          },
        ];
        dataset.ReferencedStudySequence = [
          { ReferencedSOPClassUID: '1.2.840.10008.3.1.2.3.1', ReferencedSOPInstanceUID: studyInstanceUID },
        ];
        dataset.SourceImageSequence =
          i > 0
            ? [{ ReferencedSOPClassUID: SOP_CLASS[modality], ReferencedSOPInstanceUID: files[0].sopInstanceUID }]
            : undefined;
        if (dataset.SourceImageSequence === undefined) delete dataset.SourceImageSequence;
      }
      const raw: DicomDataset = spec.privateTags
        ? {
            '00290010': { vr: 'LO', Value: ['ACME PRIVATE'] },
            '00291010': { vr: 'LO', Value: [`${patientName} ${patientID}`] },
            '00291011': { vr: 'LO', Value: [`born ${patientBirthDate}`] },
          }
        : {};
      const file = path.join(folder, `${i + 1}.dcm`);
      const size = writePart10(file, dataset, raw, { allowOverlongValues: spec.allowOverlongValues });
      files.push({ path: file, sopInstanceUID, size });
    }
    series.push({ seriesInstanceUID, seriesNumber: s.seriesNumber, seriesDate, modality, description, files });
  });
  return {
    dir,
    studyInstanceUID,
    patientID,
    patientName,
    patientBirthDate,
    studyID,
    studyDate,
    accessionNumber,
    institutionName,
    series,
    files: series.flatMap((s) => s.files.map((f) => f.path)),
  };
}

/**
 * The dataset bytes of a Part-10 file, after the 128-byte preamble, `DICM` and the file meta group.
 * A receiver (Orthanc over C-STORE) writes its own meta header, so byte identity of what was sent is
 * identity of the dataset.
 */
export function datasetBytes(file: Buffer): Buffer {
  if (file.subarray(128, 132).toString('latin1') !== 'DICM')
    throw new Error('not a DICOM Part-10 file (no DICM marker)');
  // (0002,0000) UL, explicit VR little endian: tag(4) VR(2) length(2) value(4)
  if (file.readUInt16LE(132) !== 0x0002 || file.readUInt16LE(134) !== 0x0000)
    throw new Error('file meta group length (0002,0000) missing');
  const groupLength = file.readUInt32LE(140);
  return file.subarray(144 + groupLength);
}

/** Two MR and `ctInstances` CT files with private tags and nested sequences: the DICOM writers' fixture. */
export function generateRichStudy(ctInstances = 1): Promise<GeneratedStudy> {
  return generateStudy({
    privateTags: true,
    nestedSequences: true,
    series: [
      { seriesNumber: 1, modality: 'MR', instances: 2 },
      { seriesNumber: 2, modality: 'CT', instances: ctInstances },
    ],
  });
}
