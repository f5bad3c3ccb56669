/**
 * The publish step: `NAME.WORKING` becomes `NAME` (and the zip built outside the rule folder becomes
 * `NAME.zip` when the pipeline zips), replacing an earlier result without ever showing a partial one;
 * then the result is handed to UID:GID. A watcher sees each result as a folder moved in or a zip
 * created (shared/output/publish.ts). An earlier result under the same name is replaced only once it
 * has been left alone for the quiet period, so a watcher that took it is not handed a second one
 * mid-way; `OnNewInstances: new-version` avoids replacing altogether (`NAME-v2`, chosen by download).
 * A rule with `Publish.Blob` uploads the zip (shared/blob/publish.ts) from its working copy BEFORE the
 * local publish: once published in the rule folder, a watcher may take it away at once, so a retry
 * could no longer read it. The upload is idempotent and never shows a partial blob; the local result
 * appears only after it succeeded. Safe to repeat after a crash.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { exists, publish, replaceableInMs, type Owner } from '../../output/publish';
import type { BlobPublishResult, BlobTarget } from '../../blob/publish';
import { PermanentError } from '../../vocabulary';
import { jobPaths } from '../naming';
import type { Job } from '../job';
import type { StepHandler } from '../runner';
import type { Cursors } from '../ports';
import { recordPublished } from '../versions';

export interface PublishDeps {
  owner?: Owner;
  /** Uploads a published zip to `Publish.Blob` (AUTOMATION_PUBLISH_BLOB_CONNECTION's account). */
  uploadZip?: (job: Job, target: BlobTarget, zipFile: string, fileName?: string) => Promise<BlobPublishResult>;
  /** AUTOMATION_REPLACE_QUIET_SECONDS: how long an earlier result must have been left alone before it is replaced. */
  replaceQuietSeconds?: number;
  /** Where the version published per rule and resource is recorded (OnNewInstances). */
  cursors?: Cursors;
  now?: () => number;
}

export function publishStep(deps: PublishDeps): StepHandler {
  return async ({ job }) => {
    const paths = jobPaths(job);
    const zips = job.rule.steps.includes('zip');
    const keepFolder = !zips || job.rule.zip?.keepFolder === true;
    const quietMs = (deps.replaceQuietSeconds ?? 0) * 1000;
    const now = deps.now?.() ?? Date.now();
    const pending = [
      ...(zips ? [await replaceableInMs(paths.zipWorking, paths.zip, quietMs, now)] : []),
      ...(keepFolder ? [await replaceableInMs(paths.working, paths.final, quietMs, now)] : []),
    ];
    const waitMs = Math.max(0, ...pending);
    if (waitMs > 0)
      return {
        wait: {
          delaySeconds: Math.ceil(waitMs / 1000),
          detail: {
            reason: 'an earlier result under this name was published recently and may be in the hands of a watcher',
            replaceQuietSeconds: deps.replaceQuietSeconds,
          },
        },
      };
    const outcomes: string[] = [];
    const target = zips ? job.rule.publish?.blob : undefined;
    if (target && !deps.uploadZip)
      throw new PermanentError('the rule publishes to Blob storage, but no uploader is set up');
    const blob = target && deps.uploadZip ? await uploadBeforePublish(deps.uploadZip, job, target) : undefined;
    if (blob) outcomes.push(`blob ${blob.outcome}`);
    if (zips) outcomes.push(`zip ${await publish(paths.zipWorking, paths.zip, deps.owner)}`);
    if (keepFolder) outcomes.push(`folder ${await publish(paths.working, paths.final, deps.owner)}`);
    else await fs.rm(paths.working, { recursive: true, force: true });
    if (deps.cursors) await recordPublished(deps.cursors, job);
    return {
      detail: {
        outcome: outcomes.join(', '),
        ...(zips ? { zip: paths.zip } : {}),
        ...(keepFolder ? { folder: paths.final } : {}),
        ...(blob && 'url' in blob
          ? { blob: { url: blob.url, manifest: blob.manifestUrl, sha256: blob.sha256, bytes: blob.bytes } }
          : {}),
      },
    };
  };
}

/**
 * The upload, from the zip's working copy (or, on a retry after the local publish, the published zip
 * while it is still there). When neither is left, the local publish happened, which only follows a
 * completed upload: nothing to do.
 */
async function uploadBeforePublish(
  uploadZip: NonNullable<PublishDeps['uploadZip']>,
  job: Job,
  target: BlobTarget,
): Promise<BlobPublishResult | { outcome: 'uploaded-earlier' }> {
  const paths = jobPaths(job);
  const fileName = path.basename(paths.zip);
  for (const file of [paths.zipWorking, paths.zip]) {
    if (await exists(file)) return uploadZip(job, target, file, fileName);
  }
  return { outcome: 'uploaded-earlier' };
}
