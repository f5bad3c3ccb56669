/**
 * Rule files: autorthanc's format unchanged (CheckOn, IsActive, Comment, Action, DestinationModality,
 * Tags[{TagName, Level, Value}]) plus optional extensions. Parsing never throws: every problem comes
 * back with its JSON path and a plain-English message, and unknown keys are warnings.
 */
import { z } from 'zod';
import { anonymiseSettingsSchema } from '../dicom/options';
import { OUTPUT_NAME_PLACEHOLDERS } from '../output/layout';
import {
  ON_NEW_INSTANCES,
  OPERATORS,
  type Condition,
  type ExpectResults,
  type MasterSettings,
  type Rule,
  type RuleFileProblem,
  DEFAULT_MASTER,
} from './model';
import { RULE_STEPS, RULE_TARGETS, type RuleStep } from '../vocabulary';
import { compileRulePattern, type RulePattern } from './regex';
import { resolveTag } from './tags';
import { resolveBookingTag } from '../worklist/rule-fields';
import { CONTAINER_NAME, checkPrefix, normalisePrefix } from '../blob/publish';
import {
  ON_TIMEOUT,
  SeriesExpressionError,
  parseDurationSeconds,
  parseSeriesExpression,
  type CompletionSettings,
} from './completion';

const caseInsensitive = <T extends string>(values: readonly T[], label: string) =>
  z.string().transform((raw, ctx) => {
    const found = values.find((v) => v.toLowerCase() === raw.trim().toLowerCase());
    if (!found) {
      ctx.addIssue({ code: 'custom', message: `${label} must be one of ${values.join(', ')}, got '${raw}'` });
      return z.NEVER;
    }
    return found;
  });

/** DICOM's AE value representation: up to 16 characters of the default repertoire, no backslash. */
const AE_TITLE = /^[\x20-\x5B\x5D-\x7E]{1,16}$/;

const tagConditionSchema = z.object({
  TagName: z
    .string({ message: 'TagName must be text, e.g. "StudyDescription"' })
    .trim()
    .min(1, 'TagName must not be empty'),
  /** autorthanc's levels; `Instance` reads like `Series` (one instance per series). */
  Level: caseInsensitive(['Patient', 'Study', 'Series', 'Instance'] as const, 'Level').optional(),
  Value: z.union([z.string(), z.number()], { message: 'Value must be text (or a number)' }).transform(String),
  Operator: caseInsensitive(OPERATORS, 'Operator').default('contains'),
});
const TAG_KEYS = new Set(Object.keys(tagConditionSchema.shape));

