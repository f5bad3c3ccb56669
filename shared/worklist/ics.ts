/**
 * Bookings from an iCalendar feed (RFC 5545), read from a file or an HTTP(S) URL and parsed with
 * ical.js (Mozilla's parser, strict: a broken calendar is refused whole rather than half-read).
 * Each VEVENT in the window is a record: its properties by name (DTSTART as a date), and every
 * `Keyword: value` line of its DESCRIPTION. Recurring events give one record per occurrence, with
 * the occurrence's start in its id so each has its own worklist entry.
 */
import { readFile } from 'node:fs/promises';
import axios from 'axios';
import type { SourceRecord } from './mapping';
import { localDay, localTime } from './booking';
import { SourceError, withoutQuotes, type BookingSource, type Window } from './source';

// What this file uses of ical.js, declared here: the package is ESM-only in its types, so this
// CommonJS module loads it with import() and cannot name its classes directly.
interface IcalTime {
  toJSDate(): Date;
}
interface IcalComponent {
  name: string;
  getAllSubcomponents(name: string): IcalComponent[];
  hasProperty(name: string): boolean;
  getFirstPropertyValue(name: string): unknown;
  getAllProperties(name: string): Array<{ getValues(): unknown[] }>;
}
interface IcalEvent {
  startDate: IcalTime | null;
  endDate: IcalTime | null;
  isRecurring(): boolean;
  relateException(exception: IcalComponent): void;
  iterator(): { next(): IcalTime | null | undefined };
  getOccurrenceDetails(occurrence: IcalTime): {
    startDate: IcalTime;
    endDate: IcalTime;
    recurrenceId: IcalTime;
    item: { component: IcalComponent };
  };
}
interface Ical {
  parse(text: string): unknown;
  Component: new (jcal: unknown) => IcalComponent;
  Event: new (component: IcalComponent) => IcalEvent;
  TimezoneService: { register(zone: IcalComponent): void };
}

async function loadIcal(): Promise<Ical> {
  const loaded: unknown = await import('ical.js');
  return (loaded as { default: Ical }).default;
}

/** Occurrences of one recurring event considered at most (a runaway RRULE must not stall the sync). */
const MAX_OCCURRENCES = 5000;
const TEXT_PROPERTIES = ['uid', 'summary', 'description', 'location', 'status', 'categories', 'resources', 'organizer'];
/** `Keyword: value`, the keyword a DICOM keyword or booking field spelled as one word. */
const DESCRIPTION_LINE = /^\s*([A-Za-z][A-Za-z0-9]{1,63})\s*:\s*(.*?)\s*$/;

