/**
 * Late arrivals (`OnNewInstances`). A resource handled before gets a new job when instances arrive
 * later (a new LastUpdate). Per rule and resource, a named counter (the Cursors port, beside the change
 * feed's cursor) holds the highest version published: `ignore` makes no job once it is set,
 * `new-version` publishes `NAME-v<n+1>` beside `NAME`. The filesystem cannot tell: a watcher such as
 * hurahura moves each result out of the rule folder once it has taken it.
 */
import { createHash } from 'node:crypto';
import type { Cursors } from './ports';
import type { Job } from './job';
import type { ResourceLevel } from '../vocabulary';

export type OnNewInstancesPolicy = 'replace' | 'ignore' | 'new-version';

/** The counter's name: a digest, so rule ids with any character make a valid Table row key. */
export function versionCounter(ruleId: string, level: ResourceLevel, resourceId: string): string {
  const digest = createHash('sha256').update([ruleId, level, resourceId].join('\u0000')).digest('hex');
  return `published-${digest.slice(0, 40)}`;
}

export function policyOf(job: Pick<Job, 'rule'>): OnNewInstancesPolicy {
  return job.rule.onNewInstances ?? 'replace';
}

/** The highest version published for the job's rule and resource (0: none yet). */
export async function publishedVersion(
  cursors: Pick<Cursors, 'get'>,
  key: { ruleId: string; level: ResourceLevel; resourceId: string },
): Promise<number> {
  return (await cursors.get(versionCounter(key.ruleId, key.level, key.resourceId))) ?? 0;
}

/** Records a published version (never lowers the counter, so a repeated publish step is harmless). */
export async function recordPublished(cursors: Cursors, job: Job): Promise<void> {
  const name = versionCounter(job.ruleId, job.level, job.resourceId);
  const version = outputVersionOf(job);
  if (((await cursors.get(name)) ?? 0) < version) await cursors.set(name, version);
}

/** `NAME` for the first version, `NAME-v2`, `NAME-v3`... after it. */
export function versionedName(name: string, version: number): string {
  return version <= 1 ? name : `${name}-v${version}`;
}

/** The version the download step chose for the job (1 unless the rule publishes new versions). */
export function outputVersionOf(job: Pick<Job, 'steps'>): number {
  const version = job.steps.find((s) => s.name === 'download')?.detail?.outputVersion;
  return typeof version === 'number' && version >= 1 ? version : 1;
}

/**
 * The version a job publishes, chosen by its download step: 1 under 'replace' (and for an operator's
 * run of an 'ignore' rule); under 'new-version' the first after the counter that no entry in the rule
 * folder already has (`taken`); undefined under 'ignore' once the resource has been published (the job
 * then publishes nothing). Two jobs choosing at once pick the same name and meet at its output lock;
 * the second chooses again once the first has ended.
 */
export async function chooseVersion(
  cursors: Pick<Cursors, 'get'> | undefined,
  job: Job,
  taken: (version: number) => Promise<boolean>,
): Promise<number | undefined> {
  const policy = policyOf(job);
  if (policy === 'replace' || !cursors) return 1;
  const published = await publishedVersion(cursors, job);
  if (policy === 'ignore') return published > 0 && !job.forced ? undefined : 1;
  let version = published + 1;
  while (await taken(version)) version += 1;
  return version;
}
