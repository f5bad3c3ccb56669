/**
 * The storage ports (shared/pipeline/ports.ts) in memory, for unit tests of code that takes them (the
 * runner, evaluation, staging). They keep the Table storage implementation's contract
 * (test/support/job-store-contract.ts runs against both), not just its shape:
 * - records are stored as JSON with an ETag, so callers get copies and never share objects;
 * - `update` reads, changes and writes with a yield in between and retries on an ETag conflict,
 *   so concurrent updates interleave as they do against Azurite (`conflicts` counts the retries);
 * - the index of summaries follows status and step changes only, as the real index rows do;
 * - warnings beyond MAX_RECORDED_WARNINGS go to in-memory "blobs", a record over 64 KiB is refused;
 * - listing pages newest first through day windows, with an opaque cursor.
 */
import { isTerminal, summaryOf, type Job, type JobSummary } from '../../shared/pipeline/job';
import {
  InvalidCursorError,
  matchesFilter,
  type Cursors,
  type JobStore,
  type OutputLocks,
  type PurgeResult,
} from '../../shared/pipeline/ports';
import { updateJobRecord, type JobRecordIo } from '../../shared/storage/jobRecord';
import { MAX_PROPERTY_CHARS, spillWarnings } from '../../shared/storage/warningOverflow';

const DAY_MS = 86_400_000;

export interface MemoryJobStore extends JobStore {
  /** ETag conflicts `update` met and retried. */
  readonly conflicts: number;
  /** Ids of the stored jobs, in insertion order. */
  jobIds(): string[];
}

export interface MemoryStorage {
  jobs: MemoryJobStore;
  outputLocks: OutputLocks;
  cursors: Cursors;
}

export interface MemoryStorageOptions {
  /** The clock `listRecent` and `summariesSince` read "now" from (the real store uses the system's). */
  now?: () => Date;
  /** Named like the real store's warnings container (`<table>-warnings`). */
  tableName?: string;
}

interface Stored {
  body: string;
  etag: number;
}

/** Lets other pending work run, as a round trip to storage does. */
const yieldTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

