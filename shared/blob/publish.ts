/**
 * Results to Azure Blob Storage (a rule's `Publish.Blob`): the published zip goes to
 * `<container>/<prefix>/<name>.zip` with its SHA-256 as metadata, then a small manifest beside it
 * (`<name>.zip.manifest.json`). The zip is uploaded as staged blocks and appears under its name only
 * when the block list is committed, so a crash mid-upload leaves no blob (or the previous one) under
 * the final name; uncommitted blocks are invisible and the service discards them after a week.
 * Repeating an upload is safe: a blob already there with the same SHA-256 and size is kept, and
 * blocks staged by an interrupted attempt (same content, same block ids) are not sent again.
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { BlobServiceClient, RestError, type BlockBlobClient } from '@azure/storage-blob';
import type { Job } from '../pipeline/job';
import { forEachLimit } from '../util/concurrency';

export interface BlobTarget {
  container: string;
  /** A folder path inside the container, without leading or trailing slashes; empty for the root. */
  prefix: string;
}

export interface BlobPublishResult {
  /** The zip blob's URL without any SAS or credential. */
  url: string;
  manifestUrl: string;
  sha256: string;
  bytes: number;
  outcome: 'uploaded' | 'already-uploaded';
}

export interface BlobPublishOptions {
  /** Block size; 8 MiB keeps memory at a few blocks while a 2 GB zip stays far below 50,000 blocks. */
  blockBytes?: number;
  /** Blocks staged at once. */
  concurrency?: number;
  /** Extra fields for the manifest (job id, rule id, counts); never PHI beyond the name already in the path. */
  manifest?: Record<string, unknown>;
  /** The zip's name in the container (default: the file's own name, e.g. when uploading a working copy). */
  fileName?: string;
  /** Called after each staged block (tests interrupt an upload here). */
  afterBlock?: (index: number, count: number) => Promise<void>;
}

/** Container names as Azure accepts them (3-63 of a-z, 0-9 and single hyphens, starting with a letter or digit). */
export const CONTAINER_NAME = /^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/;

/** A usable prefix: slash-separated folder names, no `.`/`..`, no backslash or control character. */
export function checkPrefix(prefix: string): string | undefined {
  if (prefix === '') return undefined;
  if (prefix.length > 512) return 'Prefix must be at most 512 characters';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f\\]/.test(prefix)) return 'Prefix must not contain a backslash or control character';
  const segments = prefix.replace(/^\/+|\/+$/g, '').split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..'))
    return "Prefix must be folder names separated by single '/', without '.' or '..'";
  return undefined;
}

/** `studies/2024/` and `/studies/2024` both mean the folder `studies/2024`. */
export function normalisePrefix(prefix: string): string {
  return prefix.replace(/^\/+|\/+$/g, '');
}

export function blobNameFor(target: BlobTarget, fileName: string): string {
  const prefix = normalisePrefix(target.prefix);
  return prefix ? `${prefix}/${fileName}` : fileName;
}

/** A blob URL as the job records it: no query string, so no SAS token. */
export function withoutCredentials(url: string): string {
  const parsed = new URL(url);
  parsed.search = '';
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}

async function sha256OfFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const handle = await fs.open(file, 'r');
  try {
    for await (const chunk of handle.createReadStream({ autoClose: false })) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } finally {
    await handle.close();
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** Ids of equal length (Azure requires it), derived from the content so a retry reuses staged blocks. */
function blockId(sha256: string, index: number): string {
  return Buffer.from(`${sha256.slice(0, 32)}-${String(index).padStart(6, '0')}`).toString('base64');
}

async function existing(blob: BlockBlobClient): Promise<{ sha256?: string; bytes?: number } | undefined> {
  try {
    const properties = await blob.getProperties();
    return { sha256: properties.metadata?.sha256, bytes: properties.contentLength };
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404) return undefined;
    throw error;
  }
}

