/**
 * The download step: every instance of the job's study or series is streamed from
 * `/instances/{id}/file` into `<name>.WORKING/SE<n>-<date>-<uid>/<sop>.dcm`, a bounded number at a
 * time, each checked against Orthanc's FileSize. Memory stays flat whatever the study size, and a
 * retry starts from an empty working folder.
 *
 * Pipelines that anonymise download into the job's private staging folder instead (same layout,
 * pseudonymous names), so no original ever sits under the storage root; the anonymise step fills
 * `<name>.WORKING` with de-identified files only.
 */
import { createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { OrthancClient } from '../../orthanc/client';
import type { OrthancInstance } from '../../orthanc/schemas';
import { anonymises, outputPaths, prepareWorkingFor, type OutputNaming } from '../naming';
import { prepareStaging } from '../staging';
import { forEachLimit, mapLimit } from '../../util/concurrency';
import { writeAll } from '../../util/files';
import type { FairShare } from '../../util/fair-share';
import type { Cursors, OutputLocks } from '../ports';
import { chooseVersion, versionedName } from '../versions';
import type { StepHandler } from '../runner';
import { PermanentError } from '../../vocabulary';

export interface DownloadDeps {
  orthanc: Pick<OrthancClient, 'getStudy' | 'getSeries' | 'listInstances' | 'instanceFile'>;
  outputLocks: Pick<OutputLocks, 'acquire'>;
  /** The versions published per rule and resource (OnNewInstances 'ignore' and 'new-version'). */
  cursors?: Pick<Cursors, 'get'>;
  naming: OutputNaming;
  storagePath: string;
  /** Private folder for the originals of anonymising pipelines (see shared/pipeline/staging.ts). */
  stagingPath?: string;
  /** The process's slots for instance files, shared fairly by every download running in it. */
  files: FairShare;
}

/** How long a job waits before checking again whether another job still writes the same output. */
const OUTPUT_BUSY_RECHECK_SECONDS = 10;

/** Files up to this size are read whole; larger ones are streamed through a write buffer this big. */
const WHOLE_FILE_BYTES = 1024 * 1024;

export function downloadStep(deps: DownloadDeps): StepHandler {
  return async ({ job, progress }) => {
    // The calls before the first file are on the critical path of every job: made side by side.
    const [instances, study] = await Promise.all([
      deps.orthanc.listInstances(job.level === 'Study' ? 'studies' : 'series', job.resourceId),
      job.level === 'Study'
        ? deps.orthanc.getStudy(job.resourceId)
        : deps.orthanc.getSeries(job.resourceId).then((s) => deps.orthanc.getStudy(s.ParentStudy)),
    ]);
    const seriesIds = [...new Set(instances.map((i) => i.ParentSeries))];
    const seriesTags = new Map<string, Record<string, string>>(
      await mapLimit(seriesIds, 8, async (id) => [id, (await deps.orthanc.getSeries(id)).MainDicomTags] as const),
    );
    const name = await deps.naming.outputName(
      job,
      study,
      job.level === 'Series' ? seriesTags.get(job.resourceId) : undefined,
    );
    const version = await chooseVersion(deps.cursors, job, async (v) => {
      const candidate = outputPaths(deps.storagePath, job, versionedName(name, v)).final;
      return (await pathExists(candidate)) || (await pathExists(`${candidate}.zip`));
    });
    if (version === undefined)
      return {
        skipRest: true,
        detail: { skipped: "this rule published the resource already and its OnNewInstances is 'ignore'" },
      };
    const paths = outputPaths(deps.storagePath, job, versionedName(name, version));

    const claim = await deps.outputLocks.acquire(paths.final, job.id);
    if (!claim.acquired) {
      return {
        wait: {
          delaySeconds: OUTPUT_BUSY_RECHECK_SECONDS,
          detail: { waitingFor: claim.holder, reason: 'another job is writing the same output' },
        },
      };
    }
    let target = paths.working;
    if (anonymises(job)) {
      if (!deps.stagingPath)
        throw new PermanentError(`rule '${job.ruleId}' anonymises but no staging folder is configured`);
      // An earlier job's half-done `.WORKING` is this output's to clear; the new one is made by anonymise.
      await fs.rm(paths.working, { recursive: true, force: true });
      target = await prepareStaging(deps.stagingPath, job.id);
    } else {
      await prepareWorkingFor(paths);
    }

    // One mkdir per series folder, not per instance.
    const folders = new Map<string, Promise<string>>();
    const folderOf = (seriesId: string) => {
      let folder = folders.get(seriesId);
      if (!folder) {
        folder = (async () => {
          const dir = path.join(target, await deps.naming.seriesFolder(job, seriesTags.get(seriesId) ?? {}));
          await fs.mkdir(dir, { recursive: true });
          return dir;
        })();
        folders.set(seriesId, folder);
      }
      return folder;
    };

    let done = 0;
    let bytes = 0;
    // A lone download may use every slot; several take turns, so none waits for another to end. A
    // small file's open runs beside its request, within the slot, and its write after the slot is
    // freed, so the next request starts while the last body goes to disk; a file waiting for a slot
    // holds no descriptor, however many downloads run.
    const lane = deps.files.lane();
    await forEachLimit(instances, 2 * deps.files.limit, async (instance: OrthancInstance) => {
      const folder = await folderOf(instance.ParentSeries);
      const target = path.join(
        folder,
        await deps.naming.instanceFile(job, instance.MainDicomTags.SOPInstanceUID ?? instance.ID),
      );
      const written =
        instance.FileSize <= WHOLE_FILE_BYTES
          ? await writeWhole(await lane.run(() => openAndGather(target, () => deps.orthanc.instanceFile(instance.ID))))
          : await lane.run(async () => writeStreamed(await deps.orthanc.instanceFile(instance.ID), target));
      if (written !== instance.FileSize) {
        throw new Error(
          `instance ${instance.ID}: received ${written} bytes, Orthanc reports ${instance.FileSize} (connection cut?)`,
        );
      }
      bytes += written;
      done += 1;
      // Each report that is written is a ledger round trip in this worker's slot. The runner writes
      // the first at once and then one every two seconds; the step's start and finish are recorded
      // anyway, so a start at 0 and an end at the total would only delay a study of small files.
      if (done < instances.length) await progress(done, instances.length);
    });
    return {
      instances: done,
      bytes,
      outputPath: paths.final,
      ...(version > 1 ? { detail: { outputVersion: version } } : {}),
    };
  };
}

/**
 * A small file (most MR, every CT slice) is gathered in memory and written with one call: a write
 * stream's set-up per file cost more than the writing. Its file is opened while the request is under
 * way; at most 2 x the share's slots bodies of at most 1 MiB are held per download.
 */
async function openAndGather(target: string, request: () => Promise<Readable>): Promise<GatheredFile> {
  const [opened, body] = await Promise.allSettled([fs.open(target, 'w'), request().then(gather)]);
  if (opened.status === 'rejected') throw opened.reason;
  if (body.status === 'rejected') {
    await opened.value.close();
    throw body.reason;
  }
  return { handle: opened.value, ...body.value };
}

interface GatheredFile {
  handle: fs.FileHandle;
  chunks: Buffer[];
  size: number;
}

/** Writes a gathered body unless it outgrew the whole-file limit (the size check then fails the instance). */
async function writeWhole({ handle, chunks, size }: GatheredFile): Promise<number> {
  try {
    if (size <= WHOLE_FILE_BYTES) await writeAll(handle, chunks);
    return size;
  } finally {
    await handle.close();
  }
}

async function gather(source: Readable): Promise<{ chunks: Buffer[]; size: number }> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).length;
    // More than announced: stop reading, the size check fails the instance.
    if (size > WHOLE_FILE_BYTES) {
      source.destroy();
      break;
    }
  }
  return { chunks, size };
}

/**
 * A large file is streamed: a 1 MiB write buffer lets the stream coalesce the socket's 64 KiB chunks
 * into few writes; it holds its slot until the last byte is written.
 */
async function writeStreamed(source: Readable, target: string): Promise<number> {
  const sink = createWriteStream(target, { highWaterMark: WHOLE_FILE_BYTES });
  await pipeline(source, sink);
  return sink.bytesWritten;
}

async function pathExists(target: string): Promise<boolean> {
  return fs.lstat(target).then(
    () => true,
    () => false,
  );
}
