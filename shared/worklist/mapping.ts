/**
 * The mapping from a source's records (calendar events, query rows, CSV rows) to bookings. A
 * mapping file (WORKLIST_MAPPING, JSON) names, per target (a DICOM keyword of the worklist entry or
 * a booking field), where its value comes from: a field, an RE2 pattern over it, a table of values,
 * or a constant. Without a file, calendars follow the issue's default (LOCATION is the scanner,
 * SUMMARY the PatientID, `Keyword: value` lines in DESCRIPTION set keywords) and tables take their
 * columns by name. A record the mapping cannot turn into a booking becomes a problem naming the
 * record (event UID, row number) and the target, never a value: values may identify a patient.
 */
import { readFile } from 'node:fs/promises';
import { RE2JS } from 're2js';
import { z } from 'zod';
import { AE_TITLE } from '../orthanc/peers';
import { BOOKING_FIELDS, WORKLIST_KEYWORDS, type Booking, type WorklistKeyword } from './booking';

export type SourceKind = 'ics' | 'table';

/** One record of a source, its fields by name, and where it is (for messages; never PHI). */
export interface SourceRecord {
  where: string;
  /** The booking id when the source knows it before mapping (an event's UID). */
  id?: string;
  fields: Record<string, string | Date | undefined>;
}

export interface MappingProblem {
  where: string;
  /** The booking id, when known: its current worklist file is kept rather than removed. */
  id?: string;
  message: string;
}

interface FieldSpec {
  from?: string;
  pattern?: RE2JS;
  patternSource?: string;
  map?: Map<string, string>;
  value?: string;
  default?: string;
}

type Target = (typeof BOOKING_FIELDS)[number] | WorklistKeyword;

export interface Mapping {
  kind: SourceKind;
  /** Targets the mapping file set, by canonical name. */
  fields: Map<Target, FieldSpec>;
  /** Calendars: `Keyword: value` lines in DESCRIPTION set keywords (default true). */
  descriptionLines: boolean;
  /** Where the mapping came from, for messages. */
  origin: string;
}

const TARGETS: readonly Target[] = [...BOOKING_FIELDS, ...WORKLIST_KEYWORDS];
const TARGET_BY_LOWER = new Map(TARGETS.map((t) => [t.toLowerCase(), t]));

/** The issue's default for calendars; tables take every target from the column of its name. */
const CALENDAR_DEFAULTS: Partial<Record<Target, FieldSpec>> = {
  BookingID: { from: 'UID' },
  Start: { from: 'DTSTART' },
  Status: { from: 'STATUS' },
  ScheduledStationAETitle: { from: 'LOCATION' },
  PatientID: { from: 'SUMMARY' },
};
const DEFAULT_MODALITY = 'MR';

/** Longest value per keyword (PS3.5 VR limits); a longer one is a problem, not a cut value. */
const MAX_LENGTH: Partial<Record<Target, number>> = {
  PatientID: 64,
  PatientName: 64,
  OtherPatientIDs: 64,
  AccessionNumber: 16,
  RequestedProcedureID: 16,
  StudyInstanceUID: 64,
  StudyDescription: 64,
  RequestedProcedureDescription: 64,
  ReferringPhysicianName: 64,
  RequestingPhysician: 64,
  InstitutionName: 64,
  Modality: 16,
  ScheduledStationAETitle: 16,
  ScheduledStationName: 16,
  ScheduledProcedureStepDescription: 64,
  ScheduledProcedureStepLocation: 16,
  ScheduledPerformingPhysicianName: 64,
  Project: 64,
  Session: 64,
};

const specSchema = z.union([
  z.string().min(1),
  z
    .object({
      from: z.string().min(1).optional(),
      pattern: z.string().min(1).max(1024).optional(),
      map: z.record(z.string(), z.string()).optional(),
      value: z.string().optional(),
      default: z.string().optional(),
    })
    .strict(),
]);
const mappingFileSchema = z
  .object({
    $comment: z.string().optional(),
    fields: z.record(z.string(), specSchema),
    descriptionLines: z.boolean().optional(),
  })
  .strict();

export class MappingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MappingError';
  }
}

/** Builds a mapping from a parsed mapping file (or none: the defaults); throws a MappingError naming each problem. */
export function buildMapping(kind: SourceKind, json: unknown, origin = 'the default mapping'): Mapping {
  const mapping: Mapping = { kind, fields: new Map(), descriptionLines: true, origin };
  if (json === undefined) return mapping;
  const parsed = mappingFileSchema.safeParse(json);
  if (!parsed.success)
    throw new MappingError(
      `${origin}: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ')}`,
    );
  const problems: string[] = [];
  for (const [name, raw] of Object.entries(parsed.data.fields)) {
    const target = TARGET_BY_LOWER.get(name.toLowerCase());
    if (!target) {
      problems.push(`fields.${name}: not a worklist target (one of ${TARGETS.join(', ')})`);
      continue;
    }
    const spec = typeof raw === 'string' ? { from: raw } : raw;
    if (spec.from === undefined && spec.value === undefined && spec.default === undefined) {
      problems.push(`fields.${name}: needs "from", "value" or "default"`);
      continue;
    }
    const field: FieldSpec = { from: spec.from, value: spec.value, default: spec.default };
    if (spec.pattern !== undefined) {
      try {
        // RE2: linear time whatever the text, as for rule regexes (shared/rules/regex.ts).
        field.pattern = RE2JS.compile(spec.pattern, RE2JS.CASE_INSENSITIVE);
        field.patternSource = spec.pattern;
      } catch (error) {
        problems.push(`fields.${name}.pattern: not an RE2 pattern: ${(error as Error).message}`);
        continue;
      }
    }
    if (spec.map) field.map = new Map(Object.entries(spec.map).map(([k, v]) => [k.trim().toLowerCase(), v]));
    mapping.fields.set(target, field);
  }
  if (problems.length > 0) throw new MappingError(`${origin}: ${problems.join('; ')}`);
  if (parsed.data.descriptionLines !== undefined) mapping.descriptionLines = parsed.data.descriptionLines;
  return mapping;
}

