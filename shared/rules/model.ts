/** A rule as the rest of the system sees it, after validation and normalisation. */
import type { AnonymiseSettings } from '../dicom/options';
import type { RulePattern } from './regex';
import type { ResolvedTag } from './tags';
import type { CompletionSettings } from './completion';
import type { ResourceLevel, RuleStep, RuleTarget } from '../vocabulary';

export const OPERATORS = [
  'contains',
  'equals',
  'startsWith',
  'endsWith',
  'regex',
  'notContains',
  'notEquals',
  'notStartsWith',
  'notEndsWith',
  'notRegex',
] as const;
export type Operator = (typeof OPERATORS)[number];

/** What instances arriving after a resource was handled do: a new job replaces, none, or a new `NAME-vN`. */
export const ON_NEW_INSTANCES = ['replace', 'ignore', 'new-version'] as const;
export type OnNewInstances = (typeof ON_NEW_INSTANCES)[number];

export interface Condition {
  tag: ResolvedTag;
  level: ResourceLevel;
  operator: Operator;
  value: string;
  /** Compiled (RE2, linear time) for regex operators. */
  pattern?: RulePattern;
}

export interface Rule {
  id: string;
  file: string;
  /** `Result` rules run only on resources linked as results of a forward (see ExpectResults). */
  checkOn: RuleTarget;
  active: boolean;
  comment?: string;
  steps: RuleStep[];
  destinations: string[];
  conditions: Condition[];
  anyOf: Condition[][];
  anonymise?: AnonymiseSettings;
  zip: { level: number; keepFolder: boolean };
  outputName?: string;
  includeDerived: boolean;
  /** `Publish.Blob`: the zip (and a manifest) uploaded to a blob container as well (needs a zip step). */
  publish?: { blob?: { container: string; prefix: string } };
  /** `Completion`: conditions beyond Orthanc's StableAge before a job is made. */
  completion?: CompletionSettings;
  onNewInstances: OnNewInstances;
  /** `ExpectResults`: the AE title that sends results for what this rule forwarded, and how soon. */
  expectResults?: ExpectResults;
  /** The file's JSON as written, for display and for keys this version does not know. */
  raw: unknown;
}

/** A rule's `ExpectResults`: results from `from` (an AE title) are due `withinSeconds` after the forward. */
export interface ExpectResults {
  from: string;
  withinSeconds: number;
}

/** master.json: when the daily sweep runs, and whether it does. */
export interface MasterSettings {
  DailyCheckHour: number;
  DailySweepEnabled: boolean;
}

/** Without master.json the daily sweep runs at 02:00, a quiet hour next to most scanners. */
export const DEFAULT_MASTER: MasterSettings = { DailyCheckHour: 2, DailySweepEnabled: true };

export interface RuleFileProblem {
  file: string;
  /** JSON path inside the file, e.g. `Tags[1].Operator`; empty for the file as a whole. */
  path: string;
  message: string;
  severity: 'error' | 'warning';
}

export interface RuleSetSnapshot {
  rules: Rule[];
  problems: RuleFileProblem[];
  /** Files in the folder that are not rules: master*, *template*, non-JSON. */
  ignored: string[];
  master: MasterSettings;
  loadedAt: string;
}
