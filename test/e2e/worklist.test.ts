/**
 * Issue 19 end to end, real parts only: an .ics file with bookings for two scanners, the function
 * app's worklistSync timer run through the host's admin API, Orthanc 1.10.1 serving the files with
 * Debian's ModalityWorklists plugin, dcmtk's `findscu -W` as each scanner, a study sent with
 * `storescu` carrying a worklist entry's UIDs, and the booking shown arrived with its job.
 */
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localDay, localTime } from '../../shared/worklist/booking';
import { findscu, storescu } from '../support/dcmtk';
import { generateStudy } from '../support/dicom';
import { makeTempDir, waitFor } from '../support/process';
import { startStack, type Stack } from './stack';

const KEYS = {
  PatientID: '',
  PatientName: '',
  AccessionNumber: '',
  StudyInstanceUID: '',
  RequestedProcedureID: '',
  'ScheduledProcedureStepSequence[0].ScheduledStationAETitle': '',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': '',
  'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartTime': '',
  'ScheduledProcedureStepSequence[0].Modality': '',
};

function icsTime(date: Date): string {
  return `${localDay(date)}T${localTime(date)}`;
}

function calendar(
  events: Array<{ uid: string; start: Date; subject: string; scanner: string; extra?: string[] }>,
): string {
  const lines = ['BEGIN:VCALENDAR', 'VERSION:2.0', 'PRODID:-//e2e//worklist//EN'];
  for (const e of events)
    lines.push(
      'BEGIN:VEVENT',
      `UID:${e.uid}`,
      'DTSTAMP:20260101T000000Z',
      `DTSTART:${icsTime(e.start)}`,
      `SUMMARY:${e.subject}`,
      `LOCATION:${e.scanner}`,
      ...(e.extra ?? []),
      'END:VEVENT',
    );
  lines.push('END:VCALENDAR');
  return `${lines.join('\r\n')}\r\n`;
}

