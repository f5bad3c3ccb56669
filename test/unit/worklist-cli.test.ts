/** `npm run worklist -- check`: the dry run prints what would be written and why a record gets nothing; it writes nothing. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';

const REPO = path.resolve(__dirname, '../..');

function cli(...args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO, 'scripts/worklist-cli.ts'), ...args], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, WORKLIST_MAPPING: '', WORKLIST_SQL: '' },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('worklist CLI', () => {
  it('lists the entries of a day and the records without one, exit 1 when some have problems', () => {
    const { status, stdout } = cli(
      'check',
      'examples/worklist/bookings.ics',
      '--mapping',
      'examples/worklist/mapping.json',
      '--date',
      '2026-03-02',
      '--days',
      '0',
    );
    assert.equal(status, 1, stdout);
    assert.match(
      stdout,
      /^20260302 0930 {2}PRISMA +MR {2}booking example-1@lab-booking {2}project 3010000\.01 {2}-> booking-[0-9a-f]{32}\.wl$/m,
    );
    assert.match(stdout, /^20260302 1100 {2}SKYRA /m);
    assert.match(
      stdout,
      /^NO ENTRY {2}event UID example-3@lab-booking: PatientID: no subject; SUMMARY is empty or did not match$/m,
    );
    assert.match(stdout, /^2 entries would be written, 0 cancelled, 1 record\(s\) with problems$/m);
    assert.ok(!stdout.includes('sub-017'), 'patient values stay hidden without --phi');
  });

  it('masks patient values in --json unless --phi is given', () => {
    const masked = cli(
      'check',
      'examples/worklist/bookings.ics',
      '--mapping',
      'examples/worklist/mapping.json',
      '--date',
      '2026-03-02',
      '--json',
    );
    const entries = (JSON.parse(masked.stdout) as { entries: Array<{ dataset: Record<string, unknown> }> }).entries;
    assert.equal(entries[0].dataset.PatientID, '***');
    const shown = cli(
      'check',
      'examples/worklist/bookings.ics',
      '--mapping',
      'examples/worklist/mapping.json',
      '--date',
      '2026-03-02',
      '--json',
      '--phi',
    );
    assert.equal(
      (JSON.parse(shown.stdout) as { entries: Array<{ dataset: Record<string, unknown> }> }).entries[0].dataset
        .PatientID,
      'sub-017',
    );
  });

  it('exits 2 naming why a source or mapping cannot be read', () => {
    const missing = cli('check', '/nonexistent/bookings.ics');
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /calendar \/nonexistent\/bookings\.ics cannot be read: ENOENT/);
    const badMapping = cli('check', 'examples/worklist/bookings.ics', '--mapping', 'README.md');
    assert.equal(badMapping.status, 2);
    assert.match(badMapping.stderr, /WORKLIST_MAPPING README\.md is not valid JSON/);
    assert.equal(cli('bogus').status, 2);
  });
});
