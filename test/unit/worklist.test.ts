/**
 * The worklist from bookings (issue 19) without servers: the default iCalendar mapping and a
 * mapping file, bad input (a broken calendar, a missing column, an event without a subject) with a
 * message naming the event or row and no file for it, the worklist file's contents, the idempotent
 * sync, the settings, Booking.* rule fields and the arrival link.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import dcmjs from 'dcmjs';
import { loadConfig } from '../../shared/config';
import { parseRule } from '../../shared/rules/schema';
import { matchRule } from '../../shared/rules/matcher';
import type { ResourceTags } from '../../shared/rules/resource-tags';
import {
  bookingKey,
  bookingStudyUid,
  worklistFileName,
  WORKLIST_FILE,
  type Booking,
} from '../../shared/worklist/booking';
import { createCsvSource, parseCsv } from '../../shared/worklist/csv';
import { parseCalendar } from '../../shared/worklist/ics';
import { buildMapping, mapRecord, MappingError, parseStart } from '../../shared/worklist/mapping';
import { linkArrival } from '../../shared/worklist/arrival';
import { withBookingFields } from '../../shared/worklist/rule-fields';
import { worklistDay } from '../../shared/worklist/report';
import { SourceError, sourceTypeOf, type BookingSource } from '../../shared/worklist/source';
import { WORKLIST_DEFAULT_SCHEDULE } from '../../shared/worklist/settings';
import { readBookings, syncWorklist, syncWindow } from '../../shared/worklist/sync';
import { worklistBytes } from '../../shared/worklist/worklist-file';
import { createMemoryBookingStore } from '../support/memory-bookings';
import { makeTempDir } from '../support/process';

const NOW = new Date(2026, 2, 2, 8, 0, 0); // 2 March 2026, 08:00 local
const WINDOW = syncWindow(NOW, 1);

/** iCalendar text with CRLF line ends; `events` are the VEVENT bodies. */
function calendar(...events: string[]): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//test//worklist//EN'];
  for (const e of events) lines.push('BEGIN:VEVENT', 'DTSTAMP:20260301T000000Z', ...e.trim().split('\n'), 'END:VEVENT');
  lines.push('END:VCALENDAR');
  return `${lines.join('\r\n')}\r\n`;
}

const EVENT_A = `UID:booking-a@lab
DTSTART:20260302T093000
DTEND:20260302T103000
SUMMARY:sub-001
LOCATION:MR1
DESCRIPTION:PatientName: Doe^Jane\\nModality: MR\\nStudyDescription: Brain^Research\\nProject: 3010000.01\\nPatientSex: F`;
const EVENT_B = `UID:booking-b@lab
DTSTART:20260302T110000
SUMMARY:sub-002
LOCATION:CT1
DESCRIPTION:Modality: CT`;

function logger() {
  const lines: string[] = [];
  return {
    lines,
    info: (m: string) => void lines.push(`info ${m}`),
    warn: (m: string) => void lines.push(`warn ${m}`),
    error: (m: string) => void lines.push(`error ${m}`),
  };
}

/** A source serving whatever calendar text the test sets, or failing when told to. */
function calendarSource(text: () => string | Error): BookingSource {
  return {
    kind: 'ics',
    describe: 'calendar test.ics',
    read: async (window) => {
      const current = text();
      if (current instanceof Error) throw current;
      return parseCalendar(current, window, 'calendar test.ics');
    },
  };
}

async function mapCalendar(text: string, json?: unknown) {
  const mapping = buildMapping('ics', json);
  const { records, problems } = await parseCalendar(text, WINDOW);
  const mapped = records.map((r) => mapRecord(mapping, r));
  return {
    bookings: mapped.flatMap((m) => (m.booking ? [m.booking] : [])),
    problems: [...problems, ...mapped.flatMap((m) => m.problems)],
  };
}

function readWorklist(file: string): Record<string, unknown> {
  const bytes = readFileSync(file);
  const dict = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
}

