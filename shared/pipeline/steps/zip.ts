/**
 * The zip step: the job's working folder streamed, with a manifest, into `.<job id>.zip.WORKING` in
 * the storage root (outside every rule folder); the publish step renames it into the rule folder as
 * `<name>.zip` (never a partial zip under the final name, and a file *created* there for a watcher
 * such as hurahura, which ignores files renamed inside the folder) and keeps or removes the folder as
 * the rule says.
 */
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { zipFolder } from '../../archive/zip';
import { jobPaths } from '../naming';
import type { Job } from '../job';
import type { StepHandler } from '../runner';

/**
 * DEIDENTIFICATION.json for an anonymising job: the anonymise step's record (counts per basis of
 * decision, no original value) with the job's anonymise warnings.
 */
export function deidentificationDocument(job: Job): string | undefined {
  const step = job.steps.find((s) => s.name === 'anonymise');
  const record = step?.detail?.deidentification as Record<string, unknown> | undefined;
  if (!record) return undefined;
  const warnings = job.warnings.filter((w) => w.startsWith('anonymise: ')).map((w) => w.slice('anonymise: '.length));
  const more = job.warningsOverflow !== undefined || warnings.length < Number(record.warnings ?? 0);
  return `${JSON.stringify({ ...record, warnings, ...(more ? { moreWarnings: 'the job record holds further warnings' } : {}) }, null, 2)}\n`;
}

export function zipStep(): StepHandler {
  return async ({ job, progress, log }) => {
    const paths = jobPaths(job);
    await fs.rm(paths.zipWorking, { force: true });
    const deidentification = deidentificationDocument(job);
    const extras = deidentification ? { 'DEIDENTIFICATION.json': deidentification } : undefined;
    const manifest = await zipFolder(paths.working, paths.zipWorking, {
      level: job.rule.zip?.level ?? 1,
      name: path.basename(paths.final),
      progress,
      extras,
      log,
    });
    const size = (await fs.stat(paths.zipWorking)).size;
    return {
      instances: manifest.totals.files,
      bytes: size,
      detail: {
        zipBytes: size,
        contentBytes: manifest.totals.bytes,
        series: manifest.series,
        level: job.rule.zip?.level ?? 1,
      },
    };
  };
}
