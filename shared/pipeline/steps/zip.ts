/**
 * The zip step: the job's working folder streamed into `<name>.zip.WORKING` with a manifest; the
 * publish step renames it to `<name>.zip` (never a partial zip under the final name) and keeps or
 * removes the folder as the rule says.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { zipFolder } from '../../archive/zip';
import { jobPaths } from '../naming';
import type { StepHandler } from '../runner';

export function zipStep(): StepHandler {
  return async ({ job, progress }) => {
    const paths = jobPaths(job);
    await fs.rm(paths.zipWorking, { force: true });
    const manifest = await zipFolder(paths.working, paths.zipWorking, { level: job.rule.zip?.level ?? 1, name: path.basename(paths.final), progress });
    const size = (await fs.stat(paths.zipWorking)).size;
    return { instances: manifest.totals.files, bytes: size, detail: { zipBytes: size, contentBytes: manifest.totals.bytes, series: manifest.series, level: job.rule.zip?.level ?? 1 } };
  };
}