describe('worklist: the default iCalendar mapping', () => {
  it('takes LOCATION as the scanner, SUMMARY as PatientID, DTSTART as the time, UID as the id and Keyword: lines', async () => {
    const { bookings, problems } = await mapCalendar(calendar(EVENT_A, EVENT_B));
    assert.deepEqual(problems, []);
    assert.equal(bookings.length, 2);
    const [a, b] = bookings;
    assert.equal(a.id, 'booking-a@lab');
    assert.equal(a.station, 'MR1');
    assert.equal(a.dicom.PatientID, 'sub-001');
    assert.equal(a.dicom.PatientName, 'Doe^Jane');
    assert.equal(a.dicom.StudyDescription, 'Brain^Research');
    assert.equal(a.dicom.PatientSex, 'F');
    assert.equal(a.project, '3010000.01');
    assert.equal(a.start.getTime(), new Date(2026, 2, 2, 9, 30).getTime(), 'a floating DTSTART is local time');
    assert.equal(a.cancelled, false);
    assert.equal(b.modality, 'CT', 'a Modality: line sets the modality');
    assert.equal(b.station, 'CT1');
  });

  it('defaults Modality to MR and treats STATUS:CANCELLED as a cancellation', async () => {
    const { bookings } = await mapCalendar(
      calendar(
        'UID:c1\nDTSTART:20260302T120000\nSUMMARY:sub-3\nLOCATION:MR1',
        'UID:c2\nDTSTART:20260302T130000\nSTATUS:CANCELLED',
      ),
    );
    assert.equal(bookings[0].modality, 'MR');
    assert.equal(bookings[1].cancelled, true, 'a cancellation needs no subject or scanner');
  });

  it('reads UTC and TZID times and keeps only events of the window', async () => {
    const text = calendar(
      'UID:utc\nDTSTART:20260302T120000Z\nSUMMARY:s\nLOCATION:MR1',
      'UID:tomorrow\nDTSTART:20260303T090000\nSUMMARY:s\nLOCATION:MR1',
      'UID:past\nDTSTART:20260301T090000\nSUMMARY:s\nLOCATION:MR1',
      'UID:later\nDTSTART:20260304T090000\nSUMMARY:s\nLOCATION:MR1',
    );
    const { bookings } = await mapCalendar(text);
    assert.deepEqual(
      bookings.map((b) => b.id),
      ['utc', 'tomorrow'],
    );
    assert.equal(bookings[0].start.toISOString(), '2026-03-02T12:00:00.000Z');
  });

  it('expands a recurring event into one booking per occurrence, each with its own id', async () => {
    const { bookings } = await mapCalendar(
      calendar('UID:weekly\nDTSTART:20260224T100000\nRRULE:FREQ=DAILY;COUNT=20\nSUMMARY:phantom\nLOCATION:MR1'),
    );
    assert.deepEqual(
      bookings.map((b) => b.id),
      ['weekly/20260302T100000', 'weekly/20260303T100000'],
    );
  });
});