const ruleFileSchema = z.object({
  CheckOn: caseInsensitive(RULE_TARGETS, 'CheckOn'),
  IsActive: z.boolean({ message: 'IsActive must be true or false (without quotes)' }).optional(),
  Comment: z.string().optional(),
  Action: caseInsensitive(['DOWNLOAD', 'FORWARD'] as const, 'Action').optional(),
  DestinationModality: z.string().optional(),
  Tags: z.array(tagConditionSchema, { message: 'Tags must be a list of {TagName, Level, Value} objects' }).default([]),
  AnyOf: z
    .array(
      z.union([tagConditionSchema, z.array(tagConditionSchema).min(1, 'an AnyOf group must not be empty')], {
        message: 'each AnyOf entry must be a tag object or a list of tag objects',
      }),
    )
    .optional(),
  Steps: z.array(caseInsensitive(RULE_STEPS, 'Step')).min(1, 'Steps must name at least one step').optional(),
  Anonymise: anonymiseSettingsSchema.optional(),
  Zip: z
    .object({
      Level: z.number().int().min(0, 'Zip.Level must be 0-9').max(9, 'Zip.Level must be 0-9').default(1),
      KeepFolder: z.boolean().default(false),
    })
    .strict()
    .optional(),
  Forward: z
    .object({
      Destinations: z.array(z.string().trim().min(1)).min(1, 'Forward.Destinations must name at least one modality'),
    })
    .strict()
    .optional(),
  OutputName: z.string().trim().min(1).optional(),
  IncludeDerived: z.boolean().default(false),
  Publish: z
    .object({
      Blob: z
        .object({
          Container: z
            .string({ message: 'Publish.Blob.Container must be the name of a blob container' })
            .regex(
              CONTAINER_NAME,
              'Publish.Blob.Container must be 3-63 lowercase letters, digits and single hyphens (Azure container name)',
            ),
          Prefix: z
            .string({ message: 'Publish.Blob.Prefix must be text, e.g. "results/mri"' })
            .default('')
            .superRefine((value, ctx) => {
              const problem = checkPrefix(value);
              if (problem) ctx.addIssue({ code: 'custom', message: problem });
            })
            .transform(normalisePrefix),
        })
        .strict(),
    })
    .strict()
    .optional(),
  Completion: z
    .object({
      StableSeconds: z.number({ message: 'Completion.StableSeconds must be a number of seconds' }).min(0).optional(),
      RequiredSeries: z
        .string({ message: "Completion.RequiredSeries must be text, e.g. \"'Axial T2' and 'Sag T1'\"" })
        .optional(),
      MinInstances: z
        .number({ message: 'Completion.MinInstances must be a whole number' })
        .int('Completion.MinInstances must be a whole number')
        .min(1, 'Completion.MinInstances must be at least 1')
        .optional(),
      ForceAfter: z
        .union([z.string(), z.number()], { message: 'Completion.ForceAfter must be a duration, e.g. "90m"' })
        .optional(),
      OnTimeout: caseInsensitive(ON_TIMEOUT, 'Completion.OnTimeout').default('proceed'),
    })
    .strict()
    .optional(),
  OnNewInstances: caseInsensitive(ON_NEW_INSTANCES, 'OnNewInstances').default('replace'),
  ExpectResults: z
    .object({
      From: z
        .string({ message: 'ExpectResults.From must be the AE title that sends the results, e.g. "AINODE"' })
        .trim()
        .regex(AE_TITLE, 'ExpectResults.From must be an AE title: 1-16 characters, no backslash or control characters'),
      Within: z.union([z.string(), z.number()], {
        message: 'ExpectResults.Within must be a duration, e.g. "2h" or "30m"',
      }),
    })
    .strict()
    .optional(),
});

const KNOWN_KEYS = new Set(Object.keys(ruleFileSchema.shape));

/** master.json keys, with autorthanc's master_template.json spellings as aliases. */
const MASTER_KEYS: Record<string, keyof MasterSettings> = {
  DailyCheckHour: 'DailyCheckHour',
  RUN_DAILY_HOUR: 'DailyCheckHour',
  DailySweepEnabled: 'DailySweepEnabled',
  RUN_DAILY: 'DailySweepEnabled',
};
const masterFieldSchemas = {
  DailyCheckHour: z
    .number({ message: 'DailyCheckHour must be a whole number 0-23' })
    .int('DailyCheckHour must be a whole number 0-23')
    .min(0, 'DailyCheckHour must be 0-23')
    .max(23, 'DailyCheckHour must be 0-23'),
  DailySweepEnabled: z.boolean({ message: 'DailySweepEnabled must be true or false' }),
};

function jsonPath(path: PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    '',
  );
}

function parseJson(file: string, text: string, problems: RuleFileProblem[]): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    problems.push({ file, path: '', message: `not valid JSON: ${(error as Error).message}`, severity: 'error' });
    return undefined;
  }
}

/**
 * master.json never disables the system: a bad field falls back to its default (reported as an
 * error so `rules check` fails) and the other fields still apply.
 */
