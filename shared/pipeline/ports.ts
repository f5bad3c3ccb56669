/**
 * What the pipeline asks of storage, as three ports: the job records, the output locks and the
 * change feed's cursors. The domain names only these; the Azure Table implementation lives in
 * shared/storage/ (table*.ts) and an in-memory one in test/support/memory-storage.ts, and one contract
 * suite (test/support/job-store-contract.ts) holds both to the same behaviour.
 */
import type { Job, JobSummary, WarningsOverflow } from './job';

export interface ListFilter {
  status?: Job['status'];
  ruleId?: string;
  /** Orthanc id or StudyInstanceUID (never a patient attribute). */
  resource?: string;
}

/** Whether a job is one a listing with this filter shows. */
export function matchesFilter(job: Job, filter: ListFilter): boolean {
  if (filter.status && job.status !== filter.status) return false;
  if (filter.ruleId && job.ruleId !== filter.ruleId) return false;
  if (filter.resource && job.resourceId !== filter.resource && job.studyInstanceUid !== filter.resource) return false;
  return true;
}

export interface PurgeResult {
  jobs: number;
  indexRows: number;
  blobs: number;
}

/** The job records: one per (rule, resource, LastUpdate), changed by the transitions of job.ts. */
export interface JobStore {
  /** Insert-if-absent: the same job id seen twice collapses onto the stored job. */
  create(job: Job): Promise<{ job: Job; created: boolean }>;
  get(id: string): Promise<Job | undefined>;
  /** Read-modify-write with optimistic concurrency; `change` may run more than once, and a throw writes nothing. */
  update(id: string, change: (job: Job) => void): Promise<Job>;
  /**
   * Newest first, from `before` (default now) back `days` days. `next` is an opaque cursor: pass
   * it back as `cursor` for the following page; one this store did not hand out is an InvalidCursorError.
   */
  listRecent(options: {
    limit: number;
    days?: number;
    filter?: ListFilter;
    before?: string;
    cursor?: string;
  }): Promise<{ jobs: Job[]; next?: string }>;
  /** Summaries of the jobs created since `since` (strictly after), newest first, from the index only. */
  summariesSince(since: Date): Promise<JobSummary[]>;
  /** Every warning of a job: those on the record, then those kept beside it. */
  readWarnings(id: string): Promise<{ warnings: string[]; overflow?: WarningsOverflow } | undefined>;
  /** Deletes jobs created before `cutoff`, their index rows and overflow warnings. */
  purgeBefore(cutoff: Date): Promise<PurgeResult>;
  /** Answers when the store can be reached; throws otherwise. */
  ping(): Promise<void>;
}

/** Which job may write an output path now, so two jobs never write one folder at once. */
export interface OutputLocks {
  /** Claims `outputKey` for a job; refused while another unfinished job holds it (an ended holder's claim lapses). */
  acquire(outputKey: string, jobId: string): Promise<{ acquired: true } | { acquired: false; holder: string }>;
  /** Gives the claim back; only its holder can. */
  release(outputKey: string, jobId: string): Promise<void>;
}

/** Named positions, e.g. the change feed's place in Orthanc's /changes. */
export interface Cursors {
  get(name: string): Promise<number | undefined>;
  set(name: string, value: number): Promise<void>;
}

/**
 * Jobs waiting for results (rules with ExpectResults), found by the StudyInstanceUID they forwarded.
 * Entries are keyed by a hash of the UID, so the lookup needs no scan and the keys hold no UID.
 */
export interface AwaitedResults {
  /** Records (idempotently) that a job forwards a study and waits for results from an AE title. */
  expect(entry: {
    jobId: string;
    studyInstanceUid: string;
    from: string;
    withinSeconds: number;
    createdAt: string;
  }): Promise<void>;
  /** Every entry of jobs that forwarded this study. */
  forStudy(studyInstanceUid: string): Promise<AwaitedEntry[]>;
  /** The entries whose jobs have no results yet, oldest first. */
  open(): Promise<AwaitedEntry[]>;
  /** Results came: the entry leaves the open list (and stays, for later results of the same study). */
  markLinked(entry: AwaitedEntry, at: string): Promise<void>;
  /** Drops an entry whose job is gone (purged). */
  remove(entry: AwaitedEntry): Promise<void>;
}

export interface AwaitedEntry {
  jobId: string;
  /** The hash of the forwarded StudyInstanceUID the entry is filed under. */
  studyKey: string;
  from: string;
  /** The rule's Within: an entry younger than this cannot be overdue, so its job need not be read. */
  withinSeconds?: number;
  createdAt: string;
  linkedAt?: string;
}

/** A listing cursor that did not come from `listRecent` (the operator API answers 400). */
export class InvalidCursorError extends Error {
  constructor(cursor: string) {
    super(`'${cursor.slice(0, 40)}' is not a cursor this API returned`);
    this.name = 'InvalidCursorError';
  }
}
