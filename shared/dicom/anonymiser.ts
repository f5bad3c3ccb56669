/**
 * De-identification per DICOM PS3.15 Annex E (Basic Application Level Confidentiality Profile and
 * its options), on dcmjs's raw, tag-keyed dictionary: nothing is dropped by accident (dcmjs's
 * naturalised form silently loses private and unknown tags), sequences are processed at every depth,
 * and pixel data is never touched. Replacements are keyed (see pseudonyms.ts), so they are
 * consistent across a study, across runs and across studies of the same patient.
 */
import dcmjs, { type DicomDataset, type DicomElement } from 'dcmjs';
import { anonymisedUid, dateShiftDays, patientPseudonym } from './pseudonyms';
import type { IdentityMapping } from './mapping';
import type { AnonymiseSettings } from './options';
import { EXPLICIT_LE, PIXEL_DATA, TRANSFER_SYNTAX_TAG, writeDicomFile } from './write';
import { isPrivate, profileActionFor, profileRow, type Action } from './profile';

const { DicomMessage, DicomMetaDictionary } = dcmjs.data;

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
  MediaStorageSOPInstanceUID: '00020003',
};

/**
 * Modalities that commonly burn identifying text into pixels or carry it in a rendered document:
 * ultrasound, secondary capture (screenshots, scanned paper), external/endoscopy/general
 * microscopy photos, slide microscopy (slide labels), "other", and encapsulated documents.
 */
export const BURNED_IN_MODALITIES = new Set(['US', 'IVUS', 'SC', 'XC', 'ES', 'GM', 'SM', 'OT', 'DOC']);

/** Free-text VRs emptied under Clean Descriptors (see applyAction). */
const FREE_TEXT_VRS = new Set(['ST', 'LT', 'UT']);

/** File meta attributes that can name the sender or carry opaque private data; removed. */
const META_REMOVED = ['00020016', '00020017', '00020018', '00020100', '00020102'];
const DEFLATED_EXPLICIT_LE = '1.2.840.10008.1.2.1.99';

/** Registered DICOM UIDs (transfer syntaxes, SOP classes, well-known instances): never replaced. */
export function isWellKnownUid(uid: string): boolean {
  return uid.trim().startsWith('1.2.840.10008.');
}

/** CID 7050 De-identification Method codes (PS3.16). */
const METHOD_CODES: Array<[string, string, (o: AnonymiseSettings) => boolean]> = [
  ['113100', 'Basic Application Confidentiality Profile', () => true],
  ['113105', 'Clean Descriptors Option', (o) => o.CleanDescriptors],
  ['113106', 'Retain Longitudinal Temporal Information Full Dates Option', (o) => o.RetainLongitudinal === 'full'],
  ['113107', 'Retain Longitudinal Temporal Information Modified Dates Option', (o) => o.RetainLongitudinal === 'shifted'],
  ['113108', 'Retain Patient Characteristics Option', (o) => o.RetainPatientCharacteristics],
  ['113109', 'Retain Device Identity Option', (o) => o.RetainDeviceIdentity],
  ['113111', 'Retain Safe Private Option', (o) => o.RetainSafePrivate],
  ['113112', 'Retain Institution Identity Option', (o) => o.RetainInstitutionIdentity],
];

/** Non-zero-length dummies (action D) that carry no information. */
export function dummyValue(vr: string, secret: string): unknown[] {
  switch (vr) {
    case 'DA': return ['19000101'];
    case 'TM': return ['000000'];
    case 'DT': return ['19000101000000'];
    case 'AS': return ['000Y'];
    case 'DS':
    case 'IS': return ['0'];
    case 'UI': return [anonymisedUid(secret, 'dummy')];
    case 'PN': return [{ Alphabetic: 'ANONYMIZED' }];
    case 'US': case 'SS': case 'UL': case 'SL': case 'FL': case 'FD': case 'UV': case 'SV': return [0];
    case 'SQ': case 'OB': case 'OW': case 'OF': case 'OD': case 'OL': case 'OV': case 'UN': return [];
    default: return ['ANONYMIZED'];
  }
}