async function stagedBlocks(blob: BlockBlobClient): Promise<Map<string, number>> {
  try {
    const list = await blob.getBlockList('uncommitted');
    return new Map((list.uncommittedBlocks ?? []).map((b) => [b.name, b.size]));
  } catch (error) {
    if (error instanceof RestError && error.statusCode === 404) return new Map();
    throw error;
  }
}

/** Uploads `zipFile` (and its manifest) under `target`; idempotent, and atomic under the final name. */
export async function publishZipToBlob(
  service: BlobServiceClient,
  target: BlobTarget,
  zipFile: string,
  options: BlobPublishOptions = {},
): Promise<BlobPublishResult> {
  const blockBytes = options.blockBytes ?? 8 * 1024 * 1024;
  const concurrency = options.concurrency ?? 4;
  const container = service.getContainerClient(target.container);
  await container.createIfNotExists();
  const name = blobNameFor(target, options.fileName ?? path.basename(zipFile));
  const blob = container.getBlockBlobClient(name);
  const manifestBlob = container.getBlockBlobClient(`${name}.manifest.json`);
  const { sha256, bytes } = await sha256OfFile(zipFile);
  const result = (outcome: BlobPublishResult['outcome']): BlobPublishResult => ({
    url: withoutCredentials(blob.url),
    manifestUrl: withoutCredentials(manifestBlob.url),
    sha256,
    bytes,
    outcome,
  });

  const present = await existing(blob);
  const zipDone = present?.sha256 === sha256 && present.bytes === bytes;
  if (!zipDone) {
    const count = Math.ceil(bytes / blockBytes);
    const ids = Array.from({ length: count }, (_, i) => blockId(sha256, i));
    const staged = await stagedBlocks(blob);
    const handle = await fs.open(zipFile, 'r');
    try {
      await forEachLimit(ids, concurrency, async (id, index) => {
        const length = Math.min(blockBytes, bytes - index * blockBytes);
        if (staged.get(id) !== length) {
          const chunk = Buffer.alloc(length);
          await handle.read(chunk, 0, length, index * blockBytes);
          await blob.stageBlock(id, chunk, length);
        }
        await options.afterBlock?.(index, count);
      });
    } finally {
      await handle.close();
    }
    // The one request that makes the blob appear, with its content type and hash in the same step.
    await blob.commitBlockList(ids, {
      blobHTTPHeaders: { blobContentType: 'application/zip' },
      metadata: { sha256 },
    });
  }
  const manifest = {
    format: 'autorthanc-functions/blob-manifest@1',
    blob: name,
    sha256,
    bytes,
    ...options.manifest,
  };
  const text = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`);
  // A single Put Blob: it appears whole or not at all, after the zip it describes.
  await manifestBlob.upload(text, text.length, {
    blobHTTPHeaders: { blobContentType: 'application/json' },
    metadata: { sha256: createHash('sha256').update(text).digest('hex') },
  });
  return result(zipDone ? 'already-uploaded' : 'uploaded');
}

/** The client for AUTOMATION_PUBLISH_BLOB_CONNECTION (a connection string, as AzureWebJobsStorage). */
export function blobServiceFor(connectionString: string): BlobServiceClient {
  return BlobServiceClient.fromConnectionString(connectionString);
}

/**
 * The publish step's uploader: one client for the process, the manifest naming the job (ids and
 * counts only). Built lazily so a deployment without Blob rules never parses the setting's account.
 */
export function blobUploader(
  connectionString: string,
): (job: Job, target: BlobTarget, zipFile: string, fileName?: string) => Promise<BlobPublishResult> {
  let service: BlobServiceClient | undefined;
  return (job, target, zipFile, fileName) => {
    service ??= blobServiceFor(connectionString);
    const zip = job.steps.find((s) => s.name === 'zip');
    return publishZipToBlob(service, target, zipFile, {
      fileName,
      manifest: {
        jobId: job.id,
        ruleId: job.ruleId,
        instances: zip?.instances,
        series: zip?.detail?.series,
      },
    });
  };
}