describe('worklist: a mapping file', () => {
  const mapping = {
    fields: {
      PatientID: { from: 'SUMMARY', pattern: '^(sub-\\d+)' },
      Session: { from: 'SUMMARY', pattern: 'ses-(\\d+)' },
      Project: { from: 'DESCRIPTION', pattern: 'project\\s+(\\d{7}\\.\\d{2})' },
      PatientName: { from: 'SUMMARY', pattern: '^(sub-\\d+_ses-\\d+)' },
      ScheduledStationAETitle: { from: 'LOCATION', map: { 'Skyra lab': 'SKYRA', 'Prisma lab': 'PRISMA' } },
      Modality: { value: 'MR' },
      ReferringPhysicianName: 'ORGANIZER',
    },
  };

  it('turns event fields into DICOM values with patterns, a value table and constants', async () => {
    const { bookings, problems } = await mapCalendar(
      calendar(
        'UID:m1\nDTSTART:20260302T100000\nSUMMARY:sub-017_ses-02 (pilot)\nLOCATION:Prisma lab\nDESCRIPTION:for project 3010000.01\nORGANIZER:mailto:booker@example.org',
      ),
      mapping,
    );
    assert.deepEqual(problems, []);
    const [b] = bookings;
    assert.equal(b.dicom.PatientID, 'sub-017');
    assert.equal(b.dicom.PatientName, 'sub-017_ses-02');
    assert.equal(b.session, '02');
    assert.equal(b.project, '3010000.01');
    assert.equal(b.station, 'PRISMA');
    assert.equal(b.dicom.ReferringPhysicianName, 'booker@example.org');
  });

  it('names the event and the target when a value is not in the table or the pattern does not match', async () => {
    const { bookings, problems } = await mapCalendar(
      calendar('UID:m2\nDTSTART:20260302T100000\nSUMMARY:pilot scan\nLOCATION:Basement'),
      mapping,
    );
    assert.equal(bookings.length, 0);
    const messages = problems.map((p) => `${p.where}: ${p.message}`);
    assert.ok(
      messages.some((m) => /^event UID m2: ScheduledStationAETitle: .*not listed/.test(m)),
      messages.join('\n'),
    );
    assert.ok(
      messages.some((m) => /^event UID m2: PatientID: no subject; SUMMARY/.test(m)),
      messages.join('\n'),
    );
    assert.ok(!messages.join('\n').includes('pilot scan'), 'the event text (maybe PHI) is not quoted');
  });

  it('refuses an unknown target, a bad pattern and a spec with no source, naming each', () => {
    assert.throws(
      () =>
        buildMapping(
          'ics',
          { fields: { PatientAge: 'SUMMARY', PatientID: { pattern: '(' }, Project: {} } },
          'mapping.json',
        ),
      (error: Error) =>
        error instanceof MappingError &&
        /fields\.PatientAge: not a worklist target/.test(error.message) &&
        /fields\.PatientID/.test(error.message) &&
        /fields\.Project: needs "from", "value" or "default"/.test(error.message),
    );
  });
});

describe('worklist: bad input', () => {
  it('a broken calendar is a SourceError saying why, and the sync writes nothing', async () => {
    const folder = makeTempDir('wl-broken-');
    await assert.rejects(
      parseCalendar('BEGIN:VCALENDAR\r\nthis line is broken\r\n', WINDOW, 'calendar bad.ics'),
      (e: Error) =>
        e instanceof SourceError &&
        /calendar bad\.ics is not a valid iCalendar file/.test(e.message) &&
        !e.message.includes('this line is broken'),
    );
    const log = logger();
    const report = await syncWorklist({
      source: calendarSource(() => 'BEGIN:VCALENDAR\r\nthis line is broken\r\n'),
      mapping: buildMapping('ics', undefined),
      folder,
      store: createMemoryBookingStore(),
      log,
      daysAhead: 1,
      graceHours: 12,
      now: () => NOW,
    });
    assert.equal(report.ok, false);
    assert.match(report.reason ?? '', /not a valid iCalendar file/);
    assert.deepEqual(readdirSync(folder), []);
    assert.ok(log.lines.some((l) => /^error Worklist not synced, the current worklist files are kept/.test(l)));
  });

  it('an event without a subject gets a message naming its UID and no file; the others are written', async () => {
    const folder = makeTempDir('wl-nosubject-');
    const log = logger();
    const report = await syncWorklist({
      source: calendarSource(() => calendar(EVENT_A, 'UID:no-subject@lab\nDTSTART:20260302T140000\nLOCATION:MR1')),
      mapping: buildMapping('ics', undefined),
      folder,
      store: createMemoryBookingStore(),
      log,
      daysAhead: 1,
      graceHours: 12,
      now: () => NOW,
    });
    assert.equal(report.ok, true);
    assert.equal(report.problems.length, 1);
    assert.equal(report.problems[0].where, 'event UID no-subject@lab');
    assert.match(report.problems[0].message, /^PatientID: no subject; SUMMARY is empty/);
    assert.deepEqual(readdirSync(folder), [worklistFileName('booking-a@lab')]);
    assert.ok(
      log.lines.some((l) => l.startsWith('warn Worklist booking event UID no-subject@lab has no worklist entry')),
    );
  });

  it('a CSV file without a required column names each row and the column, and gives no file', async () => {
    const records = parseCsv(
      'BookingID,Start,PatientID\nr1,2026-03-02 09:00,sub-1\nr2,2026-03-02 10:00,sub-2\n',
      'today.csv',
    );
    const mapping = buildMapping('table', undefined);
    const problems = records.flatMap((r) => mapRecord(mapping, r).problems);
    assert.equal(problems.length, 2);
    assert.equal(problems[0].where, 'today.csv line 2 (booking r1)');
    assert.match(
      problems[0].message,
      /^ScheduledStationAETitle: no scanner; column ScheduledStationAETitle \(missing; the columns are BookingID, Start, PatientID\)/,
    );
    assert.equal(problems[1].where, 'today.csv line 3 (booking r2)');
  });

  it('a CSV file that is not valid CSV makes the source unreadable', () => {
    assert.throws(
      () => parseCsv('BookingID,Start\n"r1,2026-03-02\n', 'broken.csv'),
      (e: Error) => e instanceof SourceError && /^broken\.csv is not valid CSV/.test(e.message),
    );
  });

  it('names a row with a bad start time or AE title, and a duplicated booking id', async () => {
    const records = parseCsv(
      'BookingID;Start;PatientID;ScheduledStationAETitle\nr1;tomorrow-ish;sub-1;MR1\nr2;2026-03-02T10:00;sub-2;THIS AE TITLE IS TOO LONG\nr3;2026-03-02T11:00;sub-3;MR1\nr3;2026-03-02T12:00;sub-4;MR1\n',
      'day.csv',
    );
    const source: BookingSource = { kind: 'table', describe: 'test', read: async () => ({ records, problems: [] }) };
    const { bookings, problems } = await readBookings(source, buildMapping('table', undefined), WINDOW);
    assert.deepEqual(
      bookings.map((b) => b.id),
      ['r3'],
    );
    const text = problems.map((p) => `${p.where}: ${p.message}`);
    assert.match(text[0], /^day\.csv line 2 \(booking r1\): Start: column Start is not a date and time/);
    assert.match(
      text[1],
      /^day\.csv line 3 \(booking r2\): ScheduledStationAETitle: the value from column ScheduledStationAETitle is 25 characters; at most 16 fit$/,
    );
    assert.equal(text.length, 3, 'one problem per bad row');
    assert.match(text[2], /^day\.csv line 5: BookingID: booking r3 appears twice/);
  });
});

