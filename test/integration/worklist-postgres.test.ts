/**
 * The worklist sync from a booking table in a real PostgreSQL (the test harness's server, `pg` as
 * the app uses it), into the folder a real Orthanc serves with Debian's ModalityWorklists plugin,
 * with booking records in Azurite's Table storage; `findscu -W` asks as each of two scanners.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import axios from 'axios';
import pg from 'pg';
import { orthancModalityBody } from '../../shared/orthanc/peers';
import { createTableBookingStore } from '../../shared/storage/tableBookings';
import { localDay, localTime } from '../../shared/worklist/booking';
import { syncFromSettings } from '../../shared/worklist/from-settings';
import type { WorklistSettings } from '../../shared/worklist/settings';
import type { BookingStore } from '../../shared/worklist/store';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { findscu } from '../support/dcmtk';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { startPostgres, type PostgresServer } from '../support/postgres';
import { makeTempDir } from '../support/process';

const QUERY = `SELECT id AS "BookingID", starts_at AS "Start", scanner AS "ScheduledStationAETitle",
  subject AS "PatientID", subject_name AS "PatientName", project AS "Project", state AS "Status"
  FROM bookings WHERE starts_at >= $1 AND starts_at < $2 ORDER BY starts_at`;

const KEYS = {
  PatientID: '',
  PatientName: '',
  StudyInstanceUID: '',
  'ScheduledProcedureStepSequence[0].ScheduledStationAETitle': '',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': '',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime': '',
};

describe('worklist from a PostgreSQL booking table', { timeout: 120_000 }, () => {
  let postgres: PostgresServer;
  let orthanc: OrthancServer;
  let azurite: AzuriteServer;
  let store: BookingStore;
  const folder = path.join(makeTempDir('wl-pg-'), 'worklists');
  const log = {
    lines: [] as string[],
    info: (m: string) => void log.lines.push(m),
    warn: (m: string) => void log.lines.push(m),
    error: (m: string) => void log.lines.push(m),
  };
  const base = new Date(Date.now() + 30 * 60_000);
  base.setSeconds(0, 0);
  const at = (minutes: number) => new Date(base.getTime() + minutes * 60_000);
  let settings: WorklistSettings;

  async function query(text: string, values: unknown[] = []): Promise<void> {
    const client = new pg.Client({ connectionString: postgres.uri });
    await client.connect();
    try {
      await client.query(text, values);
    } finally {
      await client.end();
    }
  }

  const scanner = (aet: string) => ({
    host: '127.0.0.1',
    port: orthanc.dicomPort,
    calledAet: orthanc.aet,
    callingAet: aet,
  });

  before(async () => {
    [postgres, azurite] = await Promise.all([startPostgres({ database: 'bookings' }), startAzurite()]);
    orthanc = await startOrthanc({
      worklistFolder: folder,
      allowedSenders: 'SCANNER1|MR1|127.0.0.1,SCANNER2|MR2|127.0.0.1',
    });
    const http = axios.create({
      baseURL: orthanc.url,
      auth: { username: orthanc.username, password: orthanc.password },
    });
    // As the app registers them with WORKLIST_CALLERS=SCANNER1,SCANNER2.
    await http.put('/modalities/SCANNER1', orthancModalityBody({ AET: 'MR1', Host: '127.0.0.1', worklist: true }));
    await http.put('/modalities/SCANNER2', orthancModalityBody({ AET: 'MR2', Host: '127.0.0.1', worklist: true }));
    store = await createTableBookingStore(azurite.connectionString);
    await query(
      'CREATE TABLE bookings (id text PRIMARY KEY, starts_at timestamptz NOT NULL, scanner text, subject text, subject_name text, project text, state text)',
    );
    const rows: unknown[][] = [
      ['pg-1', at(0), 'MR1', 'sub-101', 'Roe^Richard', '3020000.01', 'confirmed'],
      ['pg-2', at(5), 'MR2', 'sub-102', null, '3020000.02', 'confirmed'],
      ['pg-3', at(15), 'MR2', 'sub-103', null, '3020000.02', 'confirmed'],
      ['pg-4', at(30), 'MR1', null, null, null, 'confirmed'],
      ['pg-old', new Date(base.getTime() - 5 * 86_400_000), 'MR1', 'sub-100', null, null, 'confirmed'],
    ];
    for (const row of rows) await query('INSERT INTO bookings VALUES ($1, $2, $3, $4, $5, $6, $7)', row);
    settings = { source: postgres.uri, type: 'postgres', sql: QUERY, folder, daysAhead: 1, graceHours: 12 };
  });

  after(async () => {
    await orthanc?.stop();
    await postgres?.stop();
    await azurite?.stop();
  });

  it('serves each scanner its bookings; a row without a subject is named and gets no file', async () => {
    const report = await syncFromSettings(settings, { store, log });
    assert.equal(report.ok, true, report.reason);
    assert.equal(report.written, 3);
    assert.equal(readdirSync(folder).length, 3);
    assert.deepEqual(
      report.problems.map((p) => `${p.where}: ${p.message}`),
      ['row 4 of the query (booking pg-4): PatientID: no subject; column PatientID is empty or did not match'],
    );
    const today = localDay(at(0));
    const mr1 = await findscu(
      scanner('MR1'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': today },
      { worklist: true },
    );
    console.log(
      `findscu -W as MR1: ${JSON.stringify(mr1.map((m) => [m.PatientID, m.PatientName, m.ScheduledStationAETitle, m.ScheduledProcedureStepStartTime]))}`,
    );
    assert.deepEqual(
      mr1.map((m) => [m.PatientID, m.PatientName, m.ScheduledStationAETitle, m.ScheduledProcedureStepStartTime]),
      [['sub-101', 'Roe^Richard', 'MR1', localTime(at(0))]],
    );
    const mr2 = await findscu(
      scanner('MR2'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': today },
      { worklist: true },
    );
    assert.deepEqual(mr2.map((m) => m.PatientID).sort(), ['sub-102', 'sub-103']);
    const records = await store.listDays(today, today);
    assert.deepEqual(
      records.map((r) => [r.id, r.station, r.project, r.status]),
      [
        ['pg-1', 'MR1', '3020000.01', 'scheduled'],
        ['pg-2', 'MR2', '3020000.02', 'scheduled'],
        ['pg-3', 'MR2', '3020000.02', 'scheduled'],
      ],
    );
    assert.ok(!JSON.stringify(records).includes('sub-10'), 'booking records hold no patient attribute');
  });

  it('is idempotent, and a cancelled row disappears from the next findscu -W', async () => {
    const again = await syncFromSettings(settings, { store, log });
    assert.deepEqual([again.written, again.rewritten, again.unchanged, again.removed], [0, 0, 3, 0]);
    await query("UPDATE bookings SET state = 'cancelled' WHERE id = 'pg-3'");
    const report = await syncFromSettings(settings, { store, log });
    assert.equal(report.cancelled, 1);
    const mr2 = await findscu(scanner('MR2'), KEYS, { worklist: true });
    assert.deepEqual(
      mr2.map((m) => m.PatientID),
      ['sub-102'],
    );
  });

  it('leaves the files alone when the database cannot be read, without showing its password', async () => {
    const before = readdirSync(folder).sort();
    const wrong = postgres.uri.replace(`:${postgres.password}@`, ':not-the-password@');
    const report = await syncFromSettings({ ...settings, source: wrong }, { store, log });
    assert.equal(report.ok, false);
    assert.match(
      report.reason ?? '',
      /^database postgresql:\/\/orthanc:\*\*\*@127\.0\.0\.1:\d+\/bookings: the query failed: password authentication failed/,
    );
    assert.ok(!(report.reason ?? '').includes('not-the-password'));
    assert.deepEqual(readdirSync(folder).sort(), before);
  });
});