function tooLarge(id: string): Error {
  // What Table storage answers for a property over 64 KiB.
  return Object.assign(
    new Error(`Job ${id}: PropertyValueTooLarge (the record exceeds ${MAX_PROPERTY_CHARS} characters)`),
    { statusCode: 400 },
  );
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Newest first; jobs created in the same millisecond by id, as the index's row keys sort. */
function newestFirst(a: Pick<Job, 'createdAt' | 'id'>, b: Pick<Job, 'createdAt' | 'id'>): number {
  return Date.parse(b.createdAt) - Date.parse(a.createdAt) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function encodeCursor(job: Pick<Job, 'createdAt' | 'id'>): string {
  return Buffer.from(`${job.createdAt}|${job.id}`, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): { createdAt: string; id: string } {
  const [createdAt, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  if (!createdAt || !id || Number.isNaN(Date.parse(createdAt)) || !/^[A-Za-z0-9_-]+$/.test(id))
    throw new InvalidCursorError(cursor);
  return { createdAt, id };
}

/** The three ports over one shared state, as the Table implementation keeps them in one table. */
export function createMemoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  const jobs = createMemoryJobStore(options);
  return { jobs, outputLocks: createMemoryOutputLocks(jobs), cursors: createMemoryCursors() };
}

export function createMemoryJobStore(options: MemoryStorageOptions = {}): MemoryJobStore {
  const now = options.now ?? (() => new Date());
  const container = `${(options.tableName ?? 'automationjobs').toLowerCase()}-warnings`;
  const jobs = new Map<string, Stored>();
  const index = new Map<string, JobSummary>();
  const blobs = new Map<string, string[]>();
  let etags = 0;
  let conflicts = 0;
  let blobCounter = 0;

  const spill = (job: Job) =>
    spillWarnings(job, container, async (overflow) => {
      blobCounter += 1;
      const name = `${job.id}/${String(blobCounter).padStart(13, '0')}.json`;
      blobs.set(name, overflow);
      return name;
    });

  function serialise(job: Job): string {
    const body = JSON.stringify(job);
    if (body.length > MAX_PROPERTY_CHARS) throw tooLarge(job.id);
    return body;
  }

  async function read(id: string): Promise<{ job: Job; etag: number } | undefined> {
    await yieldTurn();
    const stored = jobs.get(id);
    return stored && { job: JSON.parse(stored.body) as Job, etag: stored.etag };
  }

  const record: JobRecordIo<number> = {
    read,
    async write(job, etag) {
      await spill(job);
      const body = serialise(job);
      await yieldTurn();
      const stored = jobs.get(job.id);
      if (!stored) throw Object.assign(new Error(`Job ${job.id} not found in the ledger`), { statusCode: 404 });
      if (stored.etag !== etag) {
        conflicts += 1;
        return false;
      }
      jobs.set(job.id, { body, etag: (etags += 1) });
      return true;
    },
    writeIndex: async (job) => void index.set(job.id, summaryOf(job)),
  };

  function deleteBlobsOf(jobId: string): number {
    let deleted = 0;
    for (const name of [...blobs.keys()]) {
      if (name.startsWith(`${jobId}/`)) {
        blobs.delete(name);
        deleted += 1;
      }
    }
    return deleted;
  }

  const store: MemoryJobStore = {
    get conflicts() {
      return conflicts;
    },

    jobIds() {
      return [...jobs.keys()];
    },

    async create(job) {
      await spill(job);
      const body = serialise(job);
      await yieldTurn();
      const existing = jobs.get(job.id);
      if (existing) return { job: JSON.parse(existing.body) as Job, created: false };
      jobs.set(job.id, { body, etag: (etags += 1) });
      index.set(job.id, summaryOf(job));
      return { job, created: true };
    },

    async get(id) {
      return (await read(id))?.job;
    },

    update: (id, change) => updateJobRecord(record, id, change),

    async listRecent({ limit, days = 7, filter = {}, before, cursor }) {
      await yieldTurn();
      const from = cursor ? decodeCursor(cursor) : undefined;
      const start = from ? Date.parse(from.createdAt) : before ? Date.parse(before) : now().getTime();
      const newestDay = utcDay(start);
      const oldestDay = utcDay(start - (days - 1) * DAY_MS);
      const candidates = [...index.keys()]
        .map((id) => jobs.get(id))
        .filter((stored): stored is Stored => stored !== undefined)
        .map((stored) => JSON.parse(stored.body) as Job)
        .filter(
          (job) => utcDay(Date.parse(job.createdAt)) <= newestDay && utcDay(Date.parse(job.createdAt)) >= oldestDay,
        )
        .filter((job) =>
          from ? newestFirst(job, from) > 0 : before ? Date.parse(job.createdAt) < Date.parse(before) : true,
        )
        .filter((job) => matchesFilter(job, filter))
        .sort(newestFirst);
      const page = candidates.slice(0, limit);
      return candidates.length > limit ? { jobs: page, next: encodeCursor(page[page.length - 1]) } : { jobs: page };
    },

    async summariesSince(since) {
      await yieldTurn();
      const today = utcDay(now().getTime());
      return [...index.values()]
        .filter((s) => Date.parse(s.createdAt) > since.getTime() && utcDay(Date.parse(s.createdAt)) <= today)
        .sort((a, b) => newestFirst({ createdAt: a.createdAt, id: a.jobId }, { createdAt: b.createdAt, id: b.jobId }))
        .map((s) => ({ ...s }));
    },

    async readWarnings(id) {
      const job = await store.get(id);
      if (!job) return undefined;
      const warnings = [...job.warnings];
      for (const name of job.warningsOverflow?.blobs ?? []) {
        const stored = blobs.get(name);
        if (!stored) throw Object.assign(new Error(`Blob ${container}/${name} not found`), { statusCode: 404 });
        warnings.push(...stored);
      }
      return { warnings, overflow: job.warningsOverflow };
    },

    async purgeBefore(cutoff) {
      await yieldTurn();
      const result: PurgeResult = { jobs: 0, indexRows: 0, blobs: 0 };
      const createdAt = (id: string) => {
        const stored = jobs.get(id);
        return stored ? (JSON.parse(stored.body) as Job).createdAt : index.get(id)?.createdAt;
      };
      for (const id of new Set([...index.keys(), ...jobs.keys()])) {
        const created = createdAt(id);
        if (created === undefined || Date.parse(created) >= cutoff.getTime()) continue;
        if (jobs.delete(id)) result.jobs += 1;
        if (index.delete(id)) result.indexRows += 1;
        result.blobs += deleteBlobsOf(id);
      }
      return result;
    },

    async ping() {
      await yieldTurn();
    },
  };
  return store;
}

/** Output locks over a job store, which tells whether a holder has ended. */
export function createMemoryOutputLocks(jobs: Pick<JobStore, 'get'>): OutputLocks {
  const locks = new Map<string, string>();
  return {
    async acquire(outputKey, jobId) {
      await yieldTurn();
      const holder = locks.get(outputKey);
      if (holder !== undefined && holder !== jobId) {
        const held = await jobs.get(holder);
        if (held && !isTerminal(held)) return { acquired: false, holder };
        // The holder ended (or was purged): its claim lapses.
      }
      locks.set(outputKey, jobId);
      return { acquired: true };
    },

    async release(outputKey, jobId) {
      await yieldTurn();
      if (locks.get(outputKey) === jobId) locks.delete(outputKey);
    },
  };
}

export function createMemoryCursors(): Cursors {
  const cursors = new Map<string, number>();
  return {
    async get(name) {
      await yieldTurn();
      return cursors.get(name);
    },

    async set(name, value) {
      await yieldTurn();
      cursors.set(name, value);
    },
  };
}
