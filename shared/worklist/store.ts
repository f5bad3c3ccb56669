/**
 * The booking records: what the sync last wrote for each booking and what became of it (arrived,
 * linked jobs, not received). The port the worklist domain names; the Table storage adapter is
 * shared/storage/tableBookings.ts, an in-memory one is test/support/memory-bookings.ts. A record
 * holds no patient attribute: the worklist file is the only place those live.
 */
export type BookingStatus = 'scheduled' | 'cancelled' | 'arrived' | 'not-received';

export interface BookingRecord {
  /** bookingKey(id): the row key and the file name's hash. */
  key: string;
  id: string;
  /** Scheduled local day, YYYYMMDD. */
  day: string;
  /** Scheduled start, ISO 8601. */
  start: string;
  station: string;
  modality: string;
  project?: string;
  session?: string;
  studyInstanceUid: string;
  accessionNumber: string;
  /** The worklist file's name while it exists, and a hash of its bytes. */
  file?: string;
  contentHash?: string;
  status: BookingStatus;
  updatedAt: string;
  arrivedAt?: string;
  /** The Orthanc id of the study that arrived for it. */
  orthancStudyId?: string;
  jobIds: string[];
}

export interface BookingStore {
  get(key: string): Promise<BookingRecord | undefined>;
  /** Creates or replaces a record. */
  put(record: BookingRecord): Promise<void>;
  /** Read-modify-write with optimistic concurrency; `change` may run more than once. Undefined when there is no record. */
  update(key: string, change: (record: BookingRecord) => void): Promise<BookingRecord | undefined>;
  /** Records scheduled on the days from `fromDay` to `toDay` (YYYYMMDD, inclusive), by start time. */
  listDays(fromDay: string, toDay: string): Promise<BookingRecord[]>;
  /** The booking a study belongs to, by its StudyInstanceUID or else its AccessionNumber. */
  findByStudy(ids: { studyInstanceUid?: string; accessionNumber?: string }): Promise<BookingRecord | undefined>;
  /** Deletes records scheduled before `day` (YYYYMMDD); returns how many. */
  purgeBefore(day: string): Promise<number>;
}

/** Sorts records by start time (then id), the order every listing has. */
export function byStart(a: BookingRecord, b: BookingRecord): number {
  return a.start.localeCompare(b.start) || a.id.localeCompare(b.id);
}