describe('worklist: the worklist file', () => {
  const booking: Booking = {
    id: 'booking-a@lab',
    start: new Date(2026, 2, 2, 9, 30),
    cancelled: false,
    station: 'MR1',
    modality: 'MR',
    project: '3010000.01',
    dicom: { PatientID: 'sub-001', PatientName: 'Müller^Jürgen', PatientBirthDate: '19800101', PatientSex: 'M' },
  };

  it('holds the patient, generated identifiers and one scheduled procedure step', () => {
    const folder = makeTempDir('wl-file-');
    const file = path.join(folder, 'x.wl');
    writeFileSync(file, worklistBytes(booking));
    const ds = readWorklist(file);
    assert.equal(ds.PatientID, 'sub-001');
    assert.deepEqual(ds.PatientName, [{ Alphabetic: 'Müller^Jürgen' }]);
    assert.equal(ds.PatientBirthDate, '19800101');
    assert.equal(ds.SpecificCharacterSet, 'ISO_IR 192');
    assert.equal(ds.StudyInstanceUID, bookingStudyUid(booking.id));
    assert.match(String(ds.StudyInstanceUID), /^2\.25\.[1-9]\d{0,38}$/, 'a valid 2.25 UID');
    assert.match(String(ds.AccessionNumber), /^A[0-9A-Z]{1,15}$/);
    assert.match(String(ds.RequestedProcedureID), /^RP[0-9A-Z]{1,14}$/);
    assert.equal(ds.RequestedProcedureDescription, '3010000.01');
    const step = (ds.ScheduledProcedureStepSequence as Array<Record<string, unknown>>)[0];
    assert.equal(step.Modality, 'MR');
    assert.equal(step.ScheduledStationAETitle, 'MR1');
    assert.equal(step.ScheduledProcedureStepStartDate, '20260302');
    assert.equal(step.ScheduledProcedureStepStartTime, '093000');
    assert.match(String(step.ScheduledProcedureStepID), /^SPS/);
  });

  it('is named by a hash of the booking id, never by a patient value', () => {
    const name = worklistFileName(booking.id);
    assert.match(name, WORKLIST_FILE);
    assert.ok(!name.includes('sub-001') && !name.includes('booking-a'));
    assert.equal(name, `booking-${bookingKey(booking.id)}.wl`);
    assert.notEqual(bookingStudyUid('a'), bookingStudyUid('b'));
  });

  it('has the same bytes for the same booking', () => {
    assert.ok(worklistBytes(booking).equals(worklistBytes({ ...booking })));
    assert.ok(!worklistBytes(booking).equals(worklistBytes({ ...booking, station: 'MR2' })));
  });
});

