/**
 * The publish step: `NAME.WORKING` becomes `NAME` (and `NAME.zip.WORKING` becomes `NAME.zip` when the
 * pipeline zips), replacing an earlier result without ever showing a partial one; then the result is
 * handed to UID:GID. Safe to repeat after a crash.
 */
import { promises as fs } from 'node:fs';
import { publish, type Owner } from '../../output/publish';
import { jobPaths } from '../naming';
import type { StepHandler } from '../runner';

export interface PublishDeps {
  owner?: Owner;
}

export function publishStep(deps: PublishDeps): StepHandler {
  return async ({ job }) => {
    const paths = jobPaths(job);
    const zips = job.rule.steps.includes('zip');
    const keepFolder = !zips || job.rule.zip?.keepFolder === true;
    const outcomes: string[] = [];
    if (zips) outcomes.push(`zip ${await publish(paths.zipWorking, paths.zip, deps.owner)}`);
    if (keepFolder) outcomes.push(`folder ${await publish(paths.working, paths.final, deps.owner)}`);
    else await fs.rm(paths.working, { recursive: true, force: true });
    return {
      detail: {
        outcome: outcomes.join(', '),
        ...(zips ? { zip: paths.zip } : {}),
        ...(keepFolder ? { folder: paths.final } : {}),
      },
    };
  };
}
