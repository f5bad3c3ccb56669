import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { createRuleLoader, matchRule, parseMaster, parseRule, type ResourceTags, type Rule } from '../../shared/rules';

const EXAMPLES = path.resolve(__dirname, '../../examples/rules');

function rule(body: unknown, id = 'r'): Rule {
  const { rule: parsed, problems } = parseRule(id, `${id}.json`, JSON.stringify(body));
  assert.ok(parsed, `rule should load: ${JSON.stringify(problems)}`);
  return parsed;
}

const PATIENT_KEYS = new Set(['PatientName', 'PatientID', 'PatientBirthDate', 'PatientSex']);

/** Splits tags the way Orthanc does (PatientMainDicomTags / MainDicomTags). */
function study(studyTags: Record<string, string>, series: Array<Record<string, string>> = [{}]): ResourceTags {
  const patient = Object.fromEntries(Object.entries(studyTags).filter(([k]) => PATIENT_KEYS.has(k)));
  const own = Object.fromEntries(Object.entries(studyTags).filter(([k]) => !PATIENT_KEYS.has(k)));
  return {
    level: 'Study',
    orthancId: 's',
    patient,
    study: own,
    series: series.map((tags, i) => ({ orthancId: `se${i}`, tags })),
  };
}

const mri = study(
  {
    PatientName: 'Müller^Jürgen',
    PatientID: 'P1',
    StudyDescription: 'Brain MRI research',
    InstitutionName: 'Klinikum Süd',
  },
  [
    { Modality: 'MR', SeriesDescription: 'T1 MPRAGE sag', SeriesNumber: '1', '00180087': '3' },
    { Modality: 'MR', SeriesDescription: 'localizer', SeriesNumber: '2' },
  ],
);

describe('autorthanc rule files', () => {
  it('loads the tutorial example and matches as autorthanc documents (case-insensitive substring, all tags)', () => {
    const r = rule(JSON.parse(readFileSync(path.join(EXAMPLES, 'mri_brain.json'), 'utf8')), 'mri_brain');
    assert.deepEqual(r.steps, ['download']);
    assert.equal(matchRule(r, mri).matched, true);
    assert.equal(matchRule(r, study({ StudyDescription: 'Knee' }, [{ Modality: 'MR' }])).matched, false);
  });

  it('maps Action FORWARD with DestinationModality onto a forward step', () => {
    const r = rule({ CheckOn: 'Study', IsActive: true, Action: 'FORWARD', DestinationModality: 'PACS', Tags: [] });
    assert.deepEqual(r.steps, ['forward']);
    assert.deepEqual(r.destinations, ['PACS']);
  });

  it('passes a Series-level tag on a study when any series passes', () => {
    const r = rule({ CheckOn: 'Study', Tags: [{ TagName: 'SeriesDescription', Level: 'Series', Value: 'mprage' }] });
    assert.equal(matchRule(r, mri).matched, true);
    const check = matchRule(r, mri).reasons[0];
    assert.deepEqual(check.seen, ['T1 MPRAGE sag', 'localizer']);
  });

  it('fails (never throws) on a missing tag, and says so', () => {
    const r = rule({ CheckOn: 'Study', Tags: [{ TagName: 'ContrastBolusAgent', Value: 'gado' }] });
    const result = matchRule(r, mri);
    assert.equal(result.matched, false);
    assert.match(result.reasons[0].explanation, /ContrastBolusAgent contains "gado" \(Series\): failed, saw missing/);
  });

  it('matches non-ASCII values whatever their case and Unicode form', () => {
    assert.equal(
      matchRule(rule({ CheckOn: 'Study', Tags: [{ TagName: 'PatientName', Level: 'Patient', Value: 'MÜLLER' }] }), mri)
        .matched,
      true,
    );
    assert.equal(
      matchRule(rule({ CheckOn: 'Study', Tags: [{ TagName: 'InstitutionName', Value: 'su\u0308d' }] }), mri).matched,
      true,
    );
  });

  it('lets an empty Tags list match everything (autorthanc)', () => {
    assert.equal(matchRule(rule({ CheckOn: 'Study', Tags: [] }), mri).matched, true);
  });
});