describe('worklist: the sync', () => {
  function setup() {
    let text: string | Error = calendar(EVENT_A, EVENT_B);
    let now = NOW;
    const folder = makeTempDir('wl-sync-');
    const store = createMemoryBookingStore();
    const log = logger();
    const run = () =>
      syncWorklist({
        source: calendarSource(() => text),
        mapping: buildMapping('ics', undefined),
        folder,
        store,
        log,
        daysAhead: 1,
        graceHours: 2,
        now: () => now,
      });
    return {
      folder,
      store,
      log,
      run,
      set: (t: string | Error) => void (text = t),
      at: (d: Date) => void (now = d),
      files: () => readdirSync(folder).sort(),
    };
  }

  it('writes one file per booking and leaves an unchanged one alone', async () => {
    const s = setup();
    const first = await s.run();
    assert.equal(first.written, 2);
    assert.deepEqual(s.files(), [worklistFileName('booking-a@lab'), worklistFileName('booking-b@lab')].sort());
    const file = path.join(s.folder, worklistFileName('booking-a@lab'));
    utimesSync(file, new Date(2000, 0, 1), new Date(2000, 0, 1));
    const second = await s.run();
    assert.deepEqual([second.written, second.rewritten, second.unchanged, second.removed], [0, 0, 2, 0]);
    assert.equal(statSync(file).mtime.getFullYear(), 2000, 'an unchanged booking is not rewritten');
  });

  it('rewrites a changed booking, removes a cancelled and a deleted one', async () => {
    const s = setup();
    await s.run();
    s.set(calendar(EVENT_A.replace('LOCATION:MR1', 'LOCATION:MR2'), `${EVENT_B}\nSTATUS:CANCELLED`));
    const changed = await s.run();
    assert.equal(changed.rewritten, 1);
    assert.equal(changed.cancelled, 1);
    assert.deepEqual(s.files(), [worklistFileName('booking-a@lab')]);
    const step = (
      readWorklist(path.join(s.folder, s.files()[0])).ScheduledProcedureStepSequence as Array<Record<string, unknown>>
    )[0];
    assert.equal(step.ScheduledStationAETitle, 'MR2');
    assert.equal((await s.store.get(bookingKey('booking-b@lab')))?.status, 'cancelled');

    s.set(calendar());
    const deleted = await s.run();
    assert.equal(deleted.removed, 1);
    assert.deepEqual(s.files(), []);
    assert.equal((await s.store.get(bookingKey('booking-a@lab')))?.status, 'cancelled', 'deleted from the calendar');
  });

  it('removes a past booking after the grace period and flags it not received after its day', async () => {
    const s = setup();
    await s.run();
    s.at(new Date(2026, 2, 2, 12, 0)); // 09:30 + 2 h grace has passed; 11:00 has not
    const later = await s.run();
    assert.equal(later.removed, 1);
    assert.deepEqual(s.files(), [worklistFileName('booking-b@lab')]);
    s.at(new Date(2026, 2, 3, 7, 0));
    const nextDay = await s.run();
    assert.equal(nextDay.notReceived, 2);
    assert.equal((await s.store.get(bookingKey('booking-a@lab')))?.status, 'not-received');
  });

  it('leaves every file alone when the source cannot be read', async () => {
    const s = setup();
    await s.run();
    const before = s.files();
    s.set(new SourceError('calendar https://example.org/feed.ics?… cannot be read: HTTP 503'));
    const report = await s.run();
    assert.equal(report.ok, false);
    assert.deepEqual(s.files(), before);
    assert.ok(s.log.lines.some((l) => l.includes('cannot be read: HTTP 503')));
  });

  it('keeps the file of a booking that turned invalid, and never touches files it did not write', async () => {
    const s = setup();
    await s.run();
    writeFileSync(path.join(s.folder, 'handmade.wl'), 'not ours');
    mkdirSync(path.join(s.folder, 'sub'));
    s.set(calendar(EVENT_A.replace('SUMMARY:sub-001\n', ''), EVENT_B));
    const report = await s.run();
    assert.equal(report.problems.length, 1);
    assert.ok(s.files().includes(worklistFileName('booking-a@lab')), 'its last good entry stays until it is fixed');
    assert.ok(s.files().includes('handmade.wl') && s.files().includes('sub'));
  });

  it('logs no patient attribute', async () => {
    const s = setup();
    await s.run();
    s.set(calendar(EVENT_A.replace('LOCATION:MR1', 'LOCATION:'), EVENT_B));
    await s.run();
    const text = s.log.lines.join('\n');
    for (const phi of ['sub-001', 'sub-002', 'Doe', 'Jane'])
      assert.ok(!text.includes(phi), `the log does not contain ${phi}`);
    assert.match(text, /booking event UID booking-a@lab has no worklist entry: ScheduledStationAETitle: no scanner/);
  });
});

