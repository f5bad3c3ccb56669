/**
 * One sync: read the bookings of today and the next WORKLIST_DAYS_AHEAD days, and make the worklist
 * folder hold exactly one file per live booking. Idempotent: an unchanged booking gives the same
 * bytes and its file is left alone, a changed one is rewritten, a cancelled or deleted one is
 * removed, and one whose start lies more than the grace period in the past is removed too. A
 * source that cannot be read changes nothing. Only this app's files (`booking-<hash>.wl`) are
 * ever touched, so a site can keep hand-made entries in the same folder.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../vocabulary';
import { WORKLIST_FILE, bookingIdentifiers, bookingKey, localDay, worklistFileName, type Booking } from './booking';
import { mapRecord, type Mapping, type MappingProblem } from './mapping';
import type { BookingSource, Window } from './source';
import type { BookingRecord, BookingStore } from './store';
import { contentHash, worklistBytes, writeWorklistFile } from './worklist-file';

export interface SyncDeps {
  source: BookingSource;
  mapping: Mapping;
  folder: string;
  store: BookingStore;
  log: Logger;
  daysAhead: number;
  graceHours: number;
  /** Booking records older than this many days are deleted (0 keeps them). */
  retentionDays?: number;
  now?: () => Date;
}

export interface SyncReport {
  ok: boolean;
  /** Why nothing changed, when the source could not be read. */
  reason?: string;
  window: Window;
  /** Live entries in the folder after the sync. */
  entries: number;
  written: number;
  rewritten: number;
  unchanged: number;
  removed: number;
  cancelled: number;
  notReceived: number;
  problems: MappingProblem[];
}

const DAY_MS = 86_400_000;
/** Days back the sync looks for bookings to flag as not received. */
const NOT_RECEIVED_LOOKBACK_DAYS = 7;

/** Today's local midnight to the end of the last day ahead. */
export function syncWindow(now: Date, daysAhead: number): Window {
  const from = new Date(now.getFullYear(), now.getMonth(), now.getDate());
  const to = new Date(now.getFullYear(), now.getMonth(), now.getDate() + daysAhead + 1);
  return { from, to };
}

/** Reads and maps a source: the bookings of the window and every problem (the CLI's dry run uses it too). */
export async function readBookings(
  source: BookingSource,
  mapping: Mapping,
  window: Window,
): Promise<{ bookings: Booking[]; problems: MappingProblem[] }> {
  const read = await source.read(window);
  const problems: MappingProblem[] = [...read.problems];
  const byId = new Map<string, Booking>();
  for (const record of read.records) {
    const mapped = mapRecord(mapping, record);
    problems.push(...mapped.problems);
    const booking = mapped.booking;
    if (!booking) continue;
    if (byId.has(booking.id)) {
      problems.push({ where: record.where, id: booking.id, message: `BookingID: booking ${booking.id} appears twice` });
      continue;
    }
    if (booking.cancelled || (booking.start >= window.from && booking.start < window.to)) byId.set(booking.id, booking);
  }
  return { bookings: [...byId.values()], problems };
}

function recordOf(
  booking: Booking,
  previous: BookingRecord | undefined,
  file: string,
  hash: string,
  at: Date,
): BookingRecord {
  const ids = bookingIdentifiers(booking);
  return {
    key: bookingKey(booking.id),
    id: booking.id,
    day: localDay(booking.start),
    start: booking.start.toISOString(),
    station: booking.station,
    modality: booking.modality,
    ...(booking.project !== undefined ? { project: booking.project } : {}),
    ...(booking.session !== undefined ? { session: booking.session } : {}),
    studyInstanceUid: ids.studyInstanceUid,
    accessionNumber: ids.accessionNumber,
    file,
    contentHash: hash,
    // What happened after scheduling stays; a cancelled booking put back is scheduled again.
    status: previous && previous.status !== 'cancelled' ? previous.status : 'scheduled',
    updatedAt: at.toISOString(),
    ...(previous?.arrivedAt ? { arrivedAt: previous.arrivedAt } : {}),
    ...(previous?.orthancStudyId ? { orthancStudyId: previous.orthancStudyId } : {}),
    jobIds: previous?.jobIds ?? [],
  };
}

/** Whether two records differ in anything but their time of update. */
function changed(a: BookingRecord, b: BookingRecord): boolean {
  return JSON.stringify({ ...a, updatedAt: '' }) !== JSON.stringify({ ...b, updatedAt: '' });
}

async function sameBytes(file: string, bytes: Buffer): Promise<boolean> {
  try {
    return (await readFile(file)).equals(bytes);
  } catch {
    return false;
  }
}

