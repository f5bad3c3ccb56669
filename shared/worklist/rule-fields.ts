/**
 * Booking fields in rules: `TagName: "Booking.Project"` (or Session, Scanner, Modality, ID, Status)
 * matches the booking a study was scanned from, found by its StudyInstanceUID or AccessionNumber, so
 * a site routes by project without putting the project into the images. They behave like study
 * tags (one value, no instance read); a study with no booking has none, so such a condition fails.
 */
import type { ResolvedTag } from '../rules/tags';
import type { ResourceTags, TagMap } from '../rules/resource-tags';
import type { BookingRecord, BookingStore } from './store';

const PREFIX = 'booking.';
const FIELDS: Record<string, (r: BookingRecord) => string | undefined> = {
  Project: (r) => r.project,
  Session: (r) => r.session,
  Scanner: (r) => r.station,
  Modality: (r) => r.modality,
  ID: (r) => r.id,
  Status: (r) => r.status,
};
const BY_LOWER = new Map(Object.keys(FIELDS).map((f) => [f.toLowerCase(), f]));

/** Resolves `Booking.<Field>`; undefined when the name is not a booking field at all. */
export function resolveBookingTag(name: string): ResolvedTag | string | undefined {
  const trimmed = name.trim();
  if (!trimmed.toLowerCase().startsWith(PREFIX)) return undefined;
  const field = BY_LOWER.get(trimmed.slice(PREFIX.length).toLowerCase());
  if (!field) return `'${trimmed}' is not a booking field (Booking.${Object.keys(FIELDS).join(', Booking.')})`;
  return { name: trimmed, keyword: `Booking.${field}`, fromInstance: false, inferredLevel: 'Study' };
}

/** Whether any of the rules names a booking field (only then is the booking looked up). */
export function usesBookingFields(
  rules: ReadonlyArray<{ conditions: { tag: ResolvedTag }[]; anyOf: { tag: ResolvedTag }[][] }>,
): boolean {
  return rules.some((r) => [...r.conditions, ...r.anyOf.flat()].some((c) => c.tag.keyword?.startsWith('Booking.')));
}

export function bookingTagMap(record: BookingRecord): TagMap {
  const tags: TagMap = {};
  for (const [field, read] of Object.entries(FIELDS)) {
    const value = read(record);
    if (value !== undefined && value !== '') tags[`Booking.${field}`] = value;
  }
  return tags;
}

/** The resource's tags with its booking's fields added to the study's (unchanged when it has no booking). */
export async function withBookingFields(
  tags: ResourceTags,
  store: Pick<BookingStore, 'findByStudy'>,
): Promise<ResourceTags> {
  const record = await store.findByStudy({
    studyInstanceUid: tags.study.StudyInstanceUID,
    accessionNumber: tags.study.AccessionNumber,
  });
  return record ? { ...tags, study: { ...tags.study, ...bookingTagMap(record) } } : tags;
}
