/**
 * The tags a rule sees for a study or series: Orthanc's main tags (patient, study, and per series)
 * and, only when some rule asks for them, tags read from ONE instance per series (simplified tags
 * by keyword, `(gggg,eeee)` by number) and the AE title that sent that instance. Reading one
 * instance per series keeps a 2000-image study to a handful of requests.
 */
import type { Condition, Rule } from './model';
import { REMOTE_AET, resolveTag, type ResolvedTag } from './tags';
import type { ResourceLevel } from '../vocabulary';
import { tagHex } from '../dicom/tag-names';
import { mapLimit } from '../util/concurrency';

/** DICOM keyword (or upper-case `GGGGEEEE` for tags without one) → value as text. */
export type TagMap = Record<string, string>;

export interface SeriesTags {
  orthancId: string;
  tags: TagMap;
  /** The AE title that sent the series' first instance (Orthanc metadata `RemoteAET`), when read. */
  remoteAet?: string;
}

export interface ResourceTags {
  level: ResourceLevel;
  orthancId: string;
  patient: TagMap;
  study: TagMap;
  /** Every series of the study, or just the one for a Series-level resource. */
  series: SeriesTags[];
  /** Set when Orthanc made this study itself (AnonymizedFrom / ModifiedFrom): the source's Orthanc id. */
  derivedFrom?: string;
}

/**
 * What collectResourceTags needs of the Orthanc client. Declared here (structural typing) so the
 * rules never depend on the client's implementation; `createOrthancClient` satisfies it.
 */
export interface OrthancTagSource {
  getStudy(id: string): Promise<{
    ID: string;
    MainDicomTags: Record<string, string>;
    PatientMainDicomTags: Record<string, string>;
    Series: string[];
    AnonymizedFrom?: string;
    ModifiedFrom?: string;
  }>;
  getSeries(id: string): Promise<{
    ID: string;
    MainDicomTags: Record<string, string>;
    ParentStudy: string;
    Instances: string[];
    AnonymizedFrom?: string;
    ModifiedFrom?: string;
  }>;
  /** GET /instances/{id}/simplified-tags: keyword → value. */
  getInstanceTags(id: string): Promise<Record<string, unknown>>;
  /** GET /instances/{id}/tags?short: `gggg,eeee` → value (private and unnamed tags). */
  getInstanceTagsByNumber(id: string): Promise<Record<string, unknown>>;
  /** GET /instances/{id}/metadata/{name}, undefined when absent. */
  getMetadata(level: 'instances', id: string, name: string): Promise<string | undefined>;
}

/** DICOM values as text: multi-valued elements joined with a backslash, as Orthanc shows them. */
export function valueText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null)) return value.map(String).join('\\');
    if (value.every((v) => typeof v === 'object' && v !== null && 'Alphabetic' in v))
      return value.map((v) => String((v as { Alphabetic: unknown }).Alphabetic)).join('\\');
    return undefined; // a sequence: not matchable as text
  }
  if (typeof value === 'object' && 'Alphabetic' in value) return String((value as { Alphabetic: string }).Alphabetic);
  return undefined;
}

function lookup(map: TagMap, tag: ResolvedTag): string | undefined {
  if (tag.keyword && map[tag.keyword] !== undefined) return map[tag.keyword];
  if (tag.hex && map[tag.hex] !== undefined) return map[tag.hex];
  return undefined;
}

function seriesValue(series: SeriesTags, tag: ResolvedTag): string | undefined {
  if (tag.remoteAet) return series.remoteAet ?? series.tags[REMOTE_AET];
  return lookup(series.tags, tag);
}

/**
 * The values a condition is tested against: one for a Patient/Study-level tag, one per series
 * otherwise (null where that series lacks it). Level is where to look first, not a wall: a
 * Study-level condition on a tag only known per series sees every series, and a Series-level one
 * on a study tag sees the study's value for each series.
 */
export function tagValues(tags: ResourceTags, condition: Condition): Array<string | null> {
  // The sending AE is recorded per instance, so it is only ever a per-series value.
  const upper = condition.tag.remoteAet
    ? undefined
    : (lookup(tags.patient, condition.tag) ?? lookup(tags.study, condition.tag));
  if (condition.level === 'Study') {
    if (upper !== undefined) return [upper];
    return tags.series.map((s) => seriesValue(s, condition.tag) ?? null);
  }
  return tags.series.map((s) => seriesValue(s, condition.tag) ?? upper ?? null);
}

interface Needs {
  keywords: boolean;
  numbers: boolean;
  remoteAet: boolean;
}

/** Which instance reads the rules (or the listed tag names) need; main tags need none. */
export function instanceNeeds(needed: ReadonlyArray<Rule | string>): Needs {
  const tags: ResolvedTag[] = [];
  for (const item of needed) {
    if (typeof item === 'string') {
      const resolved = resolveTag(item);
      if (typeof resolved !== 'string') tags.push(resolved);
    } else {
      tags.push(...[...item.conditions, ...item.anyOf.flat()].map((c) => c.tag));
    }
  }
  return {
    keywords: tags.some((t) => t.fromInstance && t.keyword !== undefined && !t.remoteAet),
    numbers: tags.some((t) => t.fromInstance && t.keyword === undefined && t.hex !== undefined),
    remoteAet: tags.some((t) => t.remoteAet === true),
  };
}

/** Where Orthanc made a study (or its series) from, by anonymising or modifying; undefined for a received one. */
export function derivedFrom(study: DerivedMarks, series?: DerivedMarks): string | undefined {
  return study.AnonymizedFrom ?? study.ModifiedFrom ?? series?.AnonymizedFrom ?? series?.ModifiedFrom;
}

/** The fields by which Orthanc marks a resource it made itself. */
export interface DerivedMarks {
  AnonymizedFrom?: string;
  ModifiedFrom?: string;
}

/**
 * Gathers what the rules need to be matched against a study or series. `needed` is the rules to be
 * evaluated (or tag names), so instances are read only when a rule uses a non-main tag.
 */
export async function collectResourceTags(
  orthanc: OrthancTagSource,
  level: ResourceLevel,
  id: string,
  needed: ReadonlyArray<Rule | string>,
): Promise<ResourceTags> {
  const own = level === 'Series' ? await orthanc.getSeries(id) : undefined;
  const study = await orthanc.getStudy(own ? own.ParentStudy : id);
  const seriesList = own ? [own] : await mapLimit(study.Series, 8, (s) => orthanc.getSeries(s));
  const need = instanceNeeds(needed);
  const series = await mapLimit(seriesList, 4, async (s): Promise<SeriesTags> => {
    const tags: TagMap = { ...s.MainDicomTags };
    const entry: SeriesTags = { orthancId: s.ID, tags };
    const instance = s.Instances[0];
    if (!instance) return entry;
    if (need.keywords) {
      for (const [key, value] of Object.entries(await orthanc.getInstanceTags(instance))) {
        const text = valueText(value);
        if (text !== undefined && tags[key] === undefined) tags[key] = text;
      }
    }
    if (need.numbers) {
      for (const [key, value] of Object.entries(await orthanc.getInstanceTagsByNumber(instance))) {
        const text = valueText(value);
        if (text !== undefined) tags[tagHex(key)] = text;
      }
    }
    if (need.remoteAet) entry.remoteAet = await orthanc.getMetadata('instances', instance, 'RemoteAET');
    return entry;
  });
  const source = derivedFrom(study, own);
  return {
    level,
    orthancId: id,
    patient: { ...study.PatientMainDicomTags },
    study: { ...study.MainDicomTags },
    series,
    ...(source !== undefined ? { derivedFrom: source } : {}),
  };
}
