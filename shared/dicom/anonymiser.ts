/**
 * De-identification per DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile and
 * its options), on dcmjs's raw, tag-keyed dictionary: nothing is dropped by accident (dcmjs's
 * naturalised form silently loses private and unknown tags), every element at every depth meets an
 * explicit decision (decisions.ts: the table, the safe-attribute allow-list, else a fallback by VR),
 * and pixel data is never touched. Replacements are keyed (see pseudonyms.ts), so they are
 * consistent across a study, across runs and across studies of the same patient. Each instance
 * reports what was decided (record.ts), with counts and tags only.
 */
import dcmjs, { type DicomDataset, type DicomElement } from 'dcmjs';
import { anonymisedUid, dateShiftDays, patientPseudonym } from './pseudonyms';
import type { IdentityMapping } from './mapping';
import type { AnonymiseSettings } from './options';
import { PIXEL_DATA, TRANSFER_SYNTAX_TAG, writeDicomFile } from './write';
import { isPrivate, TABLE_EDITION, type Action } from './profile';
import { createDecider, SAFE_ATTRIBUTE_COUNT, type Decision } from './decisions';
import { readDicom } from './charset';
import { asPart10, DEFLATED_EXPLICIT_LE, EXPLICIT_LE, rewriteMeta } from './part10';
import type { Counts, DeidentificationRecord, Outcome } from './record';
import { firstText } from './values';

const { DicomMetaDictionary } = dcmjs.data;

const TAG = {
  SpecificCharacterSet: '00080005',
  SOPInstanceUID: '00080018',
  Modality: '00080060',
  PatientName: '00100010',
  PatientID: '00100020',
  BurnedInAnnotation: '00280301',
  PatientIdentityRemoved: '00120062',
  DeidentificationMethod: '00120063',
  DeidentificationMethodCodeSequence: '00120064',
  LongitudinalTemporalInformationModified: '00280303',
};

/**
 * Modalities that commonly burn identifying text into pixels or carry it in a rendered document:
 * ultrasound, secondary capture (screenshots, scanned paper), external/endoscopy/general
 * microscopy photos, slide microscopy (slide labels), "other", and encapsulated documents.
 */
export const BURNED_IN_MODALITIES = new Set(['US', 'IVUS', 'SC', 'XC', 'ES', 'GM', 'SM', 'OT', 'DOC']);

/** Free-text VRs emptied under Clean Descriptors (see applyAction). */
const FREE_TEXT_VRS = new Set(['ST', 'LT', 'UT']);

/** Registered DICOM UIDs (PS3.6 Annex A: transfer syntaxes, SOP classes, well-known instances): never replaced. */
export function isWellKnownUid(uid: string): boolean {
  return uid.trim().startsWith('1.2.840.10008.');
}

/** PS3.5 9.1: digits and dots, at most 64 bytes (leading zeros are tolerated, as in many real files). */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(uid);
}

/** Where the de-identification came from, in every output file and record. */
export const PROFILE = { table: `PS3.15 ${TABLE_EDITION} Table E.1-1`, safeAttributes: SAFE_ATTRIBUTE_COUNT };

const KEYWORDS = new Map(
  Object.values(DicomMetaDictionary.nameMap).map((e) => [e.tag.replace(/[(),]/g, '').toUpperCase(), e.name]),
);

/** CID 7050 De-identification Method codes (PS3.16). */
const METHOD_CODES: Array<[string, string, (o: AnonymiseSettings) => boolean]> = [
  ['113100', 'Basic Application Confidentiality Profile', () => true],
  ['113105', 'Clean Descriptors Option', (o) => o.CleanDescriptors],
  ['113106', 'Retain Longitudinal Temporal Information Full Dates Option', (o) => o.RetainLongitudinal === 'full'],
  [
    '113107',
    'Retain Longitudinal Temporal Information Modified Dates Option',
    (o) => o.RetainLongitudinal === 'shifted',
  ],
  ['113108', 'Retain Patient Characteristics Option', (o) => o.RetainPatientCharacteristics],
  ['113109', 'Retain Device Identity Option', (o) => o.RetainDeviceIdentity],
  ['113111', 'Retain Safe Private Option', (o) => o.RetainSafePrivate],
  ['113112', 'Retain Institution Identity Option', (o) => o.RetainInstitutionIdentity],
];