export function parseMaster(file: string, text: string): { master: MasterSettings; problems: RuleFileProblem[] } {
  const problems: RuleFileProblem[] = [];
  const json = parseJson(file, text, problems);
  if (json === undefined)
    return {
      master: { ...DEFAULT_MASTER },
      problems: problems.map((p) => ({ ...p, message: `${p.message}; using the defaults` })),
    };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    problems.push({
      file,
      path: '',
      message: 'master.json must hold one JSON object; using the defaults',
      severity: 'error',
    });
    return { master: { ...DEFAULT_MASTER }, problems };
  }
  const master: MasterSettings = { ...DEFAULT_MASTER };
  const setBy: Partial<Record<keyof MasterSettings, string>> = {};
  for (const [key, value] of Object.entries(json)) {
    const field = MASTER_KEYS[key];
    if (!field) {
      const message =
        key === 'AUTOMATIONS'
          ? "'AUTOMATIONS' is not used: every rule file in the folder is considered (switch rules with their own IsActive)"
          : `unknown key '${key}' is ignored (known: DailyCheckHour, DailySweepEnabled)`;
      problems.push({ file, path: key, message, severity: 'warning' });
      continue;
    }
    if (setBy[field]) {
      problems.push({
        file,
        path: key,
        message: `'${key}' and '${setBy[field]}' both set ${field}; '${key}' wins`,
        severity: 'warning',
      });
    }
    setBy[field] = key;
    const parsed = masterFieldSchemas[field].safeParse(value);
    if (parsed.success) (master as unknown as Record<string, unknown>)[field] = parsed.data;
    else
      problems.push({
        file,
        path: key,
        message: `${parsed.error.issues[0]?.message ?? 'invalid value'}; using the default ${String(DEFAULT_MASTER[field])}`,
        severity: 'error',
      });
  }
  return { master, problems };
}

/** Unknown keys inside tag objects: a misspelt `Operator` would otherwise silently mean `contains`. */
function tagKeyWarnings(json: Record<string, unknown>, warn: (path: string, message: string) => void): void {
  const visit = (value: unknown, path: string) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return;
    for (const key of Object.keys(value))
      if (!TAG_KEYS.has(key))
        warn(`${path}.${key}`, `unknown key '${key}' in a tag is ignored (known: ${[...TAG_KEYS].join(', ')})`);
  };
  if (Array.isArray(json.Tags)) json.Tags.forEach((t, i) => visit(t, `Tags[${i}]`));
  if (Array.isArray(json.AnyOf)) {
    json.AnyOf.forEach((g, gi) =>
      Array.isArray(g) ? g.forEach((t, i) => visit(t, `AnyOf[${gi}][${i}]`)) : visit(g, `AnyOf[${gi}]`),
    );
  }
}

