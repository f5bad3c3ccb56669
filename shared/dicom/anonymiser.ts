/**
 * De-identification per DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile and
 * its options), on dcmjs's raw, tag-keyed dictionary: nothing is dropped by accident (dcmjs's
 * naturalised form silently loses private and unknown tags), every element at every depth meets an
 * explicit decision (decisions.ts: the table, the safe-attribute allow-list, else a fallback by VR),
 * and pixel data is never touched. Replacements are keyed (see pseudonyms.ts), so they are
 * consistent across a study, across runs and across studies of the same patient. Each instance
 * reports what was decided (record.ts), with counts and tags only.
 */
import dcmjs, { type DicomDataset } from 'dcmjs';
import { dateShiftDays, patientPseudonym } from './pseudonyms';
import type { IdentityMapping } from './mapping';
import type { AnonymiseSettings } from './options';
import { TRANSFER_SYNTAX_TAG, writeDicomChunks } from './write';
import { createDecider } from './decisions';
import { readDicom } from './charset';
import { asPart10, DEFLATED_EXPLICIT_LE, EXPLICIT_LE, rewriteMeta } from './part10';
import type { DeidentificationRecord } from './record';
import { identifiersOf } from './identifiers';
import { markDeidentified, PROFILE } from './method';
import { isValidUid } from './uids';
import { parseTagName } from './tag-names';
import { tally, text, walkDataset, type WalkContext, type WalkPolicy } from './walk';

const { DicomMetaDictionary } = dcmjs.data;

const TAG = {
  SOPInstanceUID: '00080018',
  Modality: '00080060',
  PatientID: '00100020',
  BurnedInAnnotation: '00280301',
};
/** The UIDs a caller may rename files and folders after: Study, Series, SOP Instance. */
const NAMING_UIDS = ['0020000D', '0020000E', TAG.SOPInstanceUID];

/**
 * Modalities that commonly burn identifying text into pixels or carry it in a rendered document:
 * ultrasound, secondary capture (screenshots, scanned paper), external/endoscopy/general
 * microscopy photos, slide microscopy (slide labels), "other", and encapsulated documents.
 */
export const BURNED_IN_MODALITIES = new Set(['US', 'IVUS', 'SC', 'XC', 'ES', 'GM', 'SM', 'OT', 'DOC']);

export interface AnonymiseFileOptions {
  /** The syntax a bare dataset is read with, when the caller knows it. */
  transferSyntax?: string;
  /** Parse the whole file with dcmjs, pixels copied (tests compare it with the default path). */
  wholeFile?: boolean;
}

export interface AnonymiserOptions {
  secret: string;
  settings: AnonymiseSettings;
  mapping?: IdentityMapping;
}

/** One instance's share of the de-identification record (record.ts). */
export type InstanceRecord = Pick<DeidentificationRecord, 'counts' | 'fallbacks' | 'warnings' | 'characterSets'>;

export interface AnonymisedInstance {
  /** Undefined when the instance is excluded (burned-in annotation policy `exclude`). */
  output?: Buffer;
  /** The output as written, in parts (see AnonymisedChunks); only from `anonymiseToChunks`. */
  chunks?: Buffer[];
  record?: InstanceRecord;
  sopInstanceUid?: string;
  /**
   * Original → new Study, Series and SOP Instance UIDs of this instance, so a caller can rename
   * files and folders named after them (kept in memory only; never log it).
   */
  uidChanges?: Map<string, string>;
  excluded?: string;
  warnings: string[];
}

function tagOf(reference: string): string {
  const hex = parseTagName(reference)?.hex;
  if (hex === undefined) throw new Error(`'${reference}' is not a DICOM keyword or (gggg,eeee) tag`);
  return hex;
}

/**
 * A parser's or writer's error as it may be shown: dcmjs quotes a value it cannot convert ("Not a
 * number: <value>"), and a value must never reach a job's error, a log or the API (hence also no
 * `cause`: loggers print it).
 */
function reasonOf(error: unknown): string {
  const message = String((error as Error)?.message ?? error);
  if (/^Not a number/i.test(message)) return 'a numeric value (DS/IS) is not a number';
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}

