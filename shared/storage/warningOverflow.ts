/**
 * Warnings beyond what a job record holds. A record is one JSON property, and Table storage refuses a
 * property over 64 KiB (32,768 UTF-16 characters), so a job that piles up warnings (one per excluded
 * instance, say) would stop being writable. The record keeps the first MAX_RECORDED_WARNINGS, each
 * bounded; the rest go to blobs in `<table>-warnings/<job id>/…`, named on the record
 * (`warningsOverflow`) and read back whole by `readWarnings`. Each spill writes a new blob, so
 * concurrent updates never overwrite each other's; an update that loses its ETag race leaves an
 * unlisted blob, removed with the job by the purge.
 */
import { randomBytes } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import type { Job, WarningsOverflow } from '../pipeline/job';
import { isStatus } from './table';

/** Table storage's limit on one string property, in UTF-16 code units (64 KiB). */
export const MAX_PROPERTY_CHARS = 32_768;
/** Warnings kept on the record itself; the rest are in blobs. */
export const MAX_RECORDED_WARNINGS = 25;
/** A longer warning is cut on the record (25 x 500 characters leave room for the rest of the job). */
export const MAX_WARNING_CHARS = 500;
/** Overflow blobs per job (one per update that overflowed; a handful in practice), then warnings are only counted. */
export const MAX_OVERFLOW_BLOBS = 100;

/** A warning as the record keeps it: cut to MAX_WARNING_CHARS, saying how long it was. */
export function boundedWarning(warning: string): string {
  if (warning.length <= MAX_WARNING_CHARS) return warning;
  const note = ` … (${warning.length} characters)`;
  return `${warning.slice(0, MAX_WARNING_CHARS - note.length)}${note}`;
}

/**
 * Moves the warnings beyond the record's share into a new blob, before the record is written.
 * `writeBlob` stores them and returns the blob's name.
 */
export async function spillWarnings(
  job: Job,
  container: string,
  writeBlob: (overflow: string[]) => Promise<string>,
): Promise<void> {
  job.warnings = job.warnings.map(boundedWarning);
  if (job.warnings.length <= MAX_RECORDED_WARNINGS) return;
  const overflow = job.warnings.slice(MAX_RECORDED_WARNINGS);
  job.warnings = job.warnings.slice(0, MAX_RECORDED_WARNINGS);
  const record: WarningsOverflow = job.warningsOverflow ?? { count: 0, container, blobs: [] };
  if (record.blobs.length < MAX_OVERFLOW_BLOBS) record.blobs.push(await writeBlob(overflow));
  else record.dropped = (record.dropped ?? 0) + overflow.length;
  record.count += overflow.length;
  job.warningsOverflow = record;
}

/** The overflow blobs of the job records, in one container. */
export interface WarningBlobs {
  /** Spills a job's extra warnings (see spillWarnings). */
  spill(job: Job): Promise<void>;
  read(name: string): Promise<string[]>;
  /** Deletes every blob of a job, listed or not; how many. */
  deleteOf(jobId: string): Promise<number>;
}

export function warningBlobs(container: ContainerClient): WarningBlobs {
  let containerReady: Promise<unknown> | undefined;

  async function write(jobId: string, overflow: string[]): Promise<string> {
    containerReady ??= container.createIfNotExists().catch((error: unknown) => {
      containerReady = undefined;
      throw error;
    });
    await containerReady;
    const name = `${jobId}/${String(Date.now()).padStart(13, '0')}-${randomBytes(4).toString('hex')}.json`;
    const body = JSON.stringify(overflow);
    await container.getBlockBlobClient(name).upload(body, Buffer.byteLength(body), {
      blobHTTPHeaders: { blobContentType: 'application/json' },
      conditions: { ifNoneMatch: '*' },
    });
    return name;
  }

  return {
    spill: (job) => spillWarnings(job, container.containerName, (overflow) => write(job.id, overflow)),

    async read(name) {
      const text = (await container.getBlockBlobClient(name).downloadToBuffer()).toString('utf8');
      return JSON.parse(text) as string[];
    },

    async deleteOf(jobId) {
      let deleted = 0;
      try {
        for await (const blob of container.listBlobsFlat({ prefix: `${jobId}/` })) {
          await container.deleteBlob(blob.name).catch((error: unknown) => {
            if (!isStatus(error, 404)) throw error;
          });
          deleted += 1;
        }
      } catch (error) {
        // No container yet: no job ever overflowed.
        if (!isStatus(error, 404)) throw error;
      }
      return deleted;
    },
  };
}
