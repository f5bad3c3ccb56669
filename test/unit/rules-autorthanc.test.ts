/**
 * autorthanc's own files (its three templates and the tutorial's brain_study_x.json, copied verbatim
 * into examples/rules) behave as autorthanc documents them; master.json in both spellings; matching
 * edge cases (any-series, missing tags, non-ASCII); the derived-study guard; the tag collector reads
 * instances only when a rule needs them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  classify,
  collectResourceTags,
  matchRule,
  parseMaster,
  parseRule,
  type OrthancTagSource,
  type ResourceTags,
  type Rule,
} from '../../shared/rules';

const EXAMPLES = path.resolve(__dirname, '../../examples/rules');
const load = (file: string) =>
  parseRule(file.replace(/\.json$/, ''), file, readFileSync(path.join(EXAMPLES, file), 'utf8'));
const ok = (file: string): Rule => {
  const { rule, problems } = load(file);
  assert.ok(rule, `${file} loads: ${JSON.stringify(problems)}`);
  return rule;
};

function resource(
  patient: Record<string, string>,
  study: Record<string, string>,
  series: Array<Record<string, string>>,
  extra: Partial<ResourceTags> = {},
): ResourceTags {
  return {
    level: 'Study',
    orthancId: 'st',
    patient,
    study,
    series: series.map((tags, i) => ({ orthancId: `se${i}`, tags })),
    ...extra,
  };
}

describe('autorthanc templates and tutorial, as documented', () => {
  it('every *template* file is ignored as a rule by its name; master.json is settings; other .json files are rules', () => {
    for (const f of [
      'automation_template.json',
      'automation_template_series.json',
      'automation_template_test.json',
      'master_template.json',
      'masterplan.json',
      'notes.txt',
    ])
      assert.equal(classify(f), 'ignored', f);
    assert.equal(classify('master.json'), 'master');
    assert.equal(classify('brain_study_x.json'), 'rule');
  });

  it('automation_template.json copied unchanged is refused: its Action is the placeholder "DOWNLOAD or FORWARD" (autorthanc did nothing with it)', () => {
    const { rule, problems } = load('automation_template.json');
    assert.equal(rule, undefined);
    const errors = problems.filter((p) => p.severity === 'error');
    assert.deepEqual(
      errors.map((p) => [p.file, p.path]),
      [['automation_template.json', 'Action']],
    );
    assert.match(errors[0].message, /Action must be one of DOWNLOAD, FORWARD, got 'DOWNLOAD or FORWARD'/);
  });

  it('automation_template.json with an Action chosen loads inactive, with Patient/Study/Series levels', () => {
    const body = JSON.parse(readFileSync(path.join(EXAMPLES, 'automation_template.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const { rule, problems } = parseRule('copy', 'copy.json', JSON.stringify({ ...body, Action: 'DOWNLOAD' }));
    assert.ok(rule, JSON.stringify(problems));
    assert.equal(rule.active, false);
    assert.deepEqual(rule.steps, ['download']);
    assert.deepEqual(rule.destinations, [], 'DestinationModality only matters for FORWARD');
    assert.ok(problems.some((p) => p.path === 'DestinationModality' && p.severity === 'warning'));
    assert.deepEqual(
      rule.conditions.map((c) => [c.tag.name, c.level]),
      [
        ['PatientName', 'Study'],
        ['StudyDescription', 'Study'],
        ['SeriesDescription', 'Series'],
      ],
    );
  });

  const seriesTemplate = (description: string, number: string) =>
    resource(
      { PatientID: 'P' },
      { StudyDescription: 'x' },
      [{ SeriesDescription: description, SeriesNumber: number }],
      { level: 'Series' },
    );
  const seriesCases: Array<[string, string, boolean]> = [
    ['Processed RESULTS', '999', true],
    ['processed results', '1999', true], // substring, as autorthanc
    ['processed', '999', false], // every tag must pass
    ['processed results', '12', false],
  ];
  for (const [description, number, expected] of seriesCases) {
    it(`automation_template_series.json: series "${description}" #${number} → ${expected ? 'forwarded to PACS' : 'no match'}`, () => {
      const rule = ok('automation_template_series.json');
      assert.equal(rule.checkOn, 'Series');
      assert.deepEqual([rule.steps, rule.destinations, rule.active], [['forward'], ['PACS'], false]);
      assert.equal(matchRule(rule, seriesTemplate(description, number)).matched, expected);
    });
  }

  it('automation_template_test.json: active, downloads (no Action), warns about OverwriteIfAlreadyDownloaded, matches when any series description contains "a"', () => {
    const { rule, problems } = load('automation_template_test.json');
    assert.ok(rule);
    assert.deepEqual([rule.active, rule.steps], [true, ['download']]);
    assert.deepEqual(
      problems
        .filter((p) => p.severity === 'warning')
        .map((p) => p.path)
        .sort(),
      ['Action', 'OverwriteIfAlreadyDownloaded'],
    );
    assert.equal(
      matchRule(rule, resource({}, {}, [{ SeriesDescription: 'T1' }, { SeriesDescription: 'FLAIR' }])).matched,
      true,
    );
    assert.equal(
      matchRule(rule, resource({}, {}, [{ SeriesDescription: 'T1' }, { SeriesDescription: 'DWI' }])).matched,
      false,
    );
    assert.equal(
      matchRule(rule, resource({}, {}, [{ SeriesNumber: '1' }])).matched,
      false,
      'missing SeriesDescription fails',
    );
  });

  const tutorial: Array<[string, string, string[], boolean]> = [
    ['the tutorial study', 'MRI BRAIN research', ['Localizer', 'Axial T1 post', 'Sag T2'], true],
    ['brain, but no axial t1 series', 'MRI brain', ['Sag T1', 'Axial T2'], false],
    ['axial t1, but a knee', 'Knee', ['Axial T1'], false],
    ['no StudyDescription at all', '', ['Axial T1'], false],
  ];
  for (const [label, studyDescription, seriesDescriptions, expected] of tutorial) {
    it(`tutorial brain_study_x.json: ${label} → ${expected ? 'downloaded' : 'no match'}`, () => {
      const rule = ok('brain_study_x.json');
      assert.deepEqual([rule.id, rule.steps, rule.active], ['brain_study_x', ['download'], true]);
      const study: Record<string, string> = studyDescription ? { StudyDescription: studyDescription } : {};
      const result = matchRule(
        rule,
        resource(
          { PatientName: 'Müller^Jürgen' },
          study,
          seriesDescriptions.map((d) => ({ SeriesDescription: d })),
        ),
      );
      assert.equal(result.matched, expected, JSON.stringify(result.reasons));
      assert.deepEqual(result.reasons[1].seen, seriesDescriptions, 'the Series check reports every series it saw');
    });
  }

  it('every extension example loads without errors', () => {
    for (const f of [
      'mri_brain.json',
      'research_anonymised_zip.json',
      'share_anonymised.json',
      'console_or_dwi.json',
      'orthanc_anonymised_zip.json',
    ])
      ok(f);
  });
});

describe('matching edge cases', () => {
  const r = (tags: unknown[], extra: Record<string, unknown> = {}) => {
    const { rule, problems } = parseRule(
      'r',
      'r.json',
      JSON.stringify({ CheckOn: 'Study', IsActive: true, Action: 'DOWNLOAD', Tags: tags, ...extra }),
    );
    assert.ok(rule, JSON.stringify(problems));
    return rule;
  };
  const study = resource(
    { PatientName: 'Müller^Jürgen', PatientID: 'ÄÖÜ-1' },
    { StudyDescription: 'Kopf/Gehirn – Übersicht', InstitutionName: 'Straße' },
    [
      { Modality: 'MR', SeriesDescription: 't1_mprage', ProtocolName: 'ÉTUDE', StationName: 'Zu\u0308rich MR' },
      { Modality: 'SR' },
    ],
  );
  const table: Array<[string, unknown, boolean]> = [
    ['non-ASCII contains, other case', { TagName: 'PatientName', Value: 'JÜRGEN' }, true],
    [
      'non-ASCII equals, decomposed form (NFD)',
      { TagName: 'PatientName', Value: 'mu\u0308ller^ju\u0308rgen', Operator: 'equals' },
      true,
    ],
    ['non-ASCII startsWith', { TagName: 'PatientID', Value: 'äöü', Operator: 'startsWith' }, true],
    [
      'en dash and Ü in a description',
      { TagName: 'StudyDescription', Value: '– übersicht', Operator: 'endsWith' },
      true,
    ],
    [
      'value stored decomposed (NFD) in DICOM, rule composed',
      { TagName: 'StationName', Value: 'ZÜRICH', Operator: 'startsWith' },
      true,
    ],
    ['ß is not ss', { TagName: 'InstitutionName', Value: 'strasse' }, false],
    ['unicode regex, case-insensitive', { TagName: 'ProtocolName', Value: '^étude$', Operator: 'regex' }, true],
    ['Series tag: any series passes', { TagName: 'Modality', Value: 'SR', Operator: 'equals' }, true],
    ['Series tag missing on one series, present on another', { TagName: 'SeriesDescription', Value: 'mprage' }, true],
    [
      'Series negation: one series has the positive form',
      { TagName: 'Modality', Value: 'SR', Operator: 'notEquals' },
      false,
    ],
    ['missing tag fails contains', { TagName: 'AccessionNumber', Value: '' }, false],
    ['missing tag fails a negation too', { TagName: 'AccessionNumber', Value: 'x', Operator: 'notContains' }, false],
    ['missing instance tag fails', { TagName: 'MagneticFieldStrength', Value: '3' }, false],
    ['empty Value matches any present value (substring)', { TagName: 'StudyDescription', Value: '' }, true],
    ['numeric Value is text', { TagName: 'PatientID', Value: 1 }, true],
  ];
  for (const [label, tag, expected] of table) {
    it(`${label} → ${expected}`, () => {
      const result = matchRule(r([tag]), study);
      assert.equal(result.matched, expected, JSON.stringify(result.reasons));
      assert.equal(result.reasons.length, 1);
    });
  }

  it('a missing tag says "missing" in the reason instead of throwing', () => {
    const result = matchRule(r([{ TagName: 'AccessionNumber', Value: 'A1' }]), resource({}, {}, []));
    assert.equal(result.matched, false);
    assert.match(result.reasons[0].explanation, /saw missing/);
  });

  it('AnyOf groups are reported with their real outcome and group index', () => {
    const rule = r([{ TagName: 'StudyDescription', Value: 'kopf' }], {
      AnyOf: [
        [{ TagName: 'Modality', Value: 'CT' }],
        [
          { TagName: 'Modality', Value: 'MR' },
          { TagName: 'SeriesDescription', Value: 't1' },
        ],
      ],
    });
    const result = matchRule(rule, study);
    assert.equal(result.matched, true);
    assert.deepEqual(result.anyOf, { passed: true, groups: [false, true] });
    assert.deepEqual(
      result.reasons.map((c) => [c.group, c.passed]),
      [
        [undefined, true],
        [0, false],
        [1, true],
        [1, true],
      ],
    );
    const none = matchRule(r([], { AnyOf: ['CT', 'US'].map((v) => ({ TagName: 'Modality', Value: v })) }), study);
    assert.deepEqual([none.matched, none.anyOf?.groups], [false, [false, false]]);
  });

  it('skips studies Orthanc made (AnonymizedFrom/ModifiedFrom) unless IncludeDerived', () => {
    const derived = { ...study, derivedFrom: 'orig' };
    const plain = r([{ TagName: 'Modality', Value: 'MR' }]);
    assert.equal(matchRule(plain, study).matched, true);
    const skipped = matchRule(plain, derived);
    assert.equal(skipped.matched, false);
    assert.match(skipped.skipped ?? '', /IncludeDerived/);
    assert.equal(matchRule(r([{ TagName: 'Modality', Value: 'MR' }], { IncludeDerived: true }), derived).matched, true);
  });

  it('Steps, Forward and Zip normalise as documented', () => {
    const all = r([], {
      Steps: ['download', 'anonymise', 'zip', 'forward'],
      Forward: { Destinations: ['A'] },
      DestinationModality: 'B',
      Zip: { Level: 9 },
      OutputName: '{PatientID}-{StudyDate}',
    });
    assert.deepEqual(all.steps, ['download', 'anonymise', 'zip', 'forward']);
    assert.deepEqual(all.destinations, ['A', 'B']);
    assert.deepEqual(all.zip, { level: 9, keepFolder: false });
    assert.equal(all.anonymise?.Identity, 'pseudonym', 'anonymise without a block uses the default profile');
    assert.deepEqual(r([]).zip, { level: 1, keepFolder: false });
    assert.equal(r([]).includeDerived, false);
    const forwardOriginal = r([], { Steps: ['forward'], Forward: { Destinations: ['PACS'] } });
    assert.deepEqual([forwardOriginal.steps, forwardOriginal.destinations], [['forward'], ['PACS']]);
    assert.deepEqual((forwardOriginal.raw as { Steps: string[] }).Steps, ['forward'], 'raw keeps the file as written');
  });
});

describe('master.json', () => {
  const cases: Array<
    [string, string, { DailyCheckHour: number; DailySweepEnabled: boolean }, Array<[string, string, RegExp]>]
  > = [
    [
      'our keys',
      '{"DailyCheckHour": 5, "DailySweepEnabled": false}',
      { DailyCheckHour: 5, DailySweepEnabled: false },
      [],
    ],
    [
      "autorthanc's master_template.json keys",
      '{"RUN_DAILY": true, "RUN_DAILY_HOUR": 23, "AUTOMATIONS": []}',
      { DailyCheckHour: 23, DailySweepEnabled: true },
      [['warning', 'AUTOMATIONS', /not used/]],
    ],
    ['empty object: defaults', '{}', { DailyCheckHour: 2, DailySweepEnabled: true }, []],
    [
      'hour 24: default hour, switch kept',
      '{"DailyCheckHour": 24, "DailySweepEnabled": false}',
      { DailyCheckHour: 2, DailySweepEnabled: false },
      [['error', 'DailyCheckHour', /0-23/]],
    ],
    [
      'hour 1.5',
      '{"DailyCheckHour": 1.5}',
      { DailyCheckHour: 2, DailySweepEnabled: true },
      [['error', 'DailyCheckHour', /whole number/]],
    ],
    [
      'switch as a string',
      '{"DailySweepEnabled": "no"}',
      { DailyCheckHour: 2, DailySweepEnabled: true },
      [['error', 'DailySweepEnabled', /true or false/]],
    ],
    [
      'unknown key',
      '{"DailyHour": 4}',
      { DailyCheckHour: 2, DailySweepEnabled: true },
      [['warning', 'DailyHour', /unknown key/]],
    ],
    [
      "broken JSON (as autorthanc's own master_template.json)",
      '{"RUN_DAILY": true, "AUTOMATIONS": [{} {}]}',
      { DailyCheckHour: 2, DailySweepEnabled: true },
      [['error', '', /not valid JSON.*defaults/]],
    ],
  ];
  for (const [label, text, expected, problems] of cases) {
    it(label, () => {
      const parsed = parseMaster('master.json', text);
      assert.deepEqual(parsed.master, expected);
      assert.equal(parsed.problems.length, problems.length, JSON.stringify(parsed.problems));
      problems.forEach(([severity, p, message], i) => {
        assert.deepEqual(
          [parsed.problems[i].file, parsed.problems[i].severity, parsed.problems[i].path],
          ['master.json', severity, p],
        );
        assert.match(parsed.problems[i].message, message);
      });
    });
  }

  it('examples/rules/master.json is valid', () => {
    assert.deepEqual(parseMaster('master.json', readFileSync(path.join(EXAMPLES, 'master.json'), 'utf8')).problems, []);
  });
});

describe('collectResourceTags', () => {
  function fakeOrthanc(): OrthancTagSource & { calls: string[] } {
    const calls: string[] = [];
    return {
      calls,
      getStudy: async (id) => (
        calls.push(`study ${id}`),
        {
          ID: id,
          MainDicomTags: { StudyDescription: 'Brain' },
          PatientMainDicomTags: { PatientName: 'Müller^Jürgen' },
          Series: ['a', 'b'],
          ModifiedFrom: 'orig',
        }
      ),
      getSeries: async (id) => (
        calls.push(`series ${id}`),
        {
          ID: id,
          MainDicomTags: { Modality: 'MR', SeriesDescription: id },
          ParentStudy: 'st',
          Instances: [`${id}-i1`, `${id}-i2`],
        }
      ),
      getInstanceTags: async (id) => (
        calls.push(`tags ${id}`),
        {
          MagneticFieldStrength: id.startsWith('a') ? '3' : '1.5',
          Modality: 'XX',
          ImageType: ['ORIGINAL', 'PRIMARY'],
          ReferencedImageSequence: [{ x: 1 }],
        }
      ),
      getInstanceTagsByNumber: async (id) => (calls.push(`numbers ${id}`), { '0029,1010': 'private' }),
      getMetadata: async (_level, id, name) => (
        calls.push(`metadata ${id} ${name}`),
        id.startsWith('a') ? 'MRCONSOLE' : undefined
      ),
    };
  }

  it('uses only main tags when the rules need nothing else', async () => {
    const orthanc = fakeOrthanc();
    const tags = await collectResourceTags(orthanc, 'Study', 'st', ['StudyDescription', 'Modality', 'PatientName']);
    assert.deepEqual(orthanc.calls.sort(), ['series a', 'series b', 'study st']);
    assert.deepEqual(
      [tags.patient, tags.study, tags.derivedFrom],
      [{ PatientName: 'Müller^Jürgen' }, { StudyDescription: 'Brain' }, 'orig'],
    );
  });

  it('reads ONE instance per series for other keywords, (gggg,eeee) tags and the sending AE; main tags win', async () => {
    const orthanc = fakeOrthanc();
    const tags = await collectResourceTags(orthanc, 'Study', 'st', [
      'MagneticFieldStrength',
      '(0029,1010)',
      'CallingAET',
    ]);
    assert.deepEqual(orthanc.calls.filter((c) => !c.startsWith('s')).sort(), [
      'metadata a-i1 RemoteAET',
      'metadata b-i1 RemoteAET',
      'numbers a-i1',
      'numbers b-i1',
      'tags a-i1',
      'tags b-i1',
    ]);
    assert.deepEqual(
      tags.series.map((s) => [
        s.tags.MagneticFieldStrength,
        s.tags['00291010'],
        s.tags.Modality,
        s.tags.ImageType,
        s.remoteAet,
      ]),
      [
        ['3', 'private', 'MR', 'ORIGINAL\\PRIMARY', 'MRCONSOLE'],
        ['1.5', 'private', 'MR', 'ORIGINAL\\PRIMARY', undefined],
      ],
    );
    assert.equal(tags.series[0].tags.ReferencedImageSequence, undefined, 'sequences are not text');
  });

  it('for a Series resource reads only that series and its study', async () => {
    const orthanc = fakeOrthanc();
    const tags = await collectResourceTags(orthanc, 'Series', 'b', []);
    assert.deepEqual(orthanc.calls, ['series b', 'study st']);
    assert.deepEqual(
      tags.series.map((s) => s.orthancId),
      ['b'],
    );
  });
});