describe('worklist: settings', () => {
  const base = { AzureWebJobsStorage: 'UseDevelopmentStorage=true' };

  it('is off without WORKLIST_SOURCE and reads every setting when set', () => {
    assert.equal(loadConfig(base).worklist, undefined);
    const config = loadConfig({
      ...base,
      WORKLIST_SOURCE: '/data/bookings.ics',
      WORKLIST_FOLDER: '/data/worklists',
      WORKLIST_MAPPING: '/data/mapping.json',
      WORKLIST_DAYS_AHEAD: '3',
    });
    assert.deepEqual(config.worklist, {
      source: '/data/bookings.ics',
      type: 'ics',
      sql: undefined,
      mappingFile: '/data/mapping.json',
      folder: '/data/worklists',
      daysAhead: 3,
      graceHours: 12,
    });
  });

  it('names what is missing or wrong', () => {
    assert.throws(
      () => loadConfig({ ...base, WORKLIST_SOURCE: 'postgres://u:secret@db/bookings', WORKLIST_SCHEDULE: 'often' }),
      (e: Error) =>
        /WORKLIST_FOLDER: is required/.test(e.message) &&
        /WORKLIST_SQL: is required/.test(e.message) &&
        /WORKLIST_SCHEDULE: 'often' is not an NCRONTAB expression/.test(e.message) &&
        !e.message.includes('secret'),
    );
    assert.throws(
      () => loadConfig({ ...base, WORKLIST_DAYS_AHEAD: '99' }),
      /WORKLIST_DAYS_AHEAD: expected days between 0 and 30/,
    );
  });

  it('tells the source kind from WORKLIST_SOURCE', () => {
    assert.equal(sourceTypeOf('postgresql://h/db'), 'postgres');
    assert.equal(sourceTypeOf('https://calendar.example.org/lab.ics'), 'ics');
    assert.equal(sourceTypeOf('https://calendar.example.org/export?id=3'), 'ics');
    assert.equal(sourceTypeOf('/srv/bookings/today.ics'), 'ics');
    assert.equal(sourceTypeOf('/srv/bookings/csv'), 'csv');
  });

  it('lets only the peers WORKLIST_CALLERS names query the worklist', () => {
    const config = loadConfig({
      ...base,
      ORTHANC_ALLOWED_SENDERS: 'SCANNER1|MR1|10.0.0.7,SCANNER2|MR2|10.0.0.8',
      WORKLIST_CALLERS: 'SCANNER1',
    });
    assert.equal(config.allowedSenders?.SCANNER1.worklist, true);
    assert.equal(config.allowedSenders?.SCANNER2.worklist, undefined);
    assert.throws(
      () => loadConfig({ ...base, WORKLIST_CALLERS: 'ANYONE' }),
      /WORKLIST_CALLERS: 'ANYONE' is neither an allowed sender/,
    );
  });

  it('has the timer default every five minutes', () => {
    assert.equal(WORKLIST_DEFAULT_SCHEDULE, '0 */5 * * * *');
    const source = readFileSync(path.join(__dirname, '../../functions/worklistSync.ts'), 'utf8');
    assert.ok(source.includes(`'${WORKLIST_DEFAULT_SCHEDULE}'`), 'the function registers the same default');
  });

  it('reads start times in ISO and DICOM forms', () => {
    assert.equal(parseStart('2026-03-02T09:30')?.getTime(), new Date(2026, 2, 2, 9, 30).getTime());
    assert.equal(parseStart('20260302 093000')?.getTime(), new Date(2026, 2, 2, 9, 30).getTime());
    assert.equal(parseStart('2026-03-02T09:30:00+01:00')?.toISOString(), '2026-03-02T08:30:00.000Z');
    assert.equal(parseStart('2026-02-30T09:30'), undefined);
  });
});

