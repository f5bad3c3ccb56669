/**
 * The tags a rule sees for a study or series: Orthanc's main tags (patient and study for the study,
 * series tags per series) and, only when a rule asks for them, tags read from one instance per
 * series (simplified tags by keyword, `(gggg,eeee)` by number) and the sending AE title.
 */
import type { Condition, Rule } from './model';
import { REMOTE_AET } from './tags';

export type TagMap = Record<string, string>;

export interface ResourceTags {
  level: 'Study' | 'Series';
  orthancId: string;
  study: TagMap;
  series: Array<{ orthancId: string; tags: TagMap }>;
}

/** What collectResourceTags needs of the Orthanc client (the real client satisfies it). */
export interface OrthancTagSource {
  getStudy(id: string): Promise<{ ID: string; MainDicomTags: Record<string, string>; PatientMainDicomTags: Record<string, string>; Series: string[] }>;
  getSeries(id: string): Promise<{ ID: string; MainDicomTags: Record<string, string>; ParentStudy: string; Instances: string[] }>;
  getInstanceTags(id: string): Promise<Record<string, unknown>>;
  getInstanceTagsByNumber(id: string): Promise<Record<string, unknown>>;
  getMetadata(level: 'instances', id: string, name: string): Promise<string | undefined>;
}

/** DICOM values as text: multi-valued elements joined with a backslash, as Orthanc shows them. */
export function valueText(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== 'object' || v === null)) return value.map(String).join('\\');
    return undefined; // a sequence: not matchable as text
  }
  if (typeof value === 'object' && 'Alphabetic' in (value as object)) return String((value as { Alphabetic: string }).Alphabetic);
  return undefined;
}

function lookup(map: TagMap, condition: Condition): string | undefined {
  if (condition.tag.keyword && map[condition.tag.keyword] !== undefined) return map[condition.tag.keyword];
  if (condition.tag.hex && map[condition.tag.hex] !== undefined) return map[condition.tag.hex];
  return undefined;
}

/** The values a condition is tested against: one for a Study-level tag, one per series otherwise. */
export function tagValues(tags: ResourceTags, condition: Condition): Array<string | null> {
  if (condition.level === 'Study') {
    const own = lookup(tags.study, condition);
    if (own !== undefined) return [own];
    // A study-level condition on a tag only known per series: any series may carry it.
    return tags.series.map((s) => lookup(s.tags, condition) ?? null);
  }
  return tags.series.map((s) => lookup(s.tags, condition) ?? lookup(tags.study, condition) ?? null);
}

function needsInstances(rules: Rule[]): { keywords: boolean; numbers: boolean; remoteAet: boolean } {
  const all = rules.flatMap((r) => [...r.conditions, ...r.anyOf.flat()]);
  return {
    keywords: all.some((c) => c.tag.fromInstance && c.tag.keyword && !c.tag.remoteAet),
    numbers: all.some((c) => c.tag.fromInstance && !c.tag.keyword && c.tag.hex),
    remoteAet: all.some((c) => c.tag.remoteAet),
  };
}

export async function collectResourceTags(orthanc: OrthancTagSource, level: 'Study' | 'Series', id: string, rules: Rule[]): Promise<ResourceTags> {
  const seriesList = level === 'Study' ? undefined : [await orthanc.getSeries(id)];
  const study = await orthanc.getStudy(level === 'Study' ? id : seriesList![0].ParentStudy);
  const series = seriesList ?? (await Promise.all(study.Series.map((s) => orthanc.getSeries(s))));
  const need = needsInstances(rules);
  const result: ResourceTags = { level, orthancId: id, study: { ...study.PatientMainDicomTags, ...study.MainDicomTags }, series: [] };
  for (const s of series) {
    const tags: TagMap = { ...s.MainDicomTags };
    const instance = s.Instances[0];
    if (instance && (need.keywords || need.numbers || need.remoteAet)) {
      if (need.keywords) {
        for (const [key, value] of Object.entries(await orthanc.getInstanceTags(instance))) {
          const text = valueText(value);
          if (text !== undefined && tags[key] === undefined) tags[key] = text;
        }
      }
      if (need.numbers) {
        for (const [key, value] of Object.entries(await orthanc.getInstanceTagsByNumber(instance))) {
          const text = valueText(value);
          if (text !== undefined) tags[key.replace(',', '').toUpperCase()] = text;
        }
      }
      if (need.remoteAet) {
        const aet = await orthanc.getMetadata('instances', instance, 'RemoteAET');
        if (aet !== undefined) tags[REMOTE_AET] = aet;
      }
    }
    result.series.push({ orthancId: s.ID, tags });
  }
  return result;
}
