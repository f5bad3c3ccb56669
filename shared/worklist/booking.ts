/**
 * A booking as the worklist sees it, whatever the source: one scheduled scan on one scanner. The
 * identifiers the scanner copies into the study (StudyInstanceUID, AccessionNumber, step ids) are
 * derived from the booking id, so every sync writes the same values and an arriving study can be
 * traced back to its booking without anything stored on the scanner side.
 */
import { createHash } from 'node:crypto';

/** Booking-only values (not DICOM attributes) a mapping can set; rules see them as `Booking.<name>`. */
export const BOOKING_FIELDS = ['BookingID', 'Start', 'Status', 'Project', 'Session'] as const;

/**
 * The DICOM attributes a mapping may set on a worklist entry. Everything else (UIDs, step ids,
 * character set) is generated, so a calendar text can never smuggle in an attribute of its own.
 */
export const WORKLIST_KEYWORDS = [
  'PatientID',
  'PatientName',
  'PatientBirthDate',
  'PatientSex',
  'PatientWeight',
  'PatientSize',
  'OtherPatientIDs',
  'AccessionNumber',
  'StudyInstanceUID',
  'StudyDescription',
  'RequestedProcedureDescription',
  'RequestedProcedureID',
  'ReferringPhysicianName',
  'RequestingPhysician',
  'InstitutionName',
  'Modality',
  'ScheduledStationAETitle',
  'ScheduledStationName',
  'ScheduledProcedureStepDescription',
  'ScheduledProcedureStepLocation',
  'ScheduledPerformingPhysicianName',
] as const;

export type WorklistKeyword = (typeof WORKLIST_KEYWORDS)[number];

/** Values that identify the patient: never logged, never stored outside the worklist file. */
export const PATIENT_KEYWORDS: ReadonlySet<string> = new Set([
  'PatientID',
  'PatientName',
  'PatientBirthDate',
  'PatientSex',
  'PatientWeight',
  'PatientSize',
  'OtherPatientIDs',
]);

export interface Booking {
  /** The source's id (an event UID, a row's BookingID); not PHI. */
  id: string;
  /** The scheduled start (the scanner shows it in local time). */
  start: Date;
  cancelled: boolean;
  /** The scanner's AE title (ScheduledStationAETitle). */
  station: string;
  modality: string;
  project?: string;
  session?: string;
  /** DICOM values by keyword, PatientID always among them. PHI: only the worklist file holds it. */
  dicom: Partial<Record<WorklistKeyword, string>>;
}

/** A value that is stable for a booking and unguessable without its id (file names, generated ids). */
function digest(id: string, purpose: string): Buffer {
  return createHash('sha256').update(`autorthanc-worklist\0${purpose}\0${id}`).digest();
}

/** The key under which a booking is stored and its file is named: no PHI, as the id might be a name. */
export function bookingKey(id: string): string {
  return digest(id, 'key').toString('hex').slice(0, 32);
}

/** The worklist file of a booking, in the folder the worklist SCP serves. */
export function worklistFileName(id: string): string {
  return `booking-${bookingKey(id)}.wl`;
}

/** Matches the names of the files this app wrote (it never touches other files in the folder). */
export const WORKLIST_FILE = /^booking-[0-9a-f]{32}\.wl$/;

/**
 * A valid UID derived from the booking id: `2.25.` and a UUID (RFC 9562 version 8, built from a hash)
 * as an integer, the form PS3.5 B.2 gives for UIDs without an org root.
 */
export function bookingStudyUid(id: string): string {
  const bytes = digest(id, 'study-uid').subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/** A 16-character SH value (AccessionNumber, RequestedProcedureID, ScheduledProcedureStepID). */
export function bookingShortId(id: string, prefix: 'A' | 'RP' | 'SPS'): string {
  const digits = BigInt(`0x${digest(id, prefix).subarray(0, 8).toString('hex')}`)
    .toString(36)
    .toUpperCase();
  return `${prefix}${digits}`.slice(0, 16);
}

/** The identifiers an arriving study carries when the scanner took them from this booking's entry. */
export function bookingIdentifiers(booking: Pick<Booking, 'id' | 'dicom'>): {
  studyInstanceUid: string;
  accessionNumber: string;
  requestedProcedureId: string;
  stepId: string;
} {
  return {
    studyInstanceUid: booking.dicom.StudyInstanceUID ?? bookingStudyUid(booking.id),
    accessionNumber: booking.dicom.AccessionNumber ?? bookingShortId(booking.id, 'A'),
    requestedProcedureId: booking.dicom.RequestedProcedureID ?? bookingShortId(booking.id, 'RP'),
    stepId: bookingShortId(booking.id, 'SPS'),
  };
}

/** YYYYMMDD in local time (the scanner's calendar day). */
export function localDay(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}`;
}

/** HHMMSS in local time. */
export function localTime(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}`;
}
