/**
 * Orthanc 1.12 features used only when reported: what /system answers mean (capabilitiesOf), the label a
 * rule gets (Orthanc allows 1 to 64 of [A-Za-z0-9_-]), and that a label that cannot be written never
 * fails the job. Against real Orthanc 1.10 and 1.12: test/integration/orthanc-capabilities.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capabilitiesOf, orthancVersionAtLeast } from '../../shared/orthanc/capabilities';
import { OrthancError } from '../../shared/orthanc/client';
import { labelProcessedStudy, ruleLabel } from '../../shared/pipeline/studyLabels';
import { seriesSchema, type OrthancSystem } from '../../shared/orthanc/schemas';

const base = { DicomAet: 'ORTHANC', DicomPort: 4242 };
// Trimmed from real answers of Debian's Orthanc 1.10.1 and 1.12.7 (SQLite, then PostgreSQL plugin 5.0).
const v110: OrthancSystem = { ...base, Version: '1.10.1', ApiVersion: 16 };
const v1127 = {
  ...base,
  Version: '1.12.7',
  ApiVersion: 27,
  HasLabels: true,
  Capabilities: { HasExtendedChanges: true, HasExtendedFind: true },
} as OrthancSystem;
const v1127pg = { ...v1127, Capabilities: { HasExtendedChanges: false, HasExtendedFind: false } } as OrthancSystem;

describe('Orthanc capabilities from /system', () => {
  it('finds labels and the typed change feed only where Orthanc reports them', () => {
    assert.deepEqual(capabilitiesOf(v110), { version: '1.10.1', labels: false, extendedChanges: false });
    assert.deepEqual(capabilitiesOf(v1127), { version: '1.12.7', labels: true, extendedChanges: true });
    assert.deepEqual(capabilitiesOf(v1127pg), { version: '1.12.7', labels: true, extendedChanges: false });
    // 1.12.0-1.12.4 report HasLabels but no Capabilities object.
    const v1124 = { ...base, Version: '1.12.4', ApiVersion: 24, HasLabels: true } as OrthancSystem;
    assert.deepEqual(capabilitiesOf(v1124), { version: '1.12.4', labels: true, extendedChanges: false });
    // A database plugin without labels makes HasLabels false even on 1.12.
    const noLabels = { ...v1127, HasLabels: false } as OrthancSystem;
    assert.equal(capabilitiesOf(noLabels).labels, false);
    // A field with a truthy non-boolean value is no promise.
    assert.equal(capabilitiesOf({ ...v110, HasLabels: 'yes' }).labels, false);
  });

  it('compares versions numerically, and takes a mainline build as newer than any release', () => {
    assert.equal(orthancVersionAtLeast('1.12.7', [1, 12, 5]), true);
    assert.equal(orthancVersionAtLeast('1.12.10', [1, 12, 5]), true);
    assert.equal(orthancVersionAtLeast('1.12.4', [1, 12, 5]), false);
    assert.equal(orthancVersionAtLeast('1.10.1', [1, 12, 0]), false);
    assert.equal(orthancVersionAtLeast('1.9', [1, 12, 0]), false);
    assert.equal(orthancVersionAtLeast('2.0.0', [1, 12, 0]), true);
    assert.equal(orthancVersionAtLeast('mainline', [1, 12, 5]), true);
  });
});

describe('Orthanc 1.12 answers', () => {
  it('reads a series whose main tags hold a sequence (1.12 lists RequestAttributesSequence there)', () => {
    const series = seriesSchema.parse({
      ID: 's',
      Type: 'Series',
      IsStable: true,
      LastUpdate: '20261202T061130',
      ParentStudy: 'p',
      Instances: [],
      MainDicomTags: {
        Modality: 'MR',
        SeriesNumber: '1',
        RequestAttributesSequence: [{ RequestedProcedureID: 'X' }],
      },
    });
    assert.deepEqual(series.MainDicomTags, { Modality: 'MR', SeriesNumber: '1' });
  });
});

describe('rule labels', () => {
  const valid = /^[A-Za-z0-9_-]{1,64}$/;

  it('is automation-<rule> for a rule id Orthanc accepts as it is', () => {
    assert.equal(ruleLabel('ct-brain_2'), 'automation-ct-brain_2');
    assert.equal(ruleLabel('a'.repeat(53)), `automation-${'a'.repeat(53)}`);
  });

  it('replaces what a label cannot carry and keeps rules apart by a hash of their real id', () => {
    const labels = [
      'T1 series.v2',
      'T1_series_v2',
      'T1-series.v2',
      'Müller',
      '../x',
      'a'.repeat(54),
      'a'.repeat(200),
    ].map(ruleLabel);
    for (const label of labels) assert.match(label, valid);
    assert.equal(new Set(labels).size, labels.length, 'no two rules share a label');
    assert.equal(labels[1], 'automation-T1_series_v2', 'a valid id is kept as it is');
    assert.match(labels[0], /^automation-T1_series_v2-[0-9a-f]{8}$/);
    assert.equal(labels[6].length, 64);
    assert.equal(ruleLabel('T1 series.v2'), labels[0], 'the same rule always gets the same label');
  });
});

describe('labelProcessedStudy', () => {
  const job = { id: 'job-1', ruleId: 'brain', status: 'succeeded', level: 'Study', resourceId: 'study-1' } as const;
  const capabilities = { version: '1.12.7', labels: true, extendedChanges: true };

  function fakeOrthanc(overrides: { labels?: boolean; addLabel?: () => Promise<void> } = {}) {
    const added: string[] = [];
    return {
      added,
      orthanc: {
        capabilities: async () => ({ ...capabilities, labels: overrides.labels ?? true }),
        getSeries: async (id: string) => ({ ParentStudy: `parent-of-${id}` }) as never,
        addLabel: async (level: string, id: string, label: string) => {
          if (overrides.addLabel) await overrides.addLabel();
          added.push(`${level}/${id}/${label}`);
        },
      },
    };
  }
  const silentLog = () => {
    const lines: string[] = [];
    return {
      lines,
      log: { info: () => undefined, warn: (m: string) => lines.push(m), error: (m: string) => lines.push(m) },
    };
  };

  it('labels the study of a study job and the parent study of a series job, and nothing for a failed job', async () => {
    const { orthanc, added } = fakeOrthanc();
    const { log, lines } = silentLog();
    assert.equal(await labelProcessedStudy({ orthanc, log }, job), 'labelled');
    assert.equal(
      await labelProcessedStudy({ orthanc, log }, { ...job, level: 'Series', resourceId: 'series-9', ruleId: 't1' }),
      'labelled',
    );
    assert.equal(await labelProcessedStudy({ orthanc, log }, { ...job, status: 'failed' }), 'skipped');
    assert.deepEqual(added, ['studies/study-1/automation-brain', 'studies/parent-of-series-9/automation-t1']);
    assert.deepEqual(lines, []);
  });

  it('sends nothing to an Orthanc without labels', async () => {
    const { orthanc, added } = fakeOrthanc({ labels: false });
    const { log, lines } = silentLog();
    assert.equal(await labelProcessedStudy({ orthanc, log }, job), 'unsupported');
    assert.deepEqual(added, []);
    assert.deepEqual(lines, []);
  });

  it('never throws when Orthanc refuses or cannot be reached: it logs a warning naming job and label', async () => {
    const refusing = fakeOrthanc({
      addLabel: async () => {
        throw new OrthancError('Orthanc PUT /studies/study-1/labels/automation-brain answered 400', {
          method: 'PUT',
          path: '/studies/study-1/labels/automation-brain',
          status: 400,
        });
      },
    });
    const { log, lines } = silentLog();
    assert.equal(await labelProcessedStudy({ orthanc: refusing.orthanc, log }, job), 'failed');
    const down = {
      ...refusing.orthanc,
      capabilities: async () => {
        throw new Error('connect ECONNREFUSED 127.0.0.1:8042');
      },
    };
    assert.equal(await labelProcessedStudy({ orthanc: down, log }, job), 'failed');
    assert.equal(lines.length, 2);
    assert.match(lines[0], /^Job job-1: label automation-brain not added in Orthanc: .*400/);
    assert.match(lines[1], /ECONNREFUSED/);
  });
});