describe('operators', () => {
  const cases: Array<[string, string, string, boolean]> = [
    ['contains', 'StudyDescription', 'brain', true],
    ['contains', 'StudyDescription', 'knee', false],
    ['equals', 'PatientID', 'p1', true],
    ['equals', 'PatientID', 'P', false],
    ['startsWith', 'StudyDescription', 'BRAIN', true],
    ['startsWith', 'StudyDescription', 'MRI', false],
    ['endsWith', 'StudyDescription', 'research', true],
    ['endsWith', 'StudyDescription', 'brain', false],
    ['regex', 'StudyDescription', '^brain\\s+mri', true],
    ['regex', 'StudyDescription', '^mri', false],
    ['notContains', 'StudyDescription', 'knee', true],
    ['notContains', 'StudyDescription', 'brain', false],
    ['notEquals', 'PatientID', 'P2', true],
    ['notEquals', 'PatientID', 'p1', false],
    ['notStartsWith', 'StudyDescription', 'knee', true],
    ['notStartsWith', 'StudyDescription', 'brain', false],
    ['notEndsWith', 'StudyDescription', 'mri', true],
    ['notEndsWith', 'StudyDescription', 'RESEARCH', false],
    ['notRegex', 'StudyDescription', 'knee|spine', true],
    ['notRegex', 'StudyDescription', 'br.in', false],
  ];
  for (const [operator, tag, value, expected] of cases) {
    it(`${tag} ${operator} ${JSON.stringify(value)} → ${expected}`, () => {
      assert.equal(
        matchRule(rule({ CheckOn: 'Study', Tags: [{ TagName: tag, Value: value, Operator: operator }] }), mri).matched,
        expected,
      );
    });
  }

  it('negations on Series tags pass only when no series has the positive form', () => {
    assert.equal(
      matchRule(
        rule({
          CheckOn: 'Study',
          Tags: [{ TagName: 'SeriesDescription', Value: 'localizer', Operator: 'notContains' }],
        }),
        mri,
      ).matched,
      false,
    );
    assert.equal(
      matchRule(
        rule({ CheckOn: 'Study', Tags: [{ TagName: 'SeriesDescription', Value: 'dwi', Operator: 'notContains' }] }),
        mri,
      ).matched,
      true,
    );
  });

  it('AnyOf passes when one group passes', () => {
    const r = rule({
      CheckOn: 'Study',
      Tags: [],
      AnyOf: [
        [{ TagName: 'Modality', Value: 'CT' }],
        [
          { TagName: 'Modality', Value: 'MR' },
          { TagName: 'StudyDescription', Value: 'brain' },
        ],
      ],
    });
    assert.equal(matchRule(r, mri).matched, true);
    const none = rule({
      CheckOn: 'Study',
      Tags: [],
      AnyOf: [
        { TagName: 'Modality', Value: 'CT' },
        { TagName: 'Modality', Value: 'US' },
      ],
    });
    assert.equal(matchRule(none, mri).matched, false);
  });

  it('reads (gggg,eeee) tags and infers levels from Orthanc main tags', () => {
    const r = rule({
      CheckOn: 'Study',
      Tags: [
        { TagName: '(0018,0087)', Value: '3', Operator: 'equals' },
        { TagName: 'PatientName', Value: 'müller' },
      ],
    });
    assert.equal(r.conditions[0].level, 'Series');
    assert.equal(r.conditions[0].tag.fromInstance, true);
    assert.equal(r.conditions[1].level, 'Study');
    assert.equal(matchRule(r, mri).matched, true);
  });

  it('matches the sending AE title', () => {
    for (const alias of ['RemoteAET', 'SendingAET', 'CallingAET']) {
      const r = rule({
        CheckOn: 'Study',
        IsActive: true,
        Tags: [{ TagName: alias, Value: 'MRCONSOLE', Operator: 'equals' }],
      });
      const withAet = (aets: Array<string | undefined>): ResourceTags => ({
        ...study({ StudyDescription: 'x' }),
        series: aets.map((a, i) => ({
          orthancId: `se${i}`,
          tags: { StudyDescription: 'MRCONSOLE' },
          ...(a ? { remoteAet: a } : {}),
        })),
      });
      assert.equal(matchRule(r, withAet(['OTHER', 'mrconsole'])).matched, true, alias);
      assert.equal(matchRule(r, withAet(['OTHER'])).matched, false, alias);
      assert.equal(matchRule(r, withAet([undefined])).matched, false, `${alias}: unknown sender fails`);
    }
  });
});

