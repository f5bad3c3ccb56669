/**
 * autorthanc's output layout:
 *   <STORAGE>/<ruleId>/<PatientID>-<PatientName first component>-EX<StudyID>[-SE<SeriesNumber>]
 *     SE<SeriesNumber>-<SeriesDate>-<SeriesInstanceUID>/<SOPInstanceUID>.dcm
 * with `.WORKING` appended until complete. Anonymising pipelines use pseudonymous names instead,
 * so no PHI appears in any path, the `.WORKING` name included.
 */
import { resolveInside, sanitizeComponent } from './sanitize';
import type { ResourceLevel } from '../vocabulary';

export const WORKING_SUFFIX = '.WORKING';

export interface NamingTags {
  level: ResourceLevel;
  PatientID?: string;
  PatientName?: string;
  StudyID?: string;
  StudyDate?: string;
  AccessionNumber?: string;
  Modality?: string;
  SeriesNumber?: string;
  StudyInstanceUID?: string;
}

/** Placeholders an `OutputName` template may use; all values are sanitised. */
export const OUTPUT_NAME_PLACEHOLDERS = [
  'PatientID',
  'PatientName',
  'StudyID',
  'StudyDate',
  'AccessionNumber',
  'Modality',
  'SeriesNumber',
  'StudyInstanceUID',
] as const;

function firstNameComponent(patientName: string | undefined): string {
  return (patientName ?? '').split('^')[0]?.trim() ?? '';
}

/** The result's name inside the rule folder (a folder, or the stem of `<name>.zip`). */
export function outputName(tags: NamingTags, template?: string): string {
  if (template !== undefined && template.trim() !== '') {
    const filled = template.replace(/\{([A-Za-z]+)\}/g, (_match, key: string) => {
      const raw =
        key === 'PatientName'
          ? firstNameComponent(tags.PatientName)
          : (tags as unknown as Record<string, string | undefined>)[key];
      return sanitizeComponent(raw, 'UNKNOWN', 64);
    });
    return sanitizeComponent(filled, 'output', 200);
  }
  const parts = [
    sanitizeComponent(tags.PatientID, 'NOID', 64),
    sanitizeComponent(firstNameComponent(tags.PatientName), 'NONAME', 64),
    `EX${sanitizeComponent(tags.StudyID, '', 32)}`,
  ];
  if (tags.level === 'Series') parts.push(`SE${sanitizeComponent(tags.SeriesNumber, '', 16)}`);
  return parts.join('-');
}

/** Name of an anonymised result: a pseudonym and an opaque study token, never a DICOM identifier. */
export function pseudonymousOutputName(pseudonym: string, studyToken: string, seriesNumber?: string): string {
  const parts = [sanitizeComponent(pseudonym, 'ANON', 64), `ST${sanitizeComponent(studyToken, 'X', 32)}`];
  if (seriesNumber !== undefined) parts.push(`SE${sanitizeComponent(seriesNumber, '', 16)}`);
  return parts.join('-');
}

export function seriesFolderName(series: {
  SeriesNumber?: string;
  SeriesDate?: string;
  SeriesInstanceUID: string;
}): string {
  return `SE${sanitizeComponent(series.SeriesNumber, '', 16)}-${sanitizeComponent(series.SeriesDate, '', 16)}-${sanitizeComponent(series.SeriesInstanceUID, 'NOUID', 64)}`;
}

export function instanceFileName(sopInstanceUid: string): string {
  return `${sanitizeComponent(sopInstanceUid, 'NOUID', 64)}.dcm`;
}

export interface OutputPaths {
  ruleFolder: string;
  final: string;
  working: string;
}

export function outputPaths(storageRoot: string, ruleId: string, name: string): OutputPaths {
  const ruleFolder = resolveInside(storageRoot, sanitizeComponent(ruleId, 'rule'));
  const final = resolveInside(ruleFolder, name);
  return { ruleFolder, final, working: resolveInside(ruleFolder, `${name}${WORKING_SUFFIX}`) };
}