describe('worklist: bookings and studies', () => {
  async function stored() {
    const store = createMemoryBookingStore();
    const folder = makeTempDir('wl-link-');
    await syncWorklist({
      source: calendarSource(() => calendar(EVENT_A, EVENT_B)),
      mapping: buildMapping('ics', undefined),
      folder,
      store,
      log: logger(),
      daysAhead: 1,
      graceHours: 12,
      now: () => NOW,
    });
    return { store, folder };
  }

  it('marks the booking of an arriving study arrived and links its jobs, by StudyInstanceUID or AccessionNumber', async () => {
    const { store } = await stored();
    const a = (await store.get(bookingKey('booking-a@lab')))!;
    await linkArrival(store, { orthancStudyId: 'o1', studyInstanceUid: a.studyInstanceUid }, ['job-1']);
    await linkArrival(store, { orthancStudyId: 'o1', studyInstanceUid: a.studyInstanceUid }, ['job-2', 'job-1']);
    const linked = (await store.get(a.key))!;
    assert.equal(linked.status, 'arrived');
    assert.deepEqual(linked.jobIds, ['job-1', 'job-2']);
    assert.equal(linked.orthancStudyId, 'o1');
    const b = (await store.get(bookingKey('booking-b@lab')))!;
    await linkArrival(
      store,
      { orthancStudyId: 'o2', studyInstanceUid: '1.2.3', accessionNumber: b.accessionNumber },
      [],
    );
    assert.equal((await store.get(b.key))?.status, 'arrived');
    assert.equal(await linkArrival(store, { orthancStudyId: 'o3', studyInstanceUid: '9.9' }, ['x']), undefined);
  });

  it('shows a day as time, scanner, project and status, processed once every job succeeded, without patient values', async () => {
    const { store, folder } = await stored();
    const a = (await store.get(bookingKey('booking-a@lab')))!;
    await linkArrival(store, { orthancStudyId: 'o1', studyInstanceUid: a.studyInstanceUid }, ['job-1']);
    const jobs = async (id: string) => ({
      id,
      ruleId: 'mri',
      status: 'succeeded' as const,
      currentStep: 'publish' as const,
    });
    const day = await worklistDay(store, jobs, { logPhi: false, folder, now: NOW });
    assert.equal(day.day, '20260302');
    assert.deepEqual(
      day.bookings.map((b) => [b.time, b.scanner, b.project ?? null, b.status]),
      [
        ['09:30', 'MR1', '3010000.01', 'processed'],
        ['11:00', 'CT1', null, 'scheduled'],
      ],
    );
    assert.ok(!JSON.stringify(day).includes('sub-00'), 'no PatientID');
    const withPhi = await worklistDay(store, jobs, { logPhi: true, folder, now: NOW });
    assert.deepEqual(withPhi.bookings[1].patient, { PatientID: 'sub-002', PatientName: 'sub-002' });
  });

  it('lets a rule match a booking field (Booking.Project)', async () => {
    const { store } = await stored();
    const a = (await store.get(bookingKey('booking-a@lab')))!;
    const { rule, problems } = parseRule(
      'project',
      'project.json',
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [{ TagName: 'Booking.Project', Value: '3010000.01' }],
      }),
    );
    assert.deepEqual(
      problems.filter((p) => p.severity === 'error'),
      [],
    );
    const tags: ResourceTags = {
      level: 'Study',
      orthancId: 'o1',
      patient: {},
      study: { StudyInstanceUID: a.studyInstanceUid },
      series: [],
    };
    assert.equal(matchRule(rule!, await withBookingFields(tags, store)).matched, true);
    const unbooked = await withBookingFields({ ...tags, study: { StudyInstanceUID: '1.2.3' } }, store);
    const verdict = matchRule(rule!, unbooked);
    assert.equal(verdict.matched, false);
    assert.match(verdict.reasons[0].explanation, /Booking\.Project equals|Booking\.Project contains/);
    const bad = parseRule(
      'x',
      'x.json',
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [{ TagName: 'Booking.Colour', Value: 'x' }],
      }),
    );
    assert.ok(bad.problems.some((p) => /'Booking\.Colour' is not a booking field/.test(p.message)));
  });
});