describe('validation', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['bad JSON', '{"CheckOn": "Study",', /^: not valid JSON/],
    ['missing CheckOn', { Tags: [] }, /^CheckOn: is required/],
    ['bad CheckOn', { CheckOn: 'Patient' }, /^CheckOn: CheckOn must be one of Study, Series/],
    ['wrong type', { CheckOn: 'Study', IsActive: 'yes' }, /^IsActive: /],
    ['unknown step', { CheckOn: 'Study', Steps: ['download', 'teleport'] }, /^Steps\[1\]: Step must be one of/],
    ['steps out of order', { CheckOn: 'Study', Steps: ['zip', 'download'] }, /^Steps: steps must be in the order/],
    [
      'zip without download',
      { CheckOn: 'Study', Steps: ['zip'] },
      /^Steps: 'anonymise' and 'zip' work on downloaded files/,
    ],
    [
      'bad regex',
      { CheckOn: 'Study', Tags: [{ TagName: 'StudyDescription', Value: '([', Operator: 'regex' }] },
      /^Tags\[0\]\.Value: invalid regular expression/,
    ],
    [
      'unknown tag',
      { CheckOn: 'Study', Tags: [{ TagName: 'StudyDescriptoin', Value: 'x' }] },
      /^Tags\[0\]\.TagName: 'StudyDescriptoin' is not a DICOM keyword/,
    ],
    [
      'unknown operator',
      { CheckOn: 'Study', Tags: [{ TagName: 'Modality', Value: 'x', Operator: 'like' }] },
      /^Tags\[0\]\.Operator: Operator must be one of/,
    ],
    [
      'forward without destination',
      { CheckOn: 'Study', Action: 'FORWARD' },
      /^DestinationModality: forwarding needs a destination/,
    ],
    [
      'bad anonymise option',
      { CheckOn: 'Study', Steps: ['download', 'anonymise'], Anonymise: { RetainLongitudinal: 'sometimes' } },
      /^Anonymise\.RetainLongitudinal: /,
    ],
    [
      'bad output placeholder',
      { CheckOn: 'Study', OutputName: '{PatientID}-{Secret}' },
      /^OutputName: unknown placeholder \{Secret\}/,
    ],
    ['not an object', [1, 2], /^: a rule file must hold one JSON object/],
  ];
  for (const [label, body, expected] of bad) {
    it(`reports ${label} with file, path and message`, () => {
      const { rule: parsed, problems } = parseRule(
        'bad',
        'bad.json',
        typeof body === 'string' ? body : JSON.stringify(body),
      );
      assert.equal(parsed, undefined);
      const errors = problems.filter((p) => p.severity === 'error');
      assert.ok(errors.length >= 1);
      assert.equal(errors[0].file, 'bad.json');
      assert.match(`${errors[0].path}: ${errors[0].message}`, expected);
    });
  }

  it('warns about unknown keys but loads the rule', () => {
    const { rule: parsed, problems } = parseRule(
      'w',
      'w.json',
      JSON.stringify({
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tagz: [],
        Tags: [{ TagName: 'Modality', Value: 'MR', Operater: 'equals' }],
      }),
    );
    assert.ok(parsed);
    assert.deepEqual(
      problems.map((p) => [p.severity, p.path]),
      [
        ['warning', 'Tagz'],
        ['warning', 'Tags[0].Operater'],
      ],
    );
    assert.equal(
      parsed.conditions[0].operator,
      'contains',
      'a misspelt Operator falls back to contains, and the warning says so',
    );
  });

  it('reads master.json and rejects a bad hour', () => {
    assert.deepEqual(parseMaster('master.json', '{"DailyCheckHour": 5, "DailySweepEnabled": false}').master, {
      DailyCheckHour: 5,
      DailySweepEnabled: false,
    });
    const bad = parseMaster('master.json', '{"DailyCheckHour": 24}');
    assert.equal(bad.master.DailyCheckHour, 2);
    assert.match(bad.problems[0].message, /DailyCheckHour must be 0-23/);
  });
});