/** Reads WORKLIST_MAPPING (or returns the defaults when no file is named). */
export async function loadMapping(kind: SourceKind, file: string | undefined): Promise<Mapping> {
  if (file === undefined) return buildMapping(kind, undefined);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new MappingError(`WORKLIST_MAPPING ${file} cannot be read: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new MappingError(`WORKLIST_MAPPING ${file} is not valid JSON: ${(error as Error).message}`);
  }
  return buildMapping(kind, json, `WORKLIST_MAPPING ${file}`);
}

function fieldValue(record: SourceRecord, name: string): string | Date | undefined {
  if (name in record.fields) return record.fields[name];
  const lower = name.toLowerCase();
  for (const [key, value] of Object.entries(record.fields)) if (key.toLowerCase() === lower) return value;
  return undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === '' ? undefined : trimmed;
}

/** What a spec yields for a record, or a problem (in words, without the value). */
function apply(spec: FieldSpec, record: SourceRecord): { value?: string | Date; problem?: string } {
  let value: string | Date | undefined = spec.value ?? (spec.from ? fieldValue(record, spec.from) : undefined);
  if (typeof value === 'string' && spec.pattern) {
    const matcher = spec.pattern.matcher(value.slice(0, 4096));
    value = matcher.find() ? ((matcher.groupCount() > 0 ? matcher.group(1) : matcher.group()) ?? undefined) : undefined;
  }
  if (typeof value === 'string' && spec.map) {
    const mapped = spec.map.get(value.trim().toLowerCase()) ?? spec.map.get('*');
    if (mapped === undefined && spec.default === undefined)
      return { problem: `its ${spec.from ?? 'value'} is not listed in the mapping's "map"` };
    value = mapped;
  }
  if (typeof value === 'string') value = nonEmpty(value);
  return { value: value ?? spec.default };
}

/** Where a target's value comes from, in words for messages ("SUMMARY", "column PatientID"). */
function sourceOf(mapping: Mapping, target: Target, record?: SourceRecord): string {
  const spec = mapping.fields.get(target) ?? (mapping.kind === 'ics' ? CALENDAR_DEFAULTS[target] : undefined);
  const column = spec?.from ?? target;
  if (mapping.kind === 'ics') return spec?.from ?? `a "${target}:" line in DESCRIPTION`;
  // A column the table does not have at all is the likelier mistake: say so, with the ones it has.
  if (record && !Object.keys(record.fields).some((k) => k.toLowerCase() === column.toLowerCase()))
    return `column ${column} (missing; the columns are ${Object.keys(record.fields).join(', ') || 'none'})`;
  return `column ${column}`;
}

function resolve(mapping: Mapping, record: SourceRecord, target: Target): { value?: string | Date; problem?: string } {
  const explicit = mapping.fields.get(target);
  if (explicit) {
    const result = apply(explicit, record);
    if (result.value !== undefined || result.problem) return result;
  }
  // A field named like the target: a table's column, a calendar's `Keyword: value` line.
  if (mapping.kind === 'table' || mapping.descriptionLines) {
    const named = fieldValue(record, target);
    if (named instanceof Date || nonEmpty(named) !== undefined)
      return { value: named instanceof Date ? named : nonEmpty(named) };
  }
  if (target === 'Start' && mapping.kind === 'table') {
    // DICOM's own split form, as a RIS export has it.
    const date = fieldValue(record, 'ScheduledProcedureStepStartDate');
    const time = fieldValue(record, 'ScheduledProcedureStepStartTime');
    if (typeof date === 'string' && nonEmpty(date))
      return { value: `${date.trim()} ${typeof time === 'string' ? time.trim() : ''}`.trim() };
  }
  const fallback = mapping.kind === 'ics' ? CALENDAR_DEFAULTS[target] : undefined;
  if (fallback && !explicit) return apply(fallback, record);
  if (target === 'Modality') return { value: DEFAULT_MODALITY };
  return {};
}