describe('worklist: CSV folders and the documented example', () => {
  it('reads every .csv file of a folder, and refuses a folder that is not there', async () => {
    const folder = makeTempDir('wl-csv-');
    writeFileSync(
      path.join(folder, 'mr1.csv'),
      '\uFEFFBookingID;ScheduledProcedureStepStartDate;ScheduledProcedureStepStartTime;ScheduledStationAETitle;PatientID;Project\nx1;20260302;0930;MR1;sub-9;P1\n',
    );
    writeFileSync(
      path.join(folder, 'ct.csv'),
      'BookingID,Start,ScheduledStationAETitle,PatientID,Modality,Status\nx2,2026-03-02T10:00,CT1,sub-8,CT,\nx3,2026-03-02T11:00,CT1,sub-7,CT,cancelled\n',
    );
    writeFileSync(path.join(folder, 'notes.txt'), 'not a booking');
    const { bookings, problems } = await readBookings(
      createCsvSource(folder),
      buildMapping('table', undefined),
      WINDOW,
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(
      bookings.map((b) => [b.id, b.station, b.modality, b.cancelled, b.start.getHours(), b.project ?? null]),
      [
        ['x2', 'CT1', 'CT', false, 10, null],
        ['x3', 'CT1', 'CT', true, 11, null],
        ['x1', 'MR1', 'MR', false, 9, 'P1'],
      ],
    );
    await assert.rejects(
      createCsvSource(path.join(folder, 'absent')).read(WINDOW),
      (e: Error) => e instanceof SourceError && /cannot be read/.test(e.message),
    );
  });

  it("README's example mapping is examples/worklist/mapping.json, and maps the example calendar", async () => {
    const readme = readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    const block = /## Worklist[\s\S]*?```json\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'README has a Worklist section with a JSON mapping');
    const documented = JSON.parse(block[1]) as { fields: unknown };
    const example = JSON.parse(readFileSync(path.join(__dirname, '../../examples/worklist/mapping.json'), 'utf8')) as {
      fields: unknown;
    };
    assert.deepEqual(documented.fields, example.fields);
    const text = readFileSync(path.join(__dirname, '../../examples/worklist/bookings.ics'), 'utf8');
    const { bookings, problems } = await mapCalendar(text.replace(/\n/g, '\r\n'), example);
    assert.deepEqual(
      bookings.map((b) => [
        b.dicom.PatientID,
        b.dicom.PatientName,
        b.session,
        b.project,
        b.station,
        b.dicom.ScheduledProcedureStepDescription,
      ]),
      [
        ['sub-017', 'sub-017_ses-02', '02', '3010000.01', 'PRISMA', 'resting state'],
        ['sub-018', 'sub-018_ses-01', '01', '3010000.02', 'SKYRA', 'research scan'],
      ],
    );
    assert.deepEqual(
      problems.map((p) => p.where),
      ['event UID example-3@lab-booking'],
    );
  });
});