describe('loader', () => {
  const dirs: string[] = [];
  after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
  const folder = () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'rules-'));
    dirs.push(d);
    return d;
  };

  it('keeps good rules working beside broken files, ignores templates, master and non-JSON files', async () => {
    const dir = folder();
    writeFileSync(path.join(dir, 'good.json'), JSON.stringify({ CheckOn: 'Study', Tags: [] }));
    writeFileSync(path.join(dir, 'broken.json'), '{ not json');
    writeFileSync(path.join(dir, 'wrong.json'), JSON.stringify({ CheckOn: 'Nope' }));
    writeFileSync(path.join(dir, 'my_template.json'), JSON.stringify({ CheckOn: 'Nope' }));
    writeFileSync(path.join(dir, 'master.json'), JSON.stringify({ DailyCheckHour: 4 }));
    writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    const snapshot = await createRuleLoader(dir).load();
    assert.deepEqual(
      snapshot.rules.map((r) => r.id),
      ['good'],
    );
    const errors = snapshot.problems
      .filter((p) => p.severity === 'error')
      .map((p) => `${p.file} ${p.path}: ${p.message}`);
    assert.equal(errors.length, 2, errors.join('\n'));
    assert.match(errors[0], /^broken\.json : not valid JSON/);
    assert.match(errors[1], /^wrong\.json CheckOn: CheckOn must be one of Study, Series, Result, got 'Nope'/);
    assert.ok(
      snapshot.problems.some((p) => p.file === 'good.json' && p.severity === 'warning' && p.path === 'IsActive'),
      'good.json is warned about its missing IsActive',
    );
    assert.deepEqual(snapshot.ignored.sort(), ['my_template.json', 'notes.txt']);
    assert.equal(snapshot.master.DailyCheckHour, 4);
  });

  it('applies writes, edits and deletions on the next load without re-parsing unchanged files', async () => {
    const dir = folder();
    const loader = createRuleLoader(dir);
    writeFileSync(path.join(dir, 'stable.json'), JSON.stringify({ CheckOn: 'Study', Tags: [] }));
    assert.deepEqual(
      (await loader.load()).rules.map((r) => r.id),
      ['stable'],
    );
    const parsesAfterFirst = loader.parses;

    writeFileSync(
      path.join(dir, 'hot.json'),
      JSON.stringify({ CheckOn: 'Study', Tags: [{ TagName: 'Modality', Value: 'CT' }] }),
    );
    let snapshot = await loader.load();
    assert.deepEqual(snapshot.rules.map((r) => r.id).sort(), ['hot', 'stable']);
    assert.equal(
      matchRule(
        snapshot.rules.find((r) => r.id === 'hot')!,
        mri,
      ).matched,
      false,
    );
    assert.equal(loader.parses, parsesAfterFirst + 1, 'only the new file was parsed');

    writeFileSync(
      path.join(dir, 'hot.json'),
      JSON.stringify({ CheckOn: 'Study', Tags: [{ TagName: 'Modality', Value: 'MR' }] }),
    );
    const later = new Date(Date.now() + 5000);
    utimesSync(path.join(dir, 'hot.json'), later, later);
    snapshot = await loader.load();
    assert.equal(
      matchRule(
        snapshot.rules.find((r) => r.id === 'hot')!,
        mri,
      ).matched,
      true,
    );
    assert.equal(loader.parses, parsesAfterFirst + 2);

    unlinkSync(path.join(dir, 'hot.json'));
    snapshot = await loader.load();
    assert.deepEqual(
      snapshot.rules.map((r) => r.id),
      ['stable'],
    );
    await loader.load();
    assert.equal(loader.parses, parsesAfterFirst + 2, 'unchanged files are not parsed again');
  });

  it('reports a missing folder instead of crashing', async () => {
    const snapshot = await createRuleLoader('/nonexistent/rules').load();
    assert.equal(snapshot.rules.length, 0);
    assert.match(snapshot.problems[0].message, /does not exist/);
  });
});