const ISO_LOCAL =
  /^(\d{4})-?(\d{2})-?(\d{2})(?:[T ](\d{2}):?(\d{2})(?::?(\d{2}))?(?:\.\d+)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/i;

/** A start time from text: ISO 8601 or DICOM `YYYYMMDD[HHMMSS]`; without an offset it is local time. */
export function parseStart(value: string | Date): Date | undefined {
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value;
  const m = ISO_LOCAL.exec(value.trim());
  if (!m) return undefined;
  const [, y, mo, d, h = '00', mi = '00', s = '00', zone] = m;
  if (zone) {
    const offset = zone.toUpperCase() === 'Z' ? 'Z' : `${zone.slice(0, 3)}:${zone.slice(-2)}`;
    const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}${offset}`);
    return Number.isNaN(date.getTime()) ? undefined : date;
  }
  const date = new Date(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  return date.getMonth() === Number(mo) - 1 && date.getDate() === Number(d) ? date : undefined;
}

const CANCELLED = new Set(['cancelled', 'canceled', 'cancel', 'deleted']);

/** Turns one record into a booking, or the problems that stop it (each names the record and the target). */
export function mapRecord(mapping: Mapping, record: SourceRecord): { booking?: Booking; problems: MappingProblem[] } {
  const problems: string[] = [];
  const values = new Map<Target, string>();
  let start: Date | undefined;
  for (const target of TARGETS) {
    const { value, problem } = resolve(mapping, record, target);
    if (problem) {
      problems.push(`${target}: ${problem}`);
      continue;
    }
    if (value === undefined) continue;
    if (target === 'Start') {
      start = parseStart(value);
      if (!start)
        problems.push(`Start: ${sourceOf(mapping, 'Start', record)} is not a date and time (e.g. 2026-03-02T09:30)`);
      continue;
    }
    const text = value instanceof Date ? value.toISOString() : value;
    const max = MAX_LENGTH[target];
    if (max !== undefined && text.length > max) {
      problems.push(
        `${target}: the value from ${sourceOf(mapping, target)} is ${text.length} characters; at most ${max} fit`,
      );
      continue;
    }
    values.set(target, text);
  }
  const id = values.get('BookingID') ?? record.id;
  const where = record.id !== undefined || id === undefined ? record.where : `${record.where} (booking ${id})`;
  const cancelled = CANCELLED.has((values.get('Status') ?? '').toLowerCase());
  if (id === undefined) problems.push(`BookingID: ${sourceOf(mapping, 'BookingID', record)} is empty`);
  if (!cancelled) {
    if (start === undefined && !problems.some((p) => p.startsWith('Start:')))
      problems.push(`Start: ${sourceOf(mapping, 'Start', record)} is empty`);
    const failed = (target: Target) => problems.some((p) => p.startsWith(`${target}:`));
    if (!values.has('PatientID') && !failed('PatientID'))
      problems.push(`PatientID: no subject; ${sourceOf(mapping, 'PatientID', record)} is empty or did not match`);
    const station = values.get('ScheduledStationAETitle');
    if (station === undefined && !failed('ScheduledStationAETitle'))
      problems.push(
        `ScheduledStationAETitle: no scanner; ${sourceOf(mapping, 'ScheduledStationAETitle', record)} is empty`,
      );
    else if (station !== undefined && !AE_TITLE.test(station))
      problems.push(
        `ScheduledStationAETitle: '${station}' is not an AE title (1-16 printable characters, no backslash)`,
      );
    const modality = values.get('Modality') ?? DEFAULT_MODALITY;
    if (!/^[A-Z0-9_ ]{1,16}$/.test(modality.toUpperCase()))
      problems.push(`Modality: '${modality}' is not a modality code (e.g. MR, CT)`);
    const birth = values.get('PatientBirthDate');
    if (birth !== undefined && !/^\d{8}$/.test(birth.replace(/-/g, '')))
      problems.push('PatientBirthDate: not a date (YYYYMMDD or YYYY-MM-DD)');
    const sex = values.get('PatientSex');
    if (sex !== undefined && !/^[MFO]$/i.test(sex)) problems.push('PatientSex: expected M, F or O');
    const uid = values.get('StudyInstanceUID');
    if (uid !== undefined && !/^[0-9]+(\.[0-9]+)*$/.test(uid))
      problems.push('StudyInstanceUID: not a UID (digits and dots)');
  }
  if (problems.length > 0) return { problems: problems.map((message) => ({ where, id, message })) };
  const dicom: Booking['dicom'] = {};
  for (const keyword of WORKLIST_KEYWORDS) {
    const value = values.get(keyword);
    if (value !== undefined) dicom[keyword] = value;
  }
  if (dicom.PatientBirthDate) dicom.PatientBirthDate = dicom.PatientBirthDate.replace(/-/g, '');
  if (dicom.PatientSex) dicom.PatientSex = dicom.PatientSex.toUpperCase();
  dicom.Modality = (dicom.Modality ?? DEFAULT_MODALITY).toUpperCase();
  return {
    booking: {
      id: id!,
      // A cancellation needs no time: its file is removed whatever it said.
      start: start ?? new Date(0),
      cancelled,
      station: dicom.ScheduledStationAETitle ?? '',
      modality: dicom.Modality,
      project: values.get('Project'),
      session: values.get('Session'),
      dicom,
    },
    problems: [],
  };
}