/** Non-zero-length dummies (action D) that carry no information. */
export function dummyValue(vr: string, secret: string): unknown[] {
  switch (vr) {
    case 'DA':
      return ['19000101'];
    case 'TM':
      return ['000000'];
    case 'DT':
      return ['19000101000000'];
    case 'AS':
      return ['000Y'];
    case 'DS':
    case 'IS':
      return ['0'];
    case 'UI':
      return [anonymisedUid(secret, 'dummy')];
    case 'PN':
      return [{ Alphabetic: 'ANONYMIZED' }];
    case 'US':
    case 'SS':
    case 'UL':
    case 'SL':
    case 'FL':
    case 'FD':
    case 'UV':
    case 'SV':
      return [0];
    case 'SQ':
    case 'OB':
    case 'OW':
    case 'OF':
    case 'OD':
    case 'OL':
    case 'OV':
    case 'UN':
      return [];
    default:
      return ['ANONYMIZED'];
  }
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
  const hex = /^\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?$/.exec(reference.trim());
  if (hex) return `${hex[1]}${hex[2]}`.toUpperCase();
  const entry = DicomMetaDictionary.nameMap[reference.trim()];
  if (!entry) throw new Error(`'${reference}' is not a DICOM keyword or (gggg,eeee) tag`);
  return entry.tag.replace(/[(),]/g, '').toUpperCase();
}

function text(element: DicomElement | undefined): string | undefined {
  const v = element?.Value?.[0];
  return v === undefined || v === null ? undefined : firstText(element);
}

function set(element: DicomElement, value: unknown[]): void {
  element.Value = value;
  delete element._rawValue;
}

/** Identifiers cut out of descriptors under Clean Descriptors: at most this many, each at most this long. */
const MAX_IDENTIFIERS = 64;
const MAX_IDENTIFIER_LENGTH = 64;

/** Every occurrence of `needle` in `text`, compared in lower case, replaced by `by`. */
export function replaceInsensitive(text: string, needle: string, by: string): string {
  const haystack = text.toLowerCase();
  const target = needle.toLowerCase();
  // Lower-casing can change a string's length (e.g. U+0130): then positions would not line up, and
  // an exact-case search is the safe fallback.
  const exact = haystack.length !== text.length || target.length !== needle.length;
  const [inText, find] = exact ? [text, needle] : [haystack, target];
  if (find === '') return text;
  let out = '';
  let from = 0;
  for (let at = inText.indexOf(find); at !== -1; at = inText.indexOf(find, from)) {
    out += text.slice(from, at) + by;
    from = at + find.length;
  }
  return out + text.slice(from);
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

function shiftDate(value: string, days: number): string {
  const match = /^(\d{4})(\d{2})(\d{2})(.*)$/.exec(value.trim());
  // A value that is not a full date (a year-only DT, an old "2024-01-31") cannot be shifted: emptied.
  if (!match) return '';
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) - days * 86_400_000);
  const out = `${date.getUTCFullYear().toString().padStart(4, '0')}${String(date.getUTCMonth() + 1).padStart(2, '0')}${String(date.getUTCDate()).padStart(2, '0')}`;
  return `${out}${match[4]}`;
}