/** A rule's Anonymise settings compiled once: tags resolved, Replace UIDs checked, safe private tags parsed. */
function compilePolicy(secret: string, settings: AnonymiseSettings): WalkPolicy {
  const keep = new Set(settings.Keep.map(tagOf));
  const remove = new Set(settings.Remove.map(tagOf));
  const replace = new Map(Object.entries(settings.Replace).map(([k, v]) => [tagOf(k), v]));
  for (const [tag, value] of replace) {
    const vr = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr;
    if (vr === 'UI' && !isValidUid(value.trim()))
      throw new Error(`Replace (${tag.slice(0, 4)},${tag.slice(4)}): the value is not a valid UID`);
  }
  const safePrivate = settings.SafePrivateAllowList.map((entry) => {
    const m = /^\(?([0-9A-Fa-f]{4}),?(?:xx|XX|[0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\)?$/.exec(entry.Tag)!;
    return { creator: entry.Creator.trim(), group: m[1].toUpperCase(), element: m[2].toUpperCase() };
  });
  return { secret, settings, keep, remove, replace, decider: createDecider(settings, { keep, remove }), safePrivate };
}

/** The file as Part 10, decoded to UTF-8; a reading error never quotes a value. */
function readInput(input: Buffer, name: string, options: AnonymiseFileOptions, warnings: string[]) {
  try {
    const part10 = asPart10(input, options.transferSyntax);
    if (part10.addedHeader)
      warnings.push(`${name}: no complete Part 10 meta header; read as ${part10.addedHeader} and written with one`);
    const decoded = readDicom(part10.buffer, { wholeFile: options.wholeFile });
    warnings.push(...decoded.warnings.map((w) => `${name}: ${w}`));
    return { parsed: decoded.parsed, characterSets: decoded.converted };
  } catch (error) {
    // eslint-disable-next-line preserve-caught-error -- the original error can quote a value (PHI)
    throw new Error(`${name}: not readable as DICOM (${reasonOf(error)})`);
  }
}

/** Why an instance may carry burned-in text, or undefined when nothing suggests it. */
function burnedInReason(dataset: DicomDataset): string | undefined {
  const modality = text(dataset[TAG.Modality])?.toUpperCase();
  if (text(dataset[TAG.BurnedInAnnotation])?.toUpperCase() === 'YES') return 'BurnedInAnnotation is YES';
  if (modality !== undefined && BURNED_IN_MODALITIES.has(modality))
    return `modality ${modality} often carries burned-in text`;
  return undefined;
}

/** Replace also sets attributes the instance lacks (as Orthanc's Replace does), at the top level. */
function addMissingReplacements(policy: WalkPolicy, dataset: DicomDataset, context: WalkContext): void {
  for (const [tag, replacement] of policy.replace) {
    if (dataset[tag] !== undefined) continue;
    const vr = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr ?? 'LO';
    dataset[tag] = { vr, Value: [vr === 'PN' ? { Alphabetic: replacement } : replacement] };
    tally(context, 'rule:Replace', 'replaced');
  }
}

/** The de-identified dataset written with a meta header that names the new instance and our implementation. */
function writeOutput(meta: DicomDataset, dataset: DicomDataset, name: string, context: WalkContext): Buffer[] {
  // dcmjs inflates a deflated dataset on reading but writes it uncompressed: name what is written
  // (Explicit VR Little Endian, the same content), or the output would not parse.
  const syntax = text(meta[TRANSFER_SYNTAX_TAG])?.replace(/\0/g, '').trim() ?? EXPLICIT_LE;
  const rewritten = rewriteMeta(meta, dataset, syntax === DEFLATED_EXPLICIT_LE ? EXPLICIT_LE : syntax);
  tally(context, 'file-meta', 'removed', rewritten.dropped);
  tally(context, 'file-meta', 'replaced', 3);
  try {
    return writeDicomChunks(rewritten.meta, dataset, { allowInvalidVRLength: true });
  } catch (error) {
    // eslint-disable-next-line preserve-caught-error -- the original error can quote a value (PHI)
    throw new Error(`${name}: could not be written after de-identification (${reasonOf(error)})`);
  }
}

/** What made each anonymiser, so a worker thread can make the same one (anonymise-pool.ts). */
const OPTIONS_OF = new WeakMap<object, AnonymiserOptions>();

export function anonymiserOptionsOf(anonymiser: Anonymiser): AnonymiserOptions {
  const options = OPTIONS_OF.get(anonymiser);
  if (!options) throw new Error('not an anonymiser made by createAnonymiser');
  return options;
}

export function createAnonymiser(options: AnonymiserOptions) {
  const { secret, settings } = options;
  const policy = compilePolicy(secret, settings);

  function pseudonymOf(patientId: string): string {
    return settings.Identity === 'mapping' && options.mapping
      ? options.mapping.pseudonymFor(patientId)
      : patientPseudonym(secret, patientId, settings.PseudonymPrefix);
  }

  function contextFor(dataset: DicomDataset, name: string, warnings: string[]): WalkContext {
    const patientId = text(dataset[TAG.PatientID]) ?? '';
    let pseudonym: string;
    try {
      pseudonym = pseudonymOf(patientId);
    } catch (error) {
      throw new Error(`${name}: ${(error as Error).message}`, { cause: error });
    }
    return {
      shiftDays: dateShiftDays(secret, patientId),
      identifiers: identifiersOf(dataset),
      pseudonym,
      counts: {},
      fallbacks: {},
      warnings,
      name,
      malformed: new Set(),
    };
  }

  /**
   * De-identifies one DICOM file (Part 10, or a bare dataset, read with `transferSyntax` when the
   * caller knows it, else with the syntax its first element shows); `name` is only used in
   * messages and must not hold PHI. The output comes as chunks whose concatenation is the file:
   * the pixels are the parsed dataset's own bytes (for a native Pixel Data that ends the file, the
   * input's own: see readDicom), so a large file is not copied to be written; the input must not
   * be changed while the output is in use.
   */
  function anonymiseToChunks(
    input: Buffer,
    name: string,
    options: AnonymiseFileOptions = {},
  ): Omit<AnonymisedInstance, 'output'> {
    const warnings: string[] = [];
    const { parsed, characterSets } = readInput(input, name, options, warnings);
    const dataset = parsed.dict;
    const burnedIn = burnedInReason(dataset);
    if (burnedIn) {
      if (settings.BurnedInAnnotation === 'fail')
        throw new Error(`${name}: ${burnedIn}; the rule's BurnedInAnnotation policy is "fail"`);
      if (settings.BurnedInAnnotation === 'exclude') return { excluded: `${name}: ${burnedIn}`, warnings };
      warnings.push(`${name}: ${burnedIn}; kept (policy "warn"): pixels were not cleaned`);
    }
    const originalUids = NAMING_UIDS.map((t) => text(dataset[t])?.trim());
    const context = contextFor(dataset, name, warnings);
    walkDataset(policy, dataset, context);
    addMissingReplacements(policy, dataset, context);
    markDeidentified(dataset, settings);
    const uidChanges = new Map<string, string>();
    NAMING_UIDS.forEach((t, i) => {
      const now = text(dataset[t])?.trim();
      const was = originalUids[i];
      if (was && now && was !== now) uidChanges.set(was, now);
    });
    const chunks = writeOutput(parsed.meta, dataset, name, context);
    return {
      chunks,
      sopInstanceUid: text(dataset[TAG.SOPInstanceUID]),
      uidChanges,
      warnings,
      record: {
        counts: context.counts,
        fallbacks: context.fallbacks,
        warnings,
        characterSets: Object.fromEntries(characterSets.map((c) => [c, 1])),
      },
    };
  }

  const anonymiser = {
    settings,
    profile: PROFILE,
    pseudonymOf,
    anonymiseToChunks,
    /** anonymiseToChunks with the output as one buffer. */
    anonymiseBuffer(input: Buffer, name: string, options: AnonymiseFileOptions = {}): AnonymisedInstance {
      const { chunks, ...rest } = anonymiseToChunks(input, name, options);
      return chunks ? { ...rest, output: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks) } : rest;
    },
  };
  OPTIONS_OF.set(anonymiser, options);
  return anonymiser;
}

export type Anonymiser = ReturnType<typeof createAnonymiser>;
