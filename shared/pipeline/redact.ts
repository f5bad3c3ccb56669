/**
 * PHI out of errors, logs and telemetry (unless AUTOMATION_LOG_PHI=true). A plain (not anonymising)
 * pipeline names its output `<PatientID>-<surname>-EX<StudyID>`, so a filesystem error quoting a
 * path under the storage root quotes the patient; the same error is recorded on the job (API,
 * dashboard), logged and sent to Application Insights. This module is the one place that rewrites
 * such text: an absolute path `<storage>/<rule>/<name>[.zip][.WORKING]/rest` becomes
 * `<job:ID>[.zip][.WORKING]/rest`, the bare output name becomes `<job:ID>`, and the study's known
 * patient values (looked up in Orthanc when a job fails) become `<redacted>`.
 *
 * No value from DICOM becomes a RegExp: values are replaced by plain substring search.
 */
import path from 'node:path';
import type { OrthancClient } from '../orthanc/client';
import { sanitizeComponent } from '../output/sanitize';
import type { Job } from './job';
import type { Logger } from '../vocabulary';
import type { OutputNaming } from './naming';

export const REDACTED = '<redacted>';

/** Values shorter than this are not searched for: "M" or "7" would shred every message. */
const MIN_VALUE_LENGTH = 3;

/** What is known to be PHI for one job's study: its output names and its patient's values. */
export interface KnownPhi {
  names: string[];
  values: string[];
}

export interface RedactionSettings {
  /** ORTHANC_AUTOMATION_STORAGE_PATH: output names (with PHI) are the second component below it. */
  storagePath: string;
  /** AUTOMATION_LOG_PHI: when true nothing is rewritten (a site debugging its own data). */
  logPhi: boolean;
  /** The study's PHI for a job; only called when a job's error is recorded, and allowed to fail. */
  knownPhi?: (job: Job) => Promise<KnownPhi>;
}

export type Redact = (text: string) => string;

export interface Redaction {
  readonly enabled: boolean;
  /** Paths under the storage root and the job's known output name (synchronous, for log lines). */
  paths(job: Pick<Job, 'id' | 'outputPath'>): Redact;
  /** Everything `paths` does, plus the study's patient values (one Orthanc look-up, bounded in time). */
  forJob(job: Job): Promise<Redact>;
  /** Without a job (any log line): output names under the storage root become `<output>`. */
  anywhere: Redact;
}

const KNOWN_PHI_TIMEOUT_MS = 5_000;

/** `.zip`, `.WORKING`, `.REPLACED-<time>` are the layout's, not the patient's: kept for the reader. */
function layoutSuffix(name: string): string {
  return /(?:\.zip)?(?:\.WORKING|\.REPLACED-\d+)?$/.exec(name)?.[0] ?? '';
}

/** Where a path component ends inside a message: a separator, whitespace, or a closing quote. */
function componentEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    const c = text[i];
    if (c === '/' || /\s/.test(c)) return i;
    // Node quotes paths ('...'); an apostrophe inside a name (O'Brien) is followed by more of the name.
    if ((c === "'" || c === '"' || c === '`') && (i + 1 === text.length || /[\s,;:)\]]/.test(text[i + 1]))) return i;
  }
  return text.length;
}

/** Rewrites `<root>/<rule>/<name>…` so that `<name>` (where the PHI is) becomes `placeholder(name)`. */
export function redactOutputPaths(text: string, storagePath: string, placeholder: (name: string) => string): string {
  const prefix = `${path.resolve(storagePath).replace(/\/+$/, '')}/`;
  let out = '';
  let i = 0;
  for (;;) {
    const at = text.indexOf(prefix, i);
    if (at < 0) return out + text.slice(i);
    const ruleEnd = componentEnd(text, at + prefix.length);
    if (text[ruleEnd] !== '/' || ruleEnd === at + prefix.length) {
      // The storage root or a rule folder alone names no patient.
      out += text.slice(i, ruleEnd);
      i = ruleEnd;
      continue;
    }
    const nameEnd = componentEnd(text, ruleEnd + 1);
    const name = text.slice(ruleEnd + 1, nameEnd);
    out += text.slice(i, at) + (name === '' ? '' : placeholder(name));
    i = nameEnd;
  }
}

function replaceAll(text: string, value: string, by: string): string {
  return value.length >= MIN_VALUE_LENGTH ? text.split(value).join(by) : text;
}