async function fetchText(location: string, timeoutMs: number): Promise<string> {
  if (/^(https?|webcals?):\/\//i.test(location)) {
    const url = location.replace(/^webcal(s?):\/\//i, 'http$1://');
    try {
      const answer = await axios.get<string>(url, {
        timeout: timeoutMs,
        responseType: 'text',
        transformResponse: (d: unknown) => d,
        maxContentLength: 64 * 1024 * 1024,
      });
      return answer.data;
    } catch (error) {
      const status = (error as { response?: { status?: number } }).response?.status;
      throw new SourceError(
        `calendar ${redactQuery(location)} cannot be read: ${status ? `HTTP ${status}` : (error as Error).message}`,
        { cause: error },
      );
    }
  }
  try {
    return await readFile(location, 'utf8');
  } catch (error) {
    throw new SourceError(`calendar ${location} cannot be read: ${(error as Error).message}`, { cause: error });
  }
}

/** A feed URL often carries its secret in the query (Google's private address, a token): never shown. */
function redactQuery(url: string): string {
  return url.replace(/[?#].*$/, '?…');
}

function textFields(component: IcalComponent): Record<string, string | Date | undefined> {
  const fields: Record<string, string | Date | undefined> = {};
  const description = component.getFirstPropertyValue('description');
  if (typeof description === 'string') {
    for (const line of description.split(/\r?\n/)) {
      const m = DESCRIPTION_LINE.exec(line);
      if (m && m[2] !== '') fields[m[1]] = m[2];
    }
  }
  for (const name of TEXT_PROPERTIES) {
    const values = component
      .getAllProperties(name)
      .flatMap((p) => p.getValues())
      .map((v) => (typeof v === 'string' ? v : String(v)));
    if (values.length > 0) fields[name.toUpperCase()] = values.join(',').replace(/^mailto:/i, '');
  }
  return fields;
}

function toDate(time: IcalTime | null | undefined): Date | undefined {
  if (!time) return undefined;
  // A floating time (no TZID, no Z) is the site's local time, as the calendar's user meant it.
  return time.toJSDate();
}

function inWindow(start: Date, window: Window): boolean {
  return start.getTime() >= window.from.getTime() && start.getTime() < window.to.getTime();
}

/** Parses iCalendar text into the window's records and per-event problems; throws a SourceError for a broken calendar. */
export async function parseCalendar(
  text: string,
  window: Window,
  describe = 'the calendar',
): Promise<{ records: SourceRecord[]; problems: { where: string; id?: string; message: string }[] }> {
  const ICAL = await loadIcal();
  let root: IcalComponent;
  try {
    const jcal = ICAL.parse(text);
    // Several VCALENDARs in one file parse to a list: the first is the calendar.
    const first: unknown = Array.isArray(jcal) && Array.isArray(jcal[0]) ? jcal[0] : jcal;
    root = new ICAL.Component(first);
  } catch (error) {
    throw new SourceError(`${describe} is not a valid iCalendar file: ${withoutQuotes((error as Error).message)}`, {
      cause: error,
    });
  }
  if (root.name !== 'vcalendar')
    throw new SourceError(
      `${describe} is not an iCalendar file (it starts with ${root.name.toUpperCase()}, not VCALENDAR)`,
    );
  for (const zone of root.getAllSubcomponents('vtimezone')) ICAL.TimezoneService.register(zone);

  const records: SourceRecord[] = [];
  const problems: { where: string; id?: string; message: string }[] = [];
  const components = root.getAllSubcomponents('vevent');
  const exceptions = components.filter((c) => c.hasProperty('recurrence-id'));
  components.forEach((component, index) => {
    if (component.hasProperty('recurrence-id')) return; // related to its master below
    const uid = component.getFirstPropertyValue('uid');
    const id = typeof uid === 'string' && uid.trim() !== '' ? uid.trim() : undefined;
    const where = id ? `event UID ${id}` : `event #${index + 1} (no UID)`;
    try {
      const event = new ICAL.Event(component);
      if (!component.hasProperty('dtstart')) {
        problems.push({ where, id, message: 'Start: the event has no DTSTART' });
        return;
      }
      if (!event.isRecurring()) {
        const start = toDate(event.startDate);
        if (start && !inWindow(start, window)) return;
        records.push({ where, id, fields: { ...textFields(component), DTSTART: start, DTEND: toDate(event.endDate) } });
        return;
      }
      for (const exception of exceptions)
        if (exception.getFirstPropertyValue('uid') === uid) event.relateException(exception);
      const iterator = event.iterator();
      for (let n = 0; n < MAX_OCCURRENCES; n++) {
        const next = iterator.next();
        if (!next) break;
        const details = event.getOccurrenceDetails(next);
        const start = toDate(details.startDate);
        if (!start) continue;
        if (start.getTime() >= window.to.getTime()) break;
        if (!inWindow(start, window)) continue;
        const occurrence = `${id ?? `#${index + 1}`}/${localDay(toDate(details.recurrenceId) ?? start)}T${localTime(toDate(details.recurrenceId) ?? start)}`;
        records.push({
          where: `event UID ${occurrence}`,
          id: id ? occurrence : undefined,
          // The occurrence is the booking: its UID field carries the occurrence's start, as its id does.
          fields: {
            ...textFields(details.item.component),
            ...(id ? { UID: occurrence } : {}),
            DTSTART: start,
            DTEND: toDate(details.endDate),
          },
        });
      }
    } catch (error) {
      problems.push({ where, id, message: `cannot be read: ${withoutQuotes((error as Error).message)}` });
    }
  });
  return { records, problems };
}

export function createIcsSource(location: string, timeoutMs = 30_000): BookingSource {
  const describe = /^(https?|webcals?):\/\//i.test(location)
    ? `calendar ${redactQuery(location)}`
    : `calendar ${location}`;
  return {
    kind: 'ics',
    describe,
    read: async (window) => parseCalendar(await fetchText(location, timeoutMs), window, describe),
  };
}