export function createAnonymiser(options: AnonymiserOptions) {
  const { secret, settings } = options;
  const keep = new Set(settings.Keep.map(tagOf));
  const remove = new Set(settings.Remove.map(tagOf));
  const replace = new Map(Object.entries(settings.Replace).map(([k, v]) => [tagOf(k), v]));
  for (const [tag, value] of replace) {
    const vr = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr;
    if (vr === 'UI' && !isValidUid(value.trim()))
      throw new Error(`Replace (${tag.slice(0, 4)},${tag.slice(4)}): the value is not a valid UID`);
  }
  const decider = createDecider(settings, { keep, remove });
  const safePrivate = settings.SafePrivateAllowList.map((entry) => {
    const m = /^\(?([0-9A-Fa-f]{4}),?(?:xx|XX|[0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\)?$/.exec(entry.Tag)!;
    return { creator: entry.Creator.trim(), group: m[1].toUpperCase(), element: m[2].toUpperCase() };
  });

  function pseudonymOf(patientId: string): string {
    return settings.Identity === 'mapping' && options.mapping
      ? options.mapping.pseudonymFor(patientId)
      : patientPseudonym(secret, patientId, settings.PseudonymPrefix);
  }

  function isSafePrivate(tag: string, creators: Map<string, string>): boolean {
    if (!settings.RetainSafePrivate) return false;
    const group = tag.slice(0, 4);
    const elementLow = parseInt(tag.slice(4), 16);
    if (elementLow < 0x1000) return false; // creators are kept with the first element they reserve
    const block = (elementLow >> 8).toString(16).toUpperCase().padStart(2, '0');
    const creator = creators.get(`${group}00${block}`);
    return safePrivate.some(
      (s) => s.group === group && s.element === tag.slice(6).toUpperCase() && s.creator === creator,
    );
  }

  /** Identifier strings of this patient, removed from free text kept under Clean Descriptors. */
  function identifiersOf(dataset: DicomDataset): string[] {
    const values = [
      TAG.PatientName,
      TAG.PatientID,
      '00101000',
      '00101001',
      '00101060',
      '00100030',
      '00080050',
      '00080090',
      '00200010',
    ]
      .flatMap((t) =>
        (dataset[t]?.Value ?? []).map((v) =>
          v && typeof v === 'object' && 'Alphabetic' in v
            ? String((v as { Alphabetic?: string }).Alphabetic ?? '')
            : String(v),
        ),
      )
      .filter((v) => v.trim() !== '');
    const birth = /^(\d{4})(\d{2})(\d{2})$/.exec(text(dataset['00100030'])?.trim() ?? '');
    if (birth)
      values.push(
        `${birth[1]}-${birth[2]}-${birth[3]}`,
        `${birth[3]}.${birth[2]}.${birth[1]}`,
        `${birth[3]}/${birth[2]}/${birth[1]}`,
        `${birth[2]}/${birth[3]}/${birth[1]}`,
      );
    const parts = values
      .flatMap((v) => [v, ...v.split(/[\^\s=,]+/)])
      .map((p) => p.trim())
      .filter((p) => p.length >= 2 && p.length <= MAX_IDENTIFIER_LENGTH);
    // Longest first, so a whole name goes before its parts; bounded, so a 16 KB name of 4,000
    // components costs 64 searches per descriptor, not 4,000.
    return [...new Set(parts)].sort((a, b) => b.length - a.length).slice(0, MAX_IDENTIFIERS);
  }

  /**
   * The value with every identifier replaced by `X`, case-insensitively, by plain search: a value
   * from the file never becomes a RegExp (a long one made RegExp compilation overflow the stack).
   */
  function clean(value: string, identifiers: string[]): string {
    let out = value;
    for (const id of identifiers) out = replaceInsensitive(out, id, 'X');
    return out;
  }

  interface Context {
    shiftDays: number;
    identifiers: string[];
    pseudonym: string;
    counts: Counts;
    fallbacks: Record<string, number>;
    warnings: string[];
    name: string;
    /** Tags whose malformed UIDs were already reported for this instance. */
    malformed: Set<string>;
  }

  function tally(context: Context, basis: string, outcome: Outcome, n = 1): void {
    const outcomes = (context.counts[basis] ??= {});
    outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
  }

  /**
   * A UID value as it leaves. dcmjs drops every character but digits and dots when it reads a UI
   * value, so the raw value tells whether the file's was malformed (garbage, spaces, several UIDs
   * run together). Under U everything but a well-formed registered UID becomes a keyed 2.25 UID;
   * under K a well-formed value stays, a malformed one only when what is left is a registered UID.
   */
  function outgoingUid(value: unknown, raw: unknown, tag: string, context: Context, remap: boolean): unknown {
    if (typeof value !== 'string') return value;
    const uid = value.replace(/\0/g, '').trim();
    if (uid === '') return uid;
    const original = typeof raw === 'string' ? raw.replace(/[\0 ]+$/, '').trim() : uid;
    const malformed = original !== uid || !isValidUid(uid);
    if (malformed && !context.malformed.has(tag)) {
      context.malformed.add(tag);
      context.warnings.push(
        `${context.name}: a malformed UID in (${tag.slice(0, 4)},${tag.slice(4)}) was replaced by a valid one`,
      );
    }
    const registered = isWellKnownUid(uid) && isValidUid(uid);
    if (registered && !(remap && malformed)) return uid;
    if (!remap && !malformed) return uid;
    return anonymisedUid(secret, uid);
  }

  function outgoingUids(
    element: DicomElement,
    tag: string,
    context: Context,
    remap: boolean,
  ): { before: unknown[]; after: unknown[] } {
    const before = element.Value ?? [];
    const raws = Array.isArray(element._rawValue) ? element._rawValue : [];
    return { before, after: before.map((v, i) => outgoingUid(v, raws[i], tag, context, remap)) };
  }

  function processDataset(dataset: DicomDataset, context: Context): void {
    const creators = new Map<string, string>();
    for (const [tag, element] of Object.entries(dataset)) {
      const upper = tag.toUpperCase();
      if (isPrivate(upper) && parseInt(upper.slice(4), 16) >= 0x10 && parseInt(upper.slice(4), 16) <= 0xff)
        creators.set(upper, text(element) ?? '');
    }
    const keptBlocks = new Set<string>();
    for (const tag of Object.keys(dataset)) {
      const upper = tag.toUpperCase();
      const element = dataset[tag];
      if (upper === PIXEL_DATA) {
        tally(context, 'safe-list', 'kept');
        continue;
      }
      if (isPrivate(upper)) {
        const low = parseInt(upper.slice(4), 16);
        if (low >= 0x10 && low <= 0xff) continue; // decided after the elements of its block
        const kept = keep.has(upper) ? 'rule:Keep' : isSafePrivate(upper, creators) ? 'private:safe' : undefined;
        if (kept) {
          keptBlocks.add(`${upper.slice(0, 4)}00${upper.slice(4, 6)}`);
          if (element.vr === 'UI') {
            // Kept as the rule says, but still a valid UID when written.
            const { before, after } = outgoingUids(element, upper, context, false);
            if (after.some((v, i) => v !== before[i]) || context.malformed.has(upper)) set(element, after);
          }
          tally(context, kept, 'kept');
          if (element.vr === 'SQ')
            for (const item of (element.Value ?? []) as DicomDataset[]) processDataset(item, context);
        } else {
          delete dataset[tag];
          tally(context, 'private', 'removed');
        }
        continue;
      }
      if (remove.has(upper)) {
        delete dataset[tag];
        tally(context, 'rule:Remove', 'removed');
        continue;
      }
      if (replace.has(upper)) {
        set(element, [element.vr === 'PN' ? { Alphabetic: replace.get(upper)! } : replace.get(upper)!]);
        tally(context, 'rule:Replace', 'replaced');
        continue;
      }
      if (upper === TAG.PatientID || upper === TAG.PatientName) {
        set(element, [upper === TAG.PatientID ? context.pseudonym : { Alphabetic: context.pseudonym }]);
        tally(context, 'identity', 'replaced');
        continue;
      }
      if (upper === TAG.SpecificCharacterSet) {
        // Every string is written as UTF-8 (the top level's is set again in record()).
        set(element, ['ISO_IR 192']);
        tally(context, 'charset', 'replaced');
        continue;
      }
      let decision = decider.decide(upper, element.vr);
      // A UN value is opaque bytes (or, inside a UN-encoded sequence that dcmjs parsed as explicit
      // VR, garbage): nothing can be remapped or vetted in it, so only actions that drop the value
      // stand, and a rule's Keep.
      if (
        element.vr === 'UN' &&
        decision.basis !== 'rule:Keep' &&
        (decision.action === 'K' || decision.action === 'U' || decision.action === 'C')
      )
        decision = { action: 'X', basis: 'vr:UN' };
      // Sequences that fall back are kept (their items are decided one by one): not worth a review.
      if ((decision.basis.startsWith('vr:') && decision.basis !== 'vr:SQ') || decision.basis === 'unknown-public') {
        const where = `(${upper.slice(0, 4)},${upper.slice(4)}) ${KEYWORDS.get(upper) ?? 'unknown'}`;
        context.fallbacks[where] = (context.fallbacks[where] ?? 0) + 1;
      }
      applyAction(dataset, tag, element, decision, context);
    }
    for (const creator of creators.keys()) {
      if (keptBlocks.has(creator)) {
        tally(context, 'private:creator', 'kept');
      } else {
        delete dataset[Object.keys(dataset).find((t) => t.toUpperCase() === creator)!];
        tally(context, 'private:creator', 'removed');
      }
    }
  }

  function applyAction(
    dataset: DicomDataset,
    tag: string,
    element: DicomElement,
    decision: Decision,
    context: Context,
  ): void {
    const { basis } = decision;
    const action: Action = decision.action;
    const upper = tag.toUpperCase();
    switch (action) {
      case 'X':
        delete dataset[tag];
        tally(context, basis, 'removed');
        return;
      case 'Z':
        set(element, []);
        tally(context, basis, 'emptied');
        return;
      case 'D':
        set(element, dummyValue(element.vr, secret));
        tally(context, basis, element.vr === 'SQ' ? 'emptied' : 'dummied');
        return;
      case 'U': {
        if (element.vr === 'SQ') break;
        if ((element.Value ?? []).some((v) => typeof v !== 'string')) {
          // Not text (a UI read as bytes): it cannot be remapped, so it goes.
          delete dataset[tag];
          tally(context, basis, 'removed');
          return;
        }
        const { before, after } = outgoingUids(element, upper, context, true);
        set(element, after);
        tally(context, basis, after.some((v, i) => v !== before[i]) ? 'remapped' : 'kept');
        return;
      }
      case 'C':
        // Dates under Retain Longitudinal with Modified Dates move by the patient's offset; times stay.
        if (element.vr === 'DA' || element.vr === 'DT') {
          const shifted = settings.RetainLongitudinal === 'shifted';
          set(
            element,
            shifted
              ? (element.Value ?? []).map((v) => (typeof v === 'string' ? shiftDate(v, context.shiftDays) : v))
              : [],
          );
          tally(context, basis, shifted ? 'shifted' : 'emptied');
          return;
        }
        if (element.vr === 'SQ') break;
        if (element.vr === 'TM') {
          tally(context, basis, 'kept');
          return;
        }
        // Narrative text (comments, histories, notes) cannot be cleaned reliably: it is emptied.
        if (FREE_TEXT_VRS.has(element.vr)) {
          set(element, []);
          tally(context, basis, 'emptied');
          return;
        }
        // Short descriptors (protocol, series, study descriptions) are kept with this patient's own
        // identifiers (name parts, IDs, accession, birth date) cut out.
        set(
          element,
          (element.Value ?? []).map((v) =>
            typeof v === 'string'
              ? clean(v, context.identifiers)
              : typeof v === 'object' && v && 'Alphabetic' in v
                ? { Alphabetic: clean(String((v as { Alphabetic: string }).Alphabetic), context.identifiers) }
                : v,
          ),
        );
        tally(context, basis, 'cleaned');
        return;
      case 'K':
        if (element.vr === 'UI') {
          // Kept UIDs (SOP classes, a rule's Keep) must still be valid UIDs.
          const { before, after } = outgoingUids(element, upper, context, false);
          if (after.some((v, i) => v !== before[i]) || context.malformed.has(upper)) {
            set(element, after);
            tally(context, basis, 'remapped');
            return;
          }
        }
        break;
    }
    tally(context, basis, 'kept');
    if (element.vr === 'SQ') for (const item of (element.Value ?? []) as DicomDataset[]) processDataset(item, context);
  }

  function record(dataset: DicomDataset): void {
    const codes = METHOD_CODES.filter(([, , applies]) => applies(settings));
    dataset[TAG.PatientIdentityRemoved] = { vr: 'CS', Value: ['YES'] };
    // LO is limited to 64 characters a value, so the method is told in three values.
    dataset[TAG.DeidentificationMethod] = {
      vr: 'LO',
      Value: [
        `autorthanc-functions PS3.15 E.1-1 ${codes.map(([code]) => code).join(' ')}`.slice(0, 64),
        PROFILE.table,
        `allow-list: safe-attributes v1 (${SAFE_ATTRIBUTE_COUNT})`,
      ],
    };
    dataset[TAG.DeidentificationMethodCodeSequence] = {
      vr: 'SQ',
      Value: codes.map(([code, meaning]) => ({
        '00080100': { vr: 'SH', Value: [code] },
        '00080102': { vr: 'SH', Value: ['DCM'] },
        '00080104': { vr: 'LO', Value: [meaning] },
      })),
    };
    dataset[TAG.LongitudinalTemporalInformationModified] = {
      vr: 'CS',
      Value: [
        settings.RetainLongitudinal === 'full'
          ? 'UNMODIFIED'
          : settings.RetainLongitudinal === 'shifted'
            ? 'MODIFIED'
            : 'REMOVED',
      ],
    };
    // dcmjs writes every string as UTF-8: declare it, whatever the input said.
    dataset[TAG.SpecificCharacterSet] = { vr: 'CS', Value: ['ISO_IR 192'] };
  }

  return {
    settings,
    profile: PROFILE,
    pseudonymOf,
    /**
     * De-identifies one DICOM file (Part 10, or a bare dataset, read with `transferSyntax` when the
     * caller knows it, else with the syntax its first element shows); `name` is only used in
     * messages and must not hold PHI.
     */
    anonymiseBuffer(input: Buffer, name: string, options: { transferSyntax?: string } = {}): AnonymisedInstance {
      const warnings: string[] = [];
      let parsed;
      let characterSets: string[];
      try {
        const part10 = asPart10(input, options.transferSyntax);
        if (part10.addedHeader)
          warnings.push(`${name}: no complete Part 10 meta header; read as ${part10.addedHeader} and written with one`);
        const decoded = readDicom(part10.buffer);
        parsed = decoded.parsed;
        characterSets = decoded.converted;
        warnings.push(...decoded.warnings.map((w) => `${name}: ${w}`));
      } catch (error) {
        // eslint-disable-next-line preserve-caught-error -- the original error can quote a value (PHI)
        throw new Error(`${name}: not readable as DICOM (${reasonOf(error)})`);
      }
      const dataset = parsed.dict;
      const modality = text(dataset[TAG.Modality])?.toUpperCase();
      const burnedIn = text(dataset[TAG.BurnedInAnnotation])?.toUpperCase() === 'YES';
      if (burnedIn || (modality !== undefined && BURNED_IN_MODALITIES.has(modality))) {
        const why = burnedIn ? 'BurnedInAnnotation is YES' : `modality ${modality} often carries burned-in text`;
        if (settings.BurnedInAnnotation === 'fail')
          throw new Error(`${name}: ${why}; the rule's BurnedInAnnotation policy is "fail"`);
        if (settings.BurnedInAnnotation === 'exclude') return { excluded: `${name}: ${why}`, warnings };
        warnings.push(`${name}: ${why}; kept (policy "warn"): pixels were not cleaned`);
      }
      const originalUids = ['0020000D', '0020000E', TAG.SOPInstanceUID].map((t) => text(dataset[t])?.trim());
      const patientId = text(dataset[TAG.PatientID]) ?? '';
      let pseudonym: string;
      try {
        pseudonym = pseudonymOf(patientId);
      } catch (error) {
        throw new Error(`${name}: ${(error as Error).message}`, { cause: error });
      }
      const context: Context = {
        shiftDays: dateShiftDays(secret, patientId),
        identifiers: identifiersOf(dataset),
        pseudonym,
        counts: {},
        fallbacks: {},
        warnings,
        name,
        malformed: new Set(),
      };
      processDataset(dataset, context);
      // Replace also sets attributes the instance lacks (as Orthanc's Replace does), at the top level.
      for (const [tag, replacement] of replace) {
        if (dataset[tag] !== undefined) continue;
        const vr = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr ?? 'LO';
        dataset[tag] = { vr, Value: [vr === 'PN' ? { Alphabetic: replacement } : replacement] };
        tally(context, 'rule:Replace', 'replaced');
      }
      record(dataset);
      const uidChanges = new Map<string, string>();
      ['0020000D', '0020000E', TAG.SOPInstanceUID].forEach((t, i) => {
        const now = text(dataset[t])?.trim();
        const was = originalUids[i];
        if (was && now && was !== now) uidChanges.set(was, now);
      });
      const sop = text(dataset[TAG.SOPInstanceUID]);
      // dcmjs inflates a deflated dataset on reading but writes it uncompressed: name what is written
      // (Explicit VR Little Endian, the same content), or the output would not parse.
      const syntax = text(parsed.meta[TRANSFER_SYNTAX_TAG])?.replace(/\0/g, '').trim() ?? EXPLICIT_LE;
      // The meta header names the new instance and our implementation; nothing of the sender's stays.
      const { meta, dropped } = rewriteMeta(
        parsed.meta,
        dataset,
        syntax === DEFLATED_EXPLICIT_LE ? EXPLICIT_LE : syntax,
      );
      tally(context, 'file-meta', 'removed', dropped);
      tally(context, 'file-meta', 'replaced', 3);
      let output: Buffer;
      try {
        output = writeDicomFile(meta, dataset, { allowInvalidVRLength: true });
      } catch (error) {
        // eslint-disable-next-line preserve-caught-error -- the original error can quote a value (PHI)
        throw new Error(`${name}: could not be written after de-identification (${reasonOf(error)})`);
      }
      return {
        output,
        sopInstanceUid: sop,
        uidChanges,
        warnings,
        record: {
          counts: context.counts,
          fallbacks: context.fallbacks,
          warnings,
          characterSets: Object.fromEntries(characterSets.map((c) => [c, 1])),
        },
      };
    },
  };
}

export type Anonymiser = ReturnType<typeof createAnonymiser>;
