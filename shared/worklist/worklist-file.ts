/**
 * One booking as a DICOM worklist file (a Part 10 file holding the Modality Worklist attributes),
 * written with dcmjs and read by Orthanc's ModalityWorklists plugin or dcmtk's `wlmscpfs` from the
 * folder they serve. Files are written to a temporary name (not `.wl`, so the SCP never reads a half
 * file) and renamed into place. The bytes depend only on the booking, so an unchanged booking gives
 * the same file and the sync can tell "unchanged" by comparing bytes.
 */
import { createHash } from 'node:crypto';
import { rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { bookingIdentifiers, localDay, localTime, worklistFileName, type Booking } from './booking';

const { DicomDict, DicomMetaDictionary } = dcmjs.data;

/** Modality Worklist Information Model - FIND: the SOP class of a worklist item. */
const WORKLIST_FIND = '1.2.840.10008.5.1.4.31';
const EXPLICIT_LE = '1.2.840.10008.1.2.1';
/** This app's implementation class UID (2.25 + a fixed UUID) and name in the file meta. */
const IMPLEMENTATION_UID = '2.25.113059749145936325402354257176981405696';

/** The naturalised dataset (dcmjs keywords) of a booking's worklist entry. */
export function worklistDataset(booking: Booking): Record<string, unknown> {
  const ids = bookingIdentifiers(booking);
  const d = booking.dicom;
  const dataset: Record<string, unknown> = {
    SpecificCharacterSet: 'ISO_IR 192',
    AccessionNumber: ids.accessionNumber,
    ReferringPhysicianName: d.ReferringPhysicianName ?? '',
    PatientName: d.PatientName ?? d.PatientID,
    PatientID: d.PatientID,
    PatientBirthDate: d.PatientBirthDate ?? '',
    PatientSex: d.PatientSex ?? '',
    StudyInstanceUID: ids.studyInstanceUid,
    RequestedProcedureID: ids.requestedProcedureId,
    // The project is what a research site's operator picks by (Donders puts it here too).
    RequestedProcedureDescription: d.RequestedProcedureDescription ?? booking.project ?? d.StudyDescription ?? '',
    ScheduledProcedureStepSequence: [
      {
        Modality: booking.modality,
        ScheduledStationAETitle: booking.station,
        ScheduledProcedureStepStartDate: localDay(booking.start),
        ScheduledProcedureStepStartTime: localTime(booking.start),
        ScheduledPerformingPhysicianName: d.ScheduledPerformingPhysicianName ?? '',
        ScheduledProcedureStepDescription:
          d.ScheduledProcedureStepDescription ?? d.StudyDescription ?? booking.project ?? '',
        ScheduledProcedureStepID: ids.stepId,
        ScheduledProcedureStepLocation: d.ScheduledProcedureStepLocation ?? '',
        ...(d.ScheduledStationName ? { ScheduledStationName: d.ScheduledStationName } : {}),
      },
    ],
  };
  for (const keyword of [
    'StudyDescription',
    'InstitutionName',
    'RequestingPhysician',
    'OtherPatientIDs',
    'PatientWeight',
    'PatientSize',
  ] as const)
    if (d[keyword] !== undefined) dataset[keyword] = d[keyword];
  return dataset;
}

/** The Part 10 bytes of a booking's worklist file. */
export function worklistBytes(booking: Booking): Buffer {
  const ids = bookingIdentifiers(booking);
  const meta = DicomMetaDictionary.denaturalizeDataset({
    FileMetaInformationVersion: new Uint8Array([0, 1]).buffer,
    MediaStorageSOPClassUID: WORKLIST_FIND,
    // One instance per booking; the study UID's digits keep it stable and unique.
    MediaStorageSOPInstanceUID: `${ids.studyInstanceUid}.1`.slice(0, 64),
    TransferSyntaxUID: EXPLICIT_LE,
    ImplementationClassUID: IMPLEMENTATION_UID,
    ImplementationVersionName: 'AUTORTHANC_WL',
  });
  const dict = new DicomDict(meta);
  dict.dict = DicomMetaDictionary.denaturalizeDataset(worklistDataset(booking));
  return Buffer.from(dict.write());
}

export function contentHash(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes the booking's file into `folder` atomically; returns its name. */
export async function writeWorklistFile(
  folder: string,
  booking: Booking,
  bytes = worklistBytes(booking),
): Promise<string> {
  const name = worklistFileName(booking.id);
  const temporary = path.join(folder, `.${name}.${process.pid}.${Date.now()}.tmp`);
  try {
    await writeFile(temporary, bytes, { mode: 0o640 });
    await rename(temporary, path.join(folder, name));
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
  return name;
}
