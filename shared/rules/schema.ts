/**
 * Rule files: autorthanc's format unchanged (CheckOn, IsActive, Comment, Action, DestinationModality,
 * Tags[{TagName, Level, Value}]) plus optional extensions. Parsing never throws: every problem comes
 * back with its JSON path and a plain-English message, and unknown keys are warnings.
 */
import { z } from 'zod';
import { anonymiseSettingsSchema } from '../dicom/options';
import { OUTPUT_NAME_PLACEHOLDERS } from '../output/layout';
import { OPERATORS, STEP_ORDER, type Condition, type MasterSettings, type Rule, type RuleFileProblem, type StepName, DEFAULT_MASTER } from './model';
import { resolveTag } from './tags';

const caseInsensitive = <T extends string>(values: readonly T[], label: string) =>
  z.string().transform((raw, ctx) => {
    const found = values.find((v) => v.toLowerCase() === raw.trim().toLowerCase());
    if (!found) {
      ctx.addIssue({ code: 'custom', message: `${label} must be one of ${values.join(', ')}, got '${raw}'` });
      return z.NEVER;
    }
    return found;
  });

const tagConditionSchema = z.object({
  TagName: z.string().min(1, 'TagName must not be empty'),
  Level: caseInsensitive(['Patient', 'Study', 'Series', 'Instance'] as const, 'Level').optional(),
  Value: z.union([z.string(), z.number()]).transform(String),
  Operator: caseInsensitive(OPERATORS, 'Operator').default('contains'),
});

const ruleFileSchema = z.object({
  CheckOn: caseInsensitive(['Study', 'Series'] as const, 'CheckOn'),
  IsActive: z.boolean().default(true),
  Comment: z.string().optional(),
  Action: caseInsensitive(['DOWNLOAD', 'FORWARD'] as const, 'Action').optional(),
  DestinationModality: z.string().optional(),
  Tags: z.array(tagConditionSchema).default([]),
  AnyOf: z.array(z.union([tagConditionSchema, z.array(tagConditionSchema).min(1)])).optional(),
  Steps: z.array(caseInsensitive(STEP_ORDER, 'Step')).min(1).optional(),
  Anonymise: anonymiseSettingsSchema.optional(),
  Zip: z.object({ Level: z.number().int().min(0).max(9).default(1), KeepFolder: z.boolean().default(false) }).strict().optional(),
  Forward: z.object({ Destinations: z.array(z.string().min(1)).min(1) }).strict().optional(),
  OutputName: z.string().min(1).optional(),
  IncludeDerived: z.boolean().default(false),
});

const KNOWN_KEYS = new Set(Object.keys(ruleFileSchema.shape));

const masterSchema = z.object({
  DailyCheckHour: z.number().int().min(0, 'DailyCheckHour must be 0-23').max(23, 'DailyCheckHour must be 0-23').default(DEFAULT_MASTER.DailyCheckHour),
  DailySweepEnabled: z.boolean().default(DEFAULT_MASTER.DailySweepEnabled),
});

function jsonPath(path: PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

function parseJson(file: string, text: string, problems: RuleFileProblem[]): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    problems.push({ file, path: '', message: `not valid JSON: ${(error as Error).message}`, severity: 'error' });
    return undefined;
  }
}

export function parseMaster(file: string, text: string): { master: MasterSettings; problems: RuleFileProblem[] } {
  const problems: RuleFileProblem[] = [];
  const json = parseJson(file, text, problems);
  if (json === undefined) return { master: DEFAULT_MASTER, problems };
  const parsed = masterSchema.safeParse(json);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push({ file, path: jsonPath(issue.path), message: `${issue.message}; using defaults`, severity: 'error' });
    return { master: DEFAULT_MASTER, problems };
  }
  for (const key of Object.keys(json as object)) {
    if (!(key in masterSchema.shape)) problems.push({ file, path: key, message: `unknown key '${key}' is ignored`, severity: 'warning' });
  }
  return { master: parsed.data, problems };
}