export interface AnonymiserOptions {
  secret: string;
  settings: AnonymiseSettings;
  mapping?: IdentityMapping;
}

export interface AnonymisedInstance {
  /** Undefined when the instance is excluded (burned-in annotation policy `exclude`). */
  output?: Buffer;
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
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object' && 'Alphabetic' in (v as object)) return String((v as { Alphabetic?: string }).Alphabetic ?? '');
  return String(v);
}

function set(element: DicomElement, value: unknown[]): void {
  element.Value = value;
  delete element._rawValue;
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
  const safePrivate = settings.SafePrivateAllowList.map((entry) => {
    const m = /^\(?([0-9A-Fa-f]{4}),?(?:xx|XX|[0-9A-Fa-f]{2})([0-9A-Fa-f]{2})\)?$/.exec(entry.Tag)!;
    return { creator: entry.Creator.trim(), group: m[1].toUpperCase(), element: m[2].toUpperCase() };
  });

  function pseudonymOf(patientId: string): string {
    return settings.Identity === 'mapping' && options.mapping ? options.mapping.pseudonymFor(patientId) : patientPseudonym(secret, patientId, settings.PseudonymPrefix);
  }

  function isSafePrivate(tag: string, creators: Map<string, string>): boolean {
    if (!settings.RetainSafePrivate) return false;
    const group = tag.slice(0, 4);
    const elementLow = parseInt(tag.slice(4), 16);
    if (elementLow < 0x1000) return false; // creators are kept with the first element they reserve
    const block = (elementLow >> 8).toString(16).toUpperCase().padStart(2, '0');
    const creator = creators.get(`${group}00${block}`);
    return safePrivate.some((s) => s.group === group && s.element === tag.slice(6).toUpperCase() && s.creator === creator);
  }

  /** Identifier strings of this patient, removed from free text kept under Clean Descriptors. */
  function identifiersOf(dataset: DicomDataset): string[] {
    const values = [TAG.PatientName, TAG.PatientID, '00101000', '00101001', '00101060', '00100030', '00080050', '00080090', '00200010']
      .flatMap((t) => (dataset[t]?.Value ?? []).map((v) => (v && typeof v === 'object' && 'Alphabetic' in v ? String((v as { Alphabetic?: string }).Alphabetic ?? '') : String(v))))
      .filter((v) => v.trim() !== '');
    const birth = /^(\d{4})(\d{2})(\d{2})$/.exec(text(dataset['00100030'])?.trim() ?? '');
    if (birth) values.push(`${birth[1]}-${birth[2]}-${birth[3]}`, `${birth[3]}.${birth[2]}.${birth[1]}`, `${birth[3]}/${birth[2]}/${birth[1]}`, `${birth[2]}/${birth[3]}/${birth[1]}`);
    const parts = values.flatMap((v) => [v, ...v.split(/[\^\s=,]+/)]).map((p) => p.trim()).filter((p) => p.length >= 2);
    return [...new Set(parts)].sort((a, b) => b.length - a.length);
  }

  function clean(value: string, identifiers: string[]): string {
    let out = value;
    for (const id of identifiers) out = out.split(new RegExp(id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'giu')).join('X');
    return out;
  }

  function processDataset(dataset: DicomDataset, context: { shiftDays: number; identifiers: string[]; pseudonym: string }): void {
    const creators = new Map<string, string>();
    for (const [tag, element] of Object.entries(dataset)) {
      const upper = tag.toUpperCase();
      if (isPrivate(upper) && parseInt(upper.slice(4), 16) >= 0x10 && parseInt(upper.slice(4), 16) <= 0xff) creators.set(upper, text(element) ?? '');
    }
    const keptBlocks = new Set<string>();
    for (const tag of Object.keys(dataset)) {
      const upper = tag.toUpperCase();
      const element = dataset[tag];
      if (upper === PIXEL_DATA) continue;
      if (isPrivate(upper)) {
        const low = parseInt(upper.slice(4), 16);
        if (low >= 0x10 && low <= 0xff) continue; // decided after the elements of its block
        if (keep.has(upper) || isSafePrivate(upper, creators)) {
          keptBlocks.add(`${upper.slice(0, 4)}00${upper.slice(4, 6)}`);
          if (element.vr === 'SQ') for (const item of (element.Value ?? []) as DicomDataset[]) processDataset(item, context);
        } else delete dataset[tag];
        continue;
      }
      if (remove.has(upper)) {
        delete dataset[tag];
        continue;
      }
      if (replace.has(upper)) {
        set(element, [element.vr === 'PN' ? { Alphabetic: replace.get(upper)! } : replace.get(upper)!]);
        continue;
      }
      if (upper === TAG.PatientID) {
        set(element, [context.pseudonym]);
        continue;
      }
      if (upper === TAG.PatientName) {
        set(element, [{ Alphabetic: context.pseudonym }]);
        continue;
      }
      const row = profileRow(upper);
      const action: Action = keep.has(upper) ? 'K' : row ? profileActionFor(row, settings) : 'K';
      applyAction(dataset, tag, element, action, context);
    }
    for (const creator of creators.keys()) if (!keptBlocks.has(creator)) delete dataset[Object.keys(dataset).find((t) => t.toUpperCase() === creator)!];
  }

  function applyAction(dataset: DicomDataset, tag: string, element: DicomElement, action: Action, context: { shiftDays: number; identifiers: string[]; pseudonym: string }): void {
    switch (action) {
      case 'X':
        delete dataset[tag];
        return;
      case 'Z':
        set(element, []);
        return;
      case 'D':
        set(element, dummyValue(element.vr, secret));
        return;
      case 'U':
        if (element.vr === 'SQ') break;
        set(element, (element.Value ?? []).map((v) => (typeof v === 'string' && v.trim() !== '' && !isWellKnownUid(v) ? anonymisedUid(secret, v) : v)));
        return;
      case 'C':
        // Dates under Retain Longitudinal with Modified Dates move by the patient's offset; times stay.
        if (element.vr === 'DA' || element.vr === 'DT') {
          set(element, settings.RetainLongitudinal === 'shifted' ? (element.Value ?? []).map((v) => (typeof v === 'string' ? shiftDate(v, context.shiftDays) : v)) : []);
          return;
        }
        if (element.vr === 'SQ') break;
        if (element.vr === 'TM') return;
        // Narrative text (comments, histories, notes) cannot be cleaned reliably: it is emptied.
        if (FREE_TEXT_VRS.has(element.vr)) {
          set(element, []);
          return;
        }
        // Short descriptors (protocol, series, study descriptions) are kept with this patient's own
        // identifiers (name parts, IDs, accession, birth date) cut out.
        set(element, (element.Value ?? []).map((v) => (typeof v === 'string' ? clean(v, context.identifiers) : typeof v === 'object' && v && 'Alphabetic' in v ? { Alphabetic: clean(String((v as { Alphabetic: string }).Alphabetic), context.identifiers) } : v)));
        return;
      case 'K':
        break;
    }
    if (element.vr === 'SQ') for (const item of (element.Value ?? []) as DicomDataset[]) processDataset(item, context);
  }

  function record(dataset: DicomDataset): void {
    const codes = METHOD_CODES.filter(([, , applies]) => applies(settings));
    dataset[TAG.PatientIdentityRemoved] = { vr: 'CS', Value: ['YES'] };
    dataset[TAG.DeidentificationMethod] = { vr: 'LO', Value: [`autorthanc-functions PS3.15 E.1-1 ${codes.map(([code]) => code).join(' ')}`.slice(0, 64)] };
    dataset[TAG.DeidentificationMethodCodeSequence] = {
      vr: 'SQ',
      Value: codes.map(([code, meaning]) => ({ '00080100': { vr: 'SH', Value: [code] }, '00080102': { vr: 'SH', Value: ['DCM'] }, '00080104': { vr: 'LO', Value: [meaning] } })),
    };
    dataset[TAG.LongitudinalTemporalInformationModified] = { vr: 'CS', Value: [settings.RetainLongitudinal === 'full' ? 'UNMODIFIED' : settings.RetainLongitudinal === 'shifted' ? 'MODIFIED' : 'REMOVED'] };
    // dcmjs writes every string as UTF-8: declare it, whatever the input said.
    dataset[TAG.SpecificCharacterSet] = { vr: 'CS', Value: ['ISO_IR 192'] };
  }

  return {
    settings,
    pseudonymOf,
    /** De-identifies one Part-10 file; `name` is only used in messages and must not hold PHI. */
    anonymiseBuffer(input: Buffer, name: string): AnonymisedInstance {
      const warnings: string[] = [];
      let parsed;
      try {
        parsed = DicomMessage.readFile(input.buffer.slice(input.byteOffset, input.byteOffset + input.byteLength) as ArrayBuffer);
      } catch (error) {
        throw new Error(`${name}: not readable as DICOM (${(error as Error).message})`, { cause: error });
      }
      const dataset = parsed.dict;
      const modality = text(dataset[TAG.Modality])?.toUpperCase();
      const burnedIn = text(dataset[TAG.BurnedInAnnotation])?.toUpperCase() === 'YES';
      if (burnedIn || (modality !== undefined && BURNED_IN_MODALITIES.has(modality))) {
        const why = burnedIn ? 'BurnedInAnnotation is YES' : `modality ${modality} often carries burned-in text`;
        if (settings.BurnedInAnnotation === 'fail') throw new Error(`${name}: ${why}; the rule's BurnedInAnnotation policy is "fail"`);
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
      const context = { shiftDays: dateShiftDays(secret, patientId), identifiers: identifiersOf(dataset), pseudonym };
      processDataset(dataset, context);
      // Replace also sets attributes the instance lacks (as Orthanc's Replace does), at the top level.
      for (const [tag, replacement] of replace) {
        if (dataset[tag] !== undefined) continue;
        const vr = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`]?.vr ?? 'LO';
        dataset[tag] = { vr, Value: [vr === 'PN' ? { Alphabetic: replacement } : replacement] };
      }
      record(dataset);
      const uidChanges = new Map<string, string>();
      ['0020000D', '0020000E', TAG.SOPInstanceUID].forEach((t, i) => {
        const now = text(dataset[t])?.trim();
        const was = originalUids[i];
        if (was && now && was !== now) uidChanges.set(was, now);
      });
      const sop = text(dataset[TAG.SOPInstanceUID]);
      const meta = parsed.meta;
      // The meta header must name the new instance; sender AE titles and opaque private meta data go.
      if (sop) {
        if (meta[TAG.MediaStorageSOPInstanceUID]) set(meta[TAG.MediaStorageSOPInstanceUID], [sop]);
        else meta[TAG.MediaStorageSOPInstanceUID] = { vr: 'UI', Value: [sop] };
      }
      for (const tag of META_REMOVED) delete meta[tag];
      // dcmjs inflates a deflated dataset on reading but writes it uncompressed: name what is written
      // (Explicit VR Little Endian, the same content), or the output would not parse.
      if (text(meta[TRANSFER_SYNTAX_TAG])?.trim() === DEFLATED_EXPLICIT_LE) set(meta[TRANSFER_SYNTAX_TAG], [EXPLICIT_LE]);
      let output: Buffer;
      try {
        output = writeDicomFile(meta, dataset, { allowInvalidVRLength: true });
      } catch (error) {
        throw new Error(`${name}: could not be written after de-identification (${(error as Error).message})`, { cause: error });
      }
      return { output, sopInstanceUid: sop, uidChanges, warnings };
    },
  };
}

export type Anonymiser = ReturnType<typeof createAnonymiser>;