/** Validates one rule file; `rule` is undefined when any error was found. Never throws. */
export function parseRule(id: string, file: string, text: string): { rule?: Rule; problems: RuleFileProblem[] } {
  const problems: RuleFileProblem[] = [];
  const error = (path: string, message: string) => problems.push({ file, path, message, severity: 'error' });
  const warn = (path: string, message: string) => problems.push({ file, path, message, severity: 'warning' });
  const json = parseJson(file, text, problems);
  if (json === undefined) return { problems };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    error('', 'a rule file must hold one JSON object');
    return { problems };
  }
  const object = json as Record<string, unknown>;
  for (const key of Object.keys(object)) {
    if (!KNOWN_KEYS.has(key)) warn(key, `unknown key '${key}' is ignored (check its spelling)`);
  }
  tagKeyWarnings(object, warn);
  const parsed = ruleFileSchema.safeParse(json);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const message = issue.code === 'invalid_type' && issue.input === undefined ? 'is required' : issue.message;
      error(jsonPath(issue.path), message);
    }
    return { problems };
  }
  const r = parsed.data;

  const toCondition = (t: z.infer<typeof tagConditionSchema>, path: string): Condition | undefined => {
    const tag = resolveBookingTag(t.TagName) ?? resolveTag(t.TagName);
    if (typeof tag === 'string') {
      error(`${path}.TagName`, tag);
      return undefined;
    }
    // Level only says where to look first (autorthanc's docs mark it "to remove"): absent, it follows the tag.
    const level =
      t.Level === undefined ? tag.inferredLevel : t.Level === 'Patient' || t.Level === 'Study' ? 'Study' : 'Series';
    let pattern: RulePattern | undefined;
    if (t.Operator === 'regex' || t.Operator === 'notRegex') {
      const compiled = compileRulePattern(t.Value);
      if ('error' in compiled) {
        error(`${path}.Value`, `invalid regular expression for ${tag.name}: ${compiled.error}`);
        return undefined;
      }
      pattern = compiled.pattern;
    }
    return { tag, level, operator: t.Operator, value: t.Value.normalize('NFC'), pattern };
  };
  const conditions = r.Tags.map((t, i) => toCondition(t, `Tags[${i}]`));
  const anyOf = (r.AnyOf ?? []).map((group, g) =>
    (Array.isArray(group) ? group : [group]).map((t, i) =>
      toCondition(t, Array.isArray(group) ? `AnyOf[${g}][${i}]` : `AnyOf[${g}]`),
    ),
  );

  if (r.IsActive === undefined)
    warn('IsActive', 'IsActive is missing: the rule is active (autorthanc treated a missing IsActive as inactive)');

  let steps: RuleStep[];
  if (r.Steps) {
    steps = r.Steps;
    const order = steps.map((s) => RULE_STEPS.indexOf(s));
    if (new Set(steps).size !== steps.length || order.some((o, i) => i > 0 && o <= order[i - 1]))
      error('Steps', `steps must be in the order ${RULE_STEPS.join(', ')}, each at most once`);
    if ((steps.includes('anonymise') || steps.includes('zip')) && !steps.includes('download'))
      error('Steps', "'anonymise' and 'zip' work on downloaded files: add 'download' first");
    if (r.Action) warn('Action', "'Steps' is set, so 'Action' is ignored");
  } else if (r.Action === 'FORWARD') {
    steps = ['forward'];
  } else {
    steps = ['download'];
    if (r.Action === undefined)
      warn(
        'Action',
        "neither 'Action' nor 'Steps' is set: matching resources are downloaded (autorthanc's documented behaviour)",
      );
  }

  const forwards = steps.includes('forward');
  const destinations = forwards
    ? [
        ...new Set([
          ...(r.Forward?.Destinations ?? []),
          ...(r.DestinationModality?.trim() ? [r.DestinationModality.trim()] : []),
        ]),
      ]
    : [];
  if (forwards && destinations.length === 0)
    error(
      r.Steps ? 'Forward.Destinations' : 'DestinationModality',
      'forwarding needs a destination (the name of a DICOM modality known to Orthanc, see ORTHANC_DICOM_MODALITIES)',
    );
  if (!forwards && r.DestinationModality?.trim())
    warn('DestinationModality', 'DestinationModality is ignored: this rule does not forward');
  if (!forwards && r.Forward) warn('Forward', "the 'Forward' block is ignored: 'forward' is not one of the steps");
  if (!steps.includes('zip') && r.Zip) warn('Zip', "the 'Zip' block is ignored: 'zip' is not one of the steps");
  if (!steps.includes('anonymise') && r.Anonymise)
    warn('Anonymise', "the 'Anonymise' block is ignored: 'anonymise' is not one of the steps");
  if (steps.includes('anonymise') && r.Anonymise === undefined)
    warn('Anonymise', "no 'Anonymise' block: the default profile (PS3.15 basic, pseudonymised IDs) is used");
  if (r.OutputName) {
    for (const [, key] of r.OutputName.matchAll(/\{([^}]*)\}/g)) {
      if (!(OUTPUT_NAME_PLACEHOLDERS as readonly string[]).includes(key))
        error(
          'OutputName',
          `unknown placeholder {${key}}; use ${OUTPUT_NAME_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
        );
    }
    if (/[{}]/.test(r.OutputName.replace(/\{[^{}]*\}/g, ''))) error('OutputName', 'unbalanced { or } in the template');
    if (!steps.includes('download'))
      warn('OutputName', "OutputName is ignored: only rules with a 'download' step write a folder");
  }
  const completion = completionOf(r.Completion, error, warn);
  if (r.OnNewInstances === 'new-version' && !steps.includes('download'))
    warn(
      'OnNewInstances',
      "'new-version' names a published folder or zip: without a 'download' step it acts as 'replace'",
    );
  const expectResults = expectResultsOf(r, forwards, error, warn);
  if (r.Publish?.Blob && !steps.includes('zip'))
    error('Publish.Blob', "Publish.Blob uploads the rule's zip: add 'zip' to Steps (after 'download')");
  if (problems.some((p) => p.severity === 'error')) return { problems };
  return {
    problems,
    rule: {
      id,
      file,
      checkOn: r.CheckOn,
      active: r.IsActive ?? true,
      comment: r.Comment,
      steps,
      destinations,
      conditions: conditions as Condition[],
      anyOf: anyOf as Condition[][],
      anonymise: steps.includes('anonymise') ? (r.Anonymise ?? anonymiseSettingsSchema.parse({})) : undefined,
      zip: { level: r.Zip?.Level ?? 1, keepFolder: r.Zip?.KeepFolder ?? false },
      outputName: r.OutputName,
      includeDerived: r.IncludeDerived,
      ...(r.Publish?.Blob
        ? { publish: { blob: { container: r.Publish.Blob.Container, prefix: r.Publish.Blob.Prefix } } }
        : {}),
      completion,
      onNewInstances: r.OnNewInstances,
      ...(expectResults ? { expectResults } : {}),
      raw: json,
    },
  };
}

/**
 * ExpectResults: only what a rule forwarded can come back, and a Result rule waits for arrivals
 * rather than holding them back, so Completion does not apply to it.
 */
function expectResultsOf(
  r: z.infer<typeof ruleFileSchema>,
  forwards: boolean,
  error: (path: string, message: string) => void,
  warn: (path: string, message: string) => void,
): ExpectResults | undefined {
  if (r.CheckOn === 'Result' && r.Completion)
    warn('Completion', "Completion is not used by a CheckOn 'Result' rule: results are acted on once they are stable");
  if (!r.ExpectResults) return undefined;
  if (!forwards) {
    error('ExpectResults', "ExpectResults waits for results of what the rule forwarded: add a 'forward' step");
    return undefined;
  }
  const withinSeconds = parseDurationSeconds(r.ExpectResults.Within);
  if (withinSeconds === undefined || withinSeconds <= 0) {
    error(
      'ExpectResults.Within',
      `'${String(r.ExpectResults.Within)}' is not a duration; write e.g. "2h", "30m" or "90s"`,
    );
    return undefined;
  }
  return { from: r.ExpectResults.From, withinSeconds };
}

/** The Completion block, its RequiredSeries parsed once (an error names the character position). */
function completionOf(
  block: z.infer<typeof ruleFileSchema>['Completion'],
  error: (path: string, message: string) => void,
  warn: (path: string, message: string) => void,
): CompletionSettings | undefined {
  if (!block) return undefined;
  const settings: CompletionSettings = {
    stableSeconds: block.StableSeconds,
    minInstances: block.MinInstances,
    onTimeout: block.OnTimeout,
  };
  if (block.RequiredSeries !== undefined) {
    try {
      settings.requiredSeries = {
        source: block.RequiredSeries,
        expression: parseSeriesExpression(block.RequiredSeries),
      };
    } catch (e) {
      if (!(e instanceof SeriesExpressionError)) throw e;
      error('Completion.RequiredSeries', `invalid expression: ${e.message}`);
    }
  }
  if (block.ForceAfter !== undefined) {
    settings.forceAfterSeconds = parseDurationSeconds(block.ForceAfter);
    if (settings.forceAfterSeconds === undefined)
      error('Completion.ForceAfter', `'${String(block.ForceAfter)}' is not a duration; write e.g. "90m", "2h", "30s"`);
  } else if (block.OnTimeout !== 'proceed') {
    warn('Completion.OnTimeout', 'OnTimeout has no effect without ForceAfter');
  }
  if (block.StableSeconds === undefined && block.RequiredSeries === undefined && block.MinInstances === undefined)
    warn('Completion', 'the Completion block sets no condition (StableSeconds, RequiredSeries or MinInstances)');
  return settings;
}