describe('worklist from bookings (e2e)', { timeout: 300_000 }, () => {
  let stack: Stack;
  const work = makeTempDir('e2e-worklist-');
  const folder = path.join(work, 'worklists');
  const ics = path.join(work, 'bookings.ics');
  // Half an hour from now, so "today" holds for the test's few minutes; tomorrow's is a day later.
  const base = new Date(Date.now() + 30 * 60_000);
  base.setSeconds(0, 0);
  const at = (minutes: number) => new Date(base.getTime() + minutes * 60_000);
  const events = [
    {
      uid: 'e2e-a1@lab',
      start: at(0),
      subject: 'sub-001',
      scanner: 'MR1',
      extra: ['DESCRIPTION:PatientName: Doe^Jane\\nProject: 3010000.01'],
    },
    {
      uid: 'e2e-a2@lab',
      start: at(10),
      subject: 'sub-002',
      scanner: 'MR2',
      extra: ['DESCRIPTION:Project: 3010000.02'],
    },
    { uid: 'e2e-c@lab', start: at(20), subject: 'sub-003', scanner: 'MR2' },
    { uid: 'e2e-b@lab', start: at(24 * 60), subject: 'sub-004', scanner: 'MR1' },
  ];
  const scanner = (aet: string) => ({
    host: '127.0.0.1',
    port: stack.orthanc.dicomPort,
    calledAet: stack.orthanc.aet,
    callingAet: aet,
  });
  let syncs = 0;

  /** Runs the timer through the admin API and waits for its summary line in the host's log. */
  async function sync(): Promise<void> {
    const count = () => stack.host.logs().split('Worklist synced from').length - 1;
    const seen = count();
    const invoked = await fetch(`${stack.host.url}/admin/functions/worklistSync`, {
      method: 'POST',
      headers: { 'x-functions-key': stack.masterKey, 'Content-Type': 'application/json' },
      body: JSON.stringify({ input: '' }),
    });
    assert.equal(invoked.status, 202);
    await waitFor(() => count() > seen, {
      timeoutMs: 30_000,
      description: 'the worklist sync to finish',
      onTimeout: () => stack.host.logs().slice(-3000),
    });
    syncs++;
  }

  async function api(route: string): Promise<unknown> {
    const answer = await fetch(`${stack.host.url}/api/${route}`, { headers: { 'x-functions-key': stack.functionKey } });
    assert.equal(answer.status, 200, `GET /api/${route}`);
    return answer.json();
  }

  before(async () => {
    writeFileSync(ics, calendar(events));
    stack = await startStack({
      orthanc: { worklistFolder: folder, allowedSenders: 'SCANNER1|MR1|127.0.0.1,SCANNER2|MR2|127.0.0.1' },
      env: {
        WORKLIST_SOURCE: ics,
        WORKLIST_FOLDER: folder,
        WORKLIST_DAYS_AHEAD: '2',
        WORKLIST_CALLERS: 'SCANNER1,SCANNER2',
        // Only the admin API runs it here.
        WORKLIST_SCHEDULE: '0 0 0 1 1 *',
      },
    });
    // The app registers the scanners in Orthanc when it starts, each allowed to query the worklist.
    await waitFor(
      async () => {
        const modalities = await stack.client.modalities();
        return ['SCANNER1', 'SCANNER2'].every(
          (n) => (modalities[n] as { AllowFindWorklist?: boolean } | undefined)?.AllowFindWorklist === true,
        );
      },
      { timeoutMs: 30_000, description: 'the scanners to be registered with AllowFindWorklist' },
    );
    await sync();
  });

  after(async () => {
    await stack?.stop();
  });

  it('writes one worklist file per booking, named without PHI', () => {
    const files = readdirSync(folder).sort();
    assert.equal(files.length, 4, files.join(', '));
    for (const f of files) assert.match(f, /^booking-[0-9a-f]{32}\.wl$/);
  });

  it('findscu -W answers each scanner with its own entries for the date asked', async () => {
    const today = localDay(at(0));
    const mr1Today = await findscu(
      scanner('MR1'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': today },
      { worklist: true },
    );
    console.log(`findscu -W as MR1 for ${today}: ${JSON.stringify(mr1Today)}`);
    assert.deepEqual(
      mr1Today.map((m) => [
        m.PatientID,
        m.PatientName,
        m.ScheduledStationAETitle,
        m.ScheduledProcedureStepStartDate,
        m.ScheduledProcedureStepStartTime,
        m.Modality,
      ]),
      [['sub-001', 'Doe^Jane', 'MR1', today, localTime(at(0)), 'MR']],
    );
    assert.match(mr1Today[0].StudyInstanceUID, /^2\.25\.\d+$/);
    assert.match(mr1Today[0].AccessionNumber, /^A[0-9A-Z]+$/);

    const tomorrow = localDay(at(24 * 60));
    const mr1Tomorrow = await findscu(
      scanner('MR1'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': tomorrow },
      { worklist: true },
    );
    assert.deepEqual(
      mr1Tomorrow.map((m) => m.PatientID),
      ['sub-004'],
    );

    const mr2 = await findscu(
      scanner('MR2'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': today },
      { worklist: true },
    );
    console.log(
      `findscu -W as MR2 for ${today}: ${JSON.stringify(mr2.map((m) => [m.PatientID, m.ScheduledStationAETitle]))}`,
    );
    assert.deepEqual(mr2.map((m) => m.PatientID).sort(), ['sub-002', 'sub-003']);
    assert.ok(mr2.every((m) => m.ScheduledStationAETitle === 'MR2'));

    // Orthanc's FilterIssuerAet: a scanner asking for everything still sees only its own station's entries.
    const mr1All = await findscu(scanner('MR1'), KEYS, { worklist: true });
    assert.deepEqual(mr1All.map((m) => m.PatientID).sort(), ['sub-001', 'sub-004']);
  });

  it('refuses the worklist to an AE title nobody registered', async () => {
    await assert.rejects(findscu(scanner('INTRUDER'), KEYS, { worklist: true }), /findscu/);
  });

  it('a study sent with a worklist entry’s UIDs shows as arrived and linked to its job', async () => {
    await stack.writeRule('by_project', {
      CheckOn: 'Study',
      IsActive: true,
      Action: 'DOWNLOAD',
      Tags: [{ TagName: 'Booking.Project', Value: '3010000.01', Operator: 'equals' }],
    });
    const [entry] = await findscu(
      scanner('MR1'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': localDay(at(0)) },
      { worklist: true },
    );
    const study = await generateStudy({
      patientID: entry.PatientID,
      patientName: entry.PatientName,
      accessionNumber: entry.AccessionNumber,
      extra: { StudyInstanceUID: entry.StudyInstanceUID },
      series: [{ seriesNumber: 1, instances: 2 }],
    });
    await storescu([study.dir], {
      host: '127.0.0.1',
      port: stack.orthanc.dicomPort,
      calledAet: stack.orthanc.aet,
      callingAet: 'MR1',
    });
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'by_project');
    assert.equal(job.status, 'succeeded', job.error);
    assert.equal(job.studyInstanceUid, entry.StudyInstanceUID);

    let booking: { key: string; status: string; jobIds: string[]; orthancStudyId?: string } | undefined;
    await waitFor(
      async () => {
        const day = (await api('worklist')) as { bookings: Array<typeof booking & { id: string }> };
        booking = day.bookings.find((b) => b?.id === 'e2e-a1@lab');
        return booking?.status === 'processed';
      },
      { timeoutMs: 30_000, description: 'the booking to show processed', onTimeout: () => JSON.stringify(booking) },
    );
    assert.deepEqual(booking!.jobIds, [job.id]);
    const detail = (await api(`worklist/${booking!.key}`)) as {
      orthancStudyId: string;
      jobs: Array<{ id: string; ruleId: string; status: string }>;
      patient?: unknown;
    };
    assert.equal(detail.orthancStudyId, await stack.studyId(entry.StudyInstanceUID));
    assert.deepEqual(
      detail.jobs.map((j) => [j.id, j.ruleId, j.status]),
      [[job.id, 'by_project', 'succeeded']],
    );
    const listing = JSON.stringify(await api('worklist'));
    assert.ok(!listing.includes('sub-00') && !listing.includes('Doe'), 'no patient attribute in the API by default');
  });

  it('a cancelled booking disappears from the next findscu -W', async () => {
    writeFileSync(
      ics,
      calendar(events.map((e) => (e.uid === 'e2e-c@lab' ? { ...e, extra: ['STATUS:CANCELLED'] } : e))),
    );
    await sync();
    const mr2 = await findscu(
      scanner('MR2'),
      { ...KEYS, 'ScheduledProcedureStepSequence[0].ScheduledProcedureStepStartDate': localDay(at(0)) },
      { worklist: true },
    );
    console.log(
      `findscu -W as MR2 after the cancellation: ${JSON.stringify(mr2.map((m) => [m.PatientID, m.ScheduledStationAETitle]))}`,
    );
    assert.deepEqual(
      mr2.map((m) => m.PatientID),
      ['sub-002'],
    );
    assert.equal(readdirSync(folder).length, 3);
    const day = (await api(`worklist?day=${localDay(at(20))}`)) as { bookings: Array<{ id: string; status: string }> };
    assert.equal(day.bookings.find((b) => b.id === 'e2e-c@lab')?.status, 'cancelled');
    assert.ok(syncs >= 2);
  });
});
