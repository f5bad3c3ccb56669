/**
 * The worklist as the operator sees it (GET /api/worklist and the dashboard's "Today's worklist"):
 * each booking's time, scanner, project and status, and for one booking its study and jobs. The
 * status is scheduled, cancelled, arrived, processed (arrived and every linked job succeeded) or
 * not-received. No patient attribute appears unless AUTOMATION_LOG_PHI is set; then the PatientID
 * and PatientName are read back from the booking's worklist file, the only place they are kept.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { z } from 'zod';
import type { Job } from '../pipeline/job';
import { localDay } from './booking';
import type { BookingRecord, BookingStore } from './store';

export type ShownStatus = BookingRecord['status'] | 'processed';

export interface BookingView {
  key: string;
  id: string;
  day: string;
  /** Local HH:MM of the scheduled start. */
  time: string;
  start: string;
  scanner: string;
  modality: string;
  project?: string;
  session?: string;
  status: ShownStatus;
  arrivedAt?: string;
  studyInstanceUid: string;
  accessionNumber: string;
  orthancStudyId?: string;
  jobIds: string[];
  patient?: { PatientID?: string; PatientName?: string };
}

export interface JobLink {
  id: string;
  ruleId?: string;
  status: string;
  currentStep?: string;
  error?: string;
}

export const worklistQuerySchema = z
  .object({
    day: z
      .string()
      .regex(/^\d{4}-?\d{2}-?\d{2}$/, 'expected a day as YYYY-MM-DD')
      .transform((d) => d.replace(/-/g, ''))
      .optional(),
  })
  .strict();

export const bookingKeySchema = z.string().regex(/^[0-9a-f]{32}$/);

type JobReader = (id: string) => Promise<Pick<Job, 'id' | 'ruleId' | 'status' | 'currentStep' | 'error'> | undefined>;

function shownStatus(record: BookingRecord, jobs: Array<{ status: string } | undefined>): ShownStatus {
  if (record.status !== 'arrived' || jobs.length === 0) return record.status;
  return jobs.every((j) => j?.status === 'succeeded') ? 'processed' : 'arrived';
}

async function patientOf(folder: string | undefined, record: BookingRecord): Promise<BookingView['patient']> {
  if (!folder || !record.file) return undefined;
  try {
    const bytes = await readFile(path.join(folder, record.file));
    const read = dcmjs.data.DicomMessage.readFile(
      bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
    );
    const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(read.dict);
    const name = ds.PatientName as Array<{ Alphabetic?: string }> | { Alphabetic?: string } | string | undefined;
    const alphabetic = Array.isArray(name) ? name[0]?.Alphabetic : typeof name === 'object' ? name?.Alphabetic : name;
    return { PatientID: typeof ds.PatientID === 'string' ? ds.PatientID : undefined, PatientName: alphabetic };
  } catch {
    return undefined; // the file went (cancelled, past): the view simply has no patient
  }
}

export async function viewOf(
  record: BookingRecord,
  jobs: JobReader,
  options: { logPhi: boolean; folder?: string },
): Promise<BookingView & { jobs: JobLink[] }> {
  const found = await Promise.all(record.jobIds.map((id) => jobs(id)));
  const start = new Date(record.start);
  const view: BookingView & { jobs: JobLink[] } = {
    key: record.key,
    id: record.id,
    day: record.day,
    time: `${String(start.getHours()).padStart(2, '0')}:${String(start.getMinutes()).padStart(2, '0')}`,
    start: record.start,
    scanner: record.station,
    modality: record.modality,
    ...(record.project !== undefined ? { project: record.project } : {}),
    ...(record.session !== undefined ? { session: record.session } : {}),
    status: shownStatus(record, found),
    ...(record.arrivedAt ? { arrivedAt: record.arrivedAt } : {}),
    studyInstanceUid: record.studyInstanceUid,
    accessionNumber: record.accessionNumber,
    ...(record.orthancStudyId ? { orthancStudyId: record.orthancStudyId } : {}),
    jobIds: record.jobIds,
    jobs: record.jobIds.map((id, i) => {
      const job = found[i];
      return job
        ? {
            id,
            ruleId: job.ruleId,
            status: job.status,
            currentStep: job.currentStep,
            ...(job.error ? { error: job.error } : {}),
          }
        : { id, status: 'unknown' };
    }),
  };
  if (options.logPhi) {
    const patient = await patientOf(options.folder, record);
    if (patient) view.patient = patient;
  }
  return view;
}

/** The bookings of one local day (today by default), by start time. */
export async function worklistDay(
  store: Pick<BookingStore, 'listDays'>,
  jobs: JobReader,
  options: { day?: string; logPhi: boolean; folder?: string; now?: Date },
): Promise<{ day: string; bookings: Array<BookingView & { jobs: JobLink[] }> }> {
  const day = options.day ?? localDay(options.now ?? new Date());
  const records = await store.listDays(day, day);
  return { day, bookings: await Promise.all(records.map((r) => viewOf(r, jobs, options))) };
}
