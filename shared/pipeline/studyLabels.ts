/**
 * Marks each study a rule processed with the label `automation-<rule>`, so users of Orthanc Explorer 2
 * (and /tools/find's `Labels`) see what was done. Only on an Orthanc with labels (1.12.0+, reported by
 * /system); on 1.10 nothing is written. A label is a courtesy: failing to write one is logged and never
 * fails or delays the job.
 */
import { createHash } from 'node:crypto';
import type { OrthancClient } from '../orthanc/client';
import type { Logger } from '../vocabulary';
import { describe } from '../vocabulary';
import type { Job } from './job';

export const LABEL_PREFIX = 'automation-';
/** Orthanc's limit (ServerToolbox::IsValidLabel): 1 to 64 of [A-Za-z0-9_-]. */
const MAX_LABEL_LENGTH = 64;
const NOT_IN_LABELS = /[^A-Za-z0-9_-]/g;

/**
 * The label of a rule: `automation-<rule id>`. A rule id with other characters, or too long, gets them
 * replaced and a short hash of the real id appended, so two rules never share a label by accident.
 */
export function ruleLabel(ruleId: string): string {
  const cleaned = ruleId.replace(NOT_IN_LABELS, '_');
  const label = `${LABEL_PREFIX}${cleaned}`;
  if (cleaned === ruleId && label.length <= MAX_LABEL_LENGTH) return label;
  const hash = createHash('sha256').update(ruleId, 'utf8').digest('hex').slice(0, 8);
  return `${label.slice(0, MAX_LABEL_LENGTH - hash.length - 1)}-${hash}`;
}

export interface StudyLabelDeps {
  orthanc: Pick<OrthancClient, 'capabilities' | 'addLabel' | 'getSeries'>;
  log: Logger;
}

/** Labels the study of a job that succeeded; resolves 'labelled', 'unsupported' (Orthanc without labels), 'skipped' or 'failed'. */
export async function labelProcessedStudy(
  deps: StudyLabelDeps,
  job: Pick<Job, 'id' | 'ruleId' | 'status' | 'level' | 'resourceId'>,
): Promise<'labelled' | 'unsupported' | 'skipped' | 'failed'> {
  if (job.status !== 'succeeded') return 'skipped';
  try {
    if (!(await deps.orthanc.capabilities()).labels) return 'unsupported';
    // A series rule processed part of a study: the study carries the label, as Explorer 2 lists studies.
    const studyId =
      job.level === 'Series' ? (await deps.orthanc.getSeries(job.resourceId)).ParentStudy : job.resourceId;
    await deps.orthanc.addLabel('studies', studyId, ruleLabel(job.ruleId));
    return 'labelled';
  } catch (error) {
    deps.log.warn(`Job ${job.id}: label ${ruleLabel(job.ruleId)} not added in Orthanc: ${describe(error)}`);
    return 'failed';
  }
}
