/**
 * The job ledger in memory, for unit tests of code that takes a `Ledger` (the runner, evaluation).
 * It keeps the Table storage ledger's contract (shared/pipeline/ledger.ts), not just its shape:
 * - records are stored as JSON with an ETag, so callers get copies and never share objects;
 * - `updateJob` reads, changes and writes with a yield in between and retries on an ETag conflict,
 *   so concurrent updates interleave as they do against Azurite (`conflicts` counts the retries);
 * - the index of summaries follows status and step changes only, as the real index rows do;
 * - warnings beyond MAX_RECORDED_WARNINGS go to in-memory "blobs", a record over 64 KiB is refused;
 * - listing pages newest first through day windows, with an opaque cursor.
 */
import { isTerminal, type Job, type WarningsOverflow } from '../../shared/pipeline/job';
import {
  InvalidCursorError,
  MAX_PROPERTY_CHARS,
  MAX_RECORDED_WARNINGS,
  boundedWarning,
  summaryOf,
  type JobSummary,
  type Ledger,
  type ListFilter,
  type PurgeResult,
} from '../../shared/pipeline/ledger';

/** As the Table storage ledger: overflow blobs per job, then warnings are only counted. */
const MAX_OVERFLOW_BLOBS = 100;
const MAX_UPDATE_ATTEMPTS = 20;
const DAY_MS = 86_400_000;

export interface MemoryLedger extends Ledger {
  /** ETag conflicts `updateJob` met and retried. */
  readonly conflicts: number;
  /** Ids of the stored jobs, in insertion order. */
  jobIds(): string[];
}

export interface MemoryLedgerOptions {
  /** The clock `listRecent` and `summariesSince` read "now" from (the real ledger uses the system's). */
  now?: () => Date;
  /** Named like the real ledger's warnings container (`<table>-warnings`). */
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

function matches(job: Job, filter: ListFilter): boolean {
  if (filter.status && job.status !== filter.status) return false;
  if (filter.ruleId && job.ruleId !== filter.ruleId) return false;
  if (filter.resource && job.resourceId !== filter.resource && job.studyInstanceUid !== filter.resource) return false;
  return true;
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

export function createMemoryLedger(options: MemoryLedgerOptions = {}): MemoryLedger {
  const now = options.now ?? (() => new Date());
  const container = `${(options.tableName ?? 'automationjobs').toLowerCase()}-warnings`;
  const jobs = new Map<string, Stored>();
  const index = new Map<string, JobSummary>();
  const blobs = new Map<string, string[]>();
  const locks = new Map<string, string>();
  const cursors = new Map<string, number>();
  let etags = 0;
  let conflicts = 0;
  let blobCounter = 0;

  function spill(job: Job): void {
    job.warnings = job.warnings.map(boundedWarning);
    if (job.warnings.length <= MAX_RECORDED_WARNINGS) return;
    const overflow = job.warnings.slice(MAX_RECORDED_WARNINGS);
    job.warnings = job.warnings.slice(0, MAX_RECORDED_WARNINGS);
    const record: WarningsOverflow = job.warningsOverflow ?? { count: 0, container, blobs: [] };
    if (record.blobs.length < MAX_OVERFLOW_BLOBS) {
      blobCounter += 1;
      const name = `${job.id}/${String(blobCounter).padStart(13, '0')}.json`;
      blobs.set(name, overflow);
      record.blobs.push(name);
    } else {
      record.dropped = (record.dropped ?? 0) + overflow.length;
    }
    record.count += overflow.length;
    job.warningsOverflow = record;
  }

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

  const ledger: MemoryLedger = {
    get conflicts() {
      return conflicts;
    },

    jobIds() {
      return [...jobs.keys()];
    },

    async createJob(job) {
      spill(job);
      const body = serialise(job);
      await yieldTurn();
      const existing = jobs.get(job.id);
      if (existing) return { job: JSON.parse(existing.body) as Job, created: false };
      jobs.set(job.id, { body, etag: (etags += 1) });
      index.set(job.id, summaryOf(job));
      return { job, created: true };
    },

    async getJob(id) {
      return (await read(id))?.job;
    },

    async updateJob(id, change) {
      for (let attempt = 0; attempt < MAX_UPDATE_ATTEMPTS; attempt += 1) {
        const current = await read(id);
        if (!current) throw new Error(`Job ${id} not found in the ledger`);
        const was = `${current.job.status}/${current.job.currentStep}`;
        change(current.job);
        spill(current.job);
        const body = serialise(current.job);
        await yieldTurn();
        const stored = jobs.get(id);
        if (!stored) throw Object.assign(new Error(`Job ${id} not found in the ledger`), { statusCode: 404 });
        if (stored.etag !== current.etag) {
          conflicts += 1;
          continue;
        }
        jobs.set(id, { body, etag: (etags += 1) });
        if (`${current.job.status}/${current.job.currentStep}` !== was || isTerminal(current.job))
          index.set(id, summaryOf(current.job));
        return current.job;
      }
      throw new Error(`Job ${id}: too many concurrent updates`);
    },

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
        .filter((job) => matches(job, filter))
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

    async acquireOutput(outputKey, jobId) {
      await yieldTurn();
      const holder = locks.get(outputKey);
      if (holder === undefined || holder === jobId) {
        locks.set(outputKey, jobId);
        return { acquired: true };
      }
      const held = jobs.get(holder);
      if (held && !isTerminal(JSON.parse(held.body) as Job)) return { acquired: false, holder };
      // The holder ended (or was purged): its claim lapses.
      locks.set(outputKey, jobId);
      return { acquired: true };
    },

    async releaseOutput(outputKey, jobId) {
      await yieldTurn();
      if (locks.get(outputKey) === jobId) locks.delete(outputKey);
    },

    async getCursor(name) {
      await yieldTurn();
      return cursors.get(name);
    },

    async setCursor(name, value) {
      await yieldTurn();
      cursors.set(name, value);
    },

    async ping() {
      await yieldTurn();
    },

    async readWarnings(id) {
      const job = await ledger.getJob(id);
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
  };
  return ledger;
}