/** Validates one rule file; `rule` is undefined when any error was found. */
export function parseRule(id: string, file: string, text: string): { rule?: Rule; problems: RuleFileProblem[] } {
  const problems: RuleFileProblem[] = [];
  const error = (path: string, message: string) => problems.push({ file, path, message, severity: 'error' });
  const json = parseJson(file, text, problems);
  if (json === undefined) return { problems };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    error('', 'a rule file must hold one JSON object');
    return { problems };
  }
  for (const key of Object.keys(json)) {
    if (!KNOWN_KEYS.has(key)) problems.push({ file, path: key, message: `unknown key '${key}' is ignored (check its spelling)`, severity: 'warning' });
  }
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
    const tag = resolveTag(t.TagName);
    if (typeof tag === 'string') {
      error(`${path}.TagName`, tag);
      return undefined;
    }
    const level = t.Level === undefined ? tag.inferredLevel : t.Level === 'Patient' || t.Level === 'Study' ? 'Study' : 'Series';
    let pattern: RegExp | undefined;
    if (t.Operator === 'regex' || t.Operator === 'notRegex') {
      try {
        pattern = new RegExp(t.Value, 'iu');
      } catch (e) {
        error(`${path}.Value`, `invalid regular expression: ${(e as Error).message}`);
        return undefined;
      }
    }
    return { tag, level, operator: t.Operator, value: t.Value.normalize('NFC'), pattern };
  };
  const conditions = r.Tags.map((t, i) => toCondition(t, `Tags[${i}]`));
  const anyOf = (r.AnyOf ?? []).map((group, g) => (Array.isArray(group) ? group : [group]).map((t, i) => toCondition(t, Array.isArray(group) ? `AnyOf[${g}][${i}]` : `AnyOf[${g}]`)));

  let steps: StepName[];
  if (r.Steps) {
    steps = r.Steps;
    const order = steps.map((s) => STEP_ORDER.indexOf(s));
    if (new Set(steps).size !== steps.length || order.some((o, i) => i > 0 && o <= order[i - 1])) error('Steps', `steps must be in the order ${STEP_ORDER.join(', ')}, each at most once`);
    if ((steps.includes('anonymise') || steps.includes('zip')) && !steps.includes('download')) error('Steps', "'anonymise' and 'zip' work on downloaded files: add 'download' first");
    if (r.Action) problems.push({ file, path: 'Action', message: "'Steps' is set, so 'Action' is ignored", severity: 'warning' });
  } else {
    steps = r.Action === 'FORWARD' ? ['forward'] : ['download'];
  }
  const destinations = r.Forward?.Destinations ?? (r.DestinationModality ? [r.DestinationModality] : []);
  if (steps.includes('forward') && destinations.length === 0) error(r.Action === 'FORWARD' ? 'DestinationModality' : 'Forward.Destinations', 'forwarding needs a destination (a DICOM modality known to Orthanc)');
  if (steps.includes('anonymise') && r.Anonymise === undefined) problems.push({ file, path: 'Anonymise', message: "no 'Anonymise' block: the default profile is used", severity: 'warning' });
  if (r.OutputName) {
    for (const [, key] of r.OutputName.matchAll(/\{([^}]*)\}/g)) {
      if (!(OUTPUT_NAME_PLACEHOLDERS as readonly string[]).includes(key)) error('OutputName', `unknown placeholder {${key}}; use ${OUTPUT_NAME_PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`);
    }
  }
  if (problems.some((p) => p.severity === 'error')) return { problems };
  return {
    problems,
    rule: {
      id,
      file,
      checkOn: r.CheckOn,
      active: r.IsActive,
      comment: r.Comment,
      steps,
      destinations,
      conditions: conditions as Condition[],
      anyOf: anyOf as Condition[][],
      anonymise: steps.includes('anonymise') ? (r.Anonymise ?? anonymiseSettingsSchema.parse({})) : undefined,
      zip: { level: r.Zip?.Level ?? 1, keepFolder: r.Zip?.KeepFolder ?? false },
      outputName: r.OutputName,
      includeDerived: r.IncludeDerived,
    },
  };
}
