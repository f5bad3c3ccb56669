/**
 * npm run worklist -- check <source> [--mapping <file>] [--sql <query>] [--date <YYYY-MM-DD>] [--days <n>] [--phi] [--json]
 *
 * A dry run of the worklist sync: reads the source (an .ics file or URL, a postgres:// database
 * with --sql or WORKLIST_SQL, a folder of CSV files) with the mapping (--mapping, WORKLIST_MAPPING,
 * or the defaults) and prints each worklist entry that would be written and every record that would
 * get none, with the reason, for today (or --date) and the --days after it. Writes nothing. Patient values are shown as *** unless --phi is given.
 * Exit 0 when every record maps, 1 when some do not, 2 when the source or mapping cannot be read.
 */
import { parseArgs } from 'node:util';
import { localDay, localTime, worklistFileName } from '../shared/worklist/booking';
import { sourceAndMapping } from '../shared/worklist/from-settings';
import { parseStart } from '../shared/worklist/mapping';
import { readBookings, syncWindow } from '../shared/worklist/sync';
import { worklistDataset } from '../shared/worklist/worklist-file';

const USAGE =
  'Usage: npm run worklist -- check <source> [--mapping <file>] [--sql <query>] [--date <YYYY-MM-DD>] [--days <n>] [--phi] [--json]';

function usage(message: string): never {
  console.error(`worklist: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

const PATIENT_VALUES = new Set(['PatientID', 'PatientName', 'PatientBirthDate', 'PatientSex', 'OtherPatientIDs']);

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      mapping: { type: 'string' },
      sql: { type: 'string' },
      days: { type: 'string' },
      date: { type: 'string' },
      phi: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const [command, source] = positionals;
  if (command !== 'check') usage(command ? `unknown command '${command}'` : 'a command is required');
  if (!source) usage('check needs a source');
  const days = Number(values.days ?? process.env.WORKLIST_DAYS_AHEAD ?? 1);
  if (!Number.isInteger(days) || days < 0 || days > 30) usage('--days must be a whole number from 0 to 30');

  let bookings: Awaited<ReturnType<typeof readBookings>>;
  const day = values.date === undefined ? new Date() : parseStart(values.date);
  if (!day) usage('--date must be a day, YYYY-MM-DD');
  const window = syncWindow(day, days);
  try {
    const { source: reader, mapping } = await sourceAndMapping({
      source,
      // An empty setting is an unset one, as the app reads it.
      sql: values.sql ?? (process.env.WORKLIST_SQL?.trim() || undefined),
      mappingFile: values.mapping ?? (process.env.WORKLIST_MAPPING?.trim() || undefined),
    });
    console.error(
      `Reading ${reader.describe} with ${mapping.origin}, ${localDay(window.from)} to ${localDay(new Date(window.to.getTime() - 1))}`,
    );
    bookings = await readBookings(reader, mapping, window);
  } catch (error) {
    console.error(`worklist: ${(error as Error).message}`);
    return 2;
  }
  const mask = (keyword: string, value: unknown) => (PATIENT_VALUES.has(keyword) && !values.phi ? '***' : value);
  const entries = bookings.bookings.map((b) => {
    const dataset = worklistDataset(b);
    const shown = Object.fromEntries(Object.entries(dataset).map(([k, v]) => [k, mask(k, v)]));
    return {
      booking: b.id,
      file: b.cancelled ? undefined : worklistFileName(b.id),
      cancelled: b.cancelled,
      project: b.project,
      dataset: shown,
    };
  });
  if (values.json) {
    console.log(JSON.stringify({ entries, problems: bookings.problems }, null, 2));
  } else {
    for (const b of bookings.bookings) {
      const when = b.cancelled ? 'cancelled' : `${localDay(b.start)} ${localTime(b.start).slice(0, 4)}`;
      console.log(
        `${when}  ${b.station.padEnd(16)} ${b.modality.padEnd(3)} booking ${b.id}${b.project ? `  project ${b.project}` : ''}${b.cancelled ? '' : `  -> ${worklistFileName(b.id)}`}`,
      );
      if (values.phi)
        console.log(
          `    PatientID ${b.dicom.PatientID ?? ''}  PatientName ${b.dicom.PatientName ?? b.dicom.PatientID ?? ''}`,
        );
    }
    for (const p of bookings.problems) console.log(`NO ENTRY  ${p.where}: ${p.message}`);
    console.log(
      `${entries.filter((e) => !e.cancelled).length} entr${entries.length === 1 ? 'y' : 'ies'} would be written, ${entries.filter((e) => e.cancelled).length} cancelled, ${bookings.problems.length} record(s) with problems`,
    );
  }
  return bookings.problems.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`worklist: ${(error as Error).message}`);
    process.exit(2);
  },
);