/** Problems last logged, so a broken booking is reported when it appears or changes, not every five minutes. */
let reportedProblems = '';

/** A report of nothing done yet over `window` (or, with `reason`, of a sync that could not start). */
export function emptyReport(window: SyncReport['window'], reason?: string): SyncReport {
  return {
    ok: reason === undefined,
    ...(reason === undefined ? {} : { reason }),
    window,
    entries: 0,
    written: 0,
    rewritten: 0,
    unchanged: 0,
    removed: 0,
    cancelled: 0,
    notReceived: 0,
    problems: [],
  };
}

export async function syncWorklist(deps: SyncDeps): Promise<SyncReport> {
  const now = (deps.now ?? (() => new Date()))();
  const window = syncWindow(now, deps.daysAhead);
  const report = emptyReport(window);
  let bookings: Booking[];
  try {
    const read = await readBookings(deps.source, deps.mapping, window);
    bookings = read.bookings;
    report.problems = read.problems;
  } catch (error) {
    report.ok = false;
    report.reason = (error as Error).message;
    deps.log.error(`Worklist not synced, the current worklist files are kept: ${report.reason}`);
    return report;
  }
  const signature = report.problems.map((p) => `${p.where}: ${p.message}`).join('\n');
  if (signature !== reportedProblems) {
    reportedProblems = signature;
    for (const p of report.problems) deps.log.warn(`Worklist booking ${p.where} has no worklist entry: ${p.message}`);
  }

  await mkdir(deps.folder, { recursive: true });
  const present = new Set((await readdir(deps.folder)).filter((n) => WORKLIST_FILE.test(n)));
  const keep = new Set(report.problems.filter((p) => p.id !== undefined).map((p) => worklistFileName(p.id!)));
  const expiry = now.getTime() - deps.graceHours * 3_600_000;
  const live = new Set<string>();

  for (const booking of bookings) {
    const name = worklistFileName(booking.id);
    const key = bookingKey(booking.id);
    const previous = await deps.store.get(key);
    if (booking.cancelled) {
      if (previous && previous.status !== 'cancelled')
        await deps.store.update(key, (r) => {
          r.status = 'cancelled';
          delete r.file;
          r.updatedAt = now.toISOString();
        });
      if (present.has(name)) report.cancelled++;
      continue;
    }
    if (booking.start.getTime() < expiry) continue; // past its grace period: its file goes below
    const bytes = worklistBytes(booking);
    const file = path.join(deps.folder, name);
    if (present.has(name) && (await sameBytes(file, bytes))) report.unchanged++;
    else {
      await writeWorklistFile(deps.folder, booking, bytes);
      if (present.has(name)) report.rewritten++;
      else report.written++;
    }
    live.add(name);
    const next = recordOf(booking, previous, name, contentHash(bytes), now);
    if (!previous || changed(previous, next)) await deps.store.put(next);
  }

  for (const name of present) {
    if (live.has(name) || keep.has(name)) continue;
    await rm(path.join(deps.folder, name), { force: true });
    report.removed++;
    // Gone from the source before its time: deleted, which the dashboard shows as cancelled.
    await deps.store.update(name.slice('booking-'.length, -'.wl'.length), (r) => {
      if (r.status === 'scheduled' && Date.parse(r.start) >= expiry) r.status = 'cancelled';
      delete r.file;
      r.updatedAt = now.toISOString();
    });
  }
  report.entries = live.size + [...keep].filter((n) => present.has(n)).length;

  // Bookings whose day has ended without a study are flagged, so the operator sees the gap.
  const today = localDay(now);
  const since = localDay(new Date(now.getTime() - NOT_RECEIVED_LOOKBACK_DAYS * DAY_MS));
  for (const record of await deps.store.listDays(since, today)) {
    if (record.status !== 'scheduled' || record.day >= today) continue;
    await deps.store.update(record.key, (r) => {
      if (r.status === 'scheduled') r.status = 'not-received';
      r.updatedAt = now.toISOString();
    });
    report.notReceived++;
  }
  if (deps.retentionDays) await deps.store.purgeBefore(localDay(new Date(now.getTime() - deps.retentionDays * DAY_MS)));

  deps.log.info(
    `Worklist synced from ${deps.source.describe}: ${report.entries} entries in ${deps.folder} (${report.written} new, ${report.rewritten} rewritten, ${report.unchanged} unchanged), ${report.removed} removed (${report.cancelled} cancelled), ${report.problems.length} booking(s) with problems, ${report.notReceived} flagged not received`,
  );
  return report;
}