/** The spellings a value may take in a message: as stored, normalised, upper/lower case, as a path component. */
function spellings(value: string): string[] {
  const forms = new Set([
    value,
    value.normalize('NFC'),
    value.normalize('NFD'),
    value.toUpperCase(),
    value.toLowerCase(),
    sanitizeComponent(value, ''),
  ]);
  // Longest first, so a value is not half-replaced by one of its own parts.
  return [...forms].filter((f) => f.length >= MIN_VALUE_LENGTH).sort((a, b) => b.length - a.length);
}

export function createRedaction(settings: RedactionSettings): Redaction {
  const identity: Redact = (text) => text;
  const jobPlaceholder = (jobId: string) => (name: string) => `<job:${jobId}>${layoutSuffix(name)}`;

  function paths(job: Pick<Job, 'id' | 'outputPath'>, names: string[] = []): Redact {
    if (settings.logPhi) return identity;
    const known = [...new Set([...(job.outputPath ? [path.basename(job.outputPath)] : []), ...names])].sort(
      (a, b) => b.length - a.length,
    );
    return (text) => {
      let out = redactOutputPaths(text, settings.storagePath, jobPlaceholder(job.id));
      for (const name of known) out = replaceAll(out, name, `<job:${job.id}>`);
      return out;
    };
  }

  return {
    enabled: !settings.logPhi,
    paths: (job) => paths(job),
    async forJob(job) {
      if (settings.logPhi) return identity;
      let phi: KnownPhi = { names: [], values: [] };
      if (settings.knownPhi) {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<KnownPhi>((resolve) => {
          timer = setTimeout(() => resolve({ names: [], values: [] }), KNOWN_PHI_TIMEOUT_MS);
        });
        // Orthanc down is a common reason for a failure; the paths are still rewritten without it.
        phi = await Promise.race([settings.knownPhi(job).catch(() => ({ names: [], values: [] })), timeout]).finally(
          () => clearTimeout(timer),
        );
      }
      const byPath = paths(job, phi.names);
      const values = [...new Set(phi.values.flatMap(spellings))].sort((a, b) => b.length - a.length);
      return (text) => {
        let out = byPath(text);
        for (const value of values) out = replaceAll(out, value, REDACTED);
        return out;
      };
    },
    anywhere: settings.logPhi
      ? identity
      : (text) => redactOutputPaths(text, settings.storagePath, (name) => `<output>${layoutSuffix(name)}`),
  };
}

/** A logger whose every line passes `redact` first. */
export function redactedLogger(log: Logger, redact: Redact): Logger {
  return { info: (m) => log.info(redact(m)), warn: (m) => log.warn(redact(m)), error: (m) => log.error(redact(m)) };
}

/** An error as it may leave the process: the same name, its message and stack rewritten. */
export function redactError(error: unknown, redact: Redact): Error {
  const original = error instanceof Error ? error : new Error(String(error));
  const copy = new Error(redact(original.message));
  copy.name = original.name;
  copy.stack = original.stack === undefined ? undefined : redact(original.stack);
  return copy;
}

/** Patient attributes whose values must never leave in an error (those Orthanc indexes for a study). */
const PATIENT_TAGS = ['PatientID', 'PatientName', 'PatientBirthDate', 'OtherPatientIDs', 'OtherPatientNames'];
const STUDY_TAGS = ['AccessionNumber', 'ReferringPhysicianName', 'RequestingPhysician', 'InstitutionName'];

/** Splits a PN or multi-valued text into the parts that may appear on their own (surname, given name). */
function parts(value: string): string[] {
  return [value, ...value.split(/[\\^=]/)].map((p) => p.trim()).filter((p) => p !== '');
}

/** The study's PHI from Orthanc: its patient values and the output name a plain pipeline gives it. */
export function studyPhiLookup(
  orthanc: Pick<OrthancClient, 'getStudy' | 'getSeries'>,
  naming: Pick<OutputNaming, 'outputName'>,
): (job: Job) => Promise<KnownPhi> {
  return async (job) => {
    const series = job.level === 'Series' ? await orthanc.getSeries(job.resourceId) : undefined;
    const study = await orthanc.getStudy(series ? series.ParentStudy : job.resourceId);
    const values = [
      ...PATIENT_TAGS.map((t) => study.PatientMainDicomTags[t]),
      ...STUDY_TAGS.map((t) => study.MainDicomTags[t]),
    ]
      .filter((v): v is string => typeof v === 'string' && v !== '')
      .flatMap(parts);
    const names = await naming.outputName(job, study, series?.MainDicomTags).then(
      (n) => [n],
      () => [] as string[],
    );
    return { names, values };
  };
}
