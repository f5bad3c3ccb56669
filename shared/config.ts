/**
 * Every setting the function app reads, parsed once from the environment and validated with zod.
 * Names follow autorthanc's `.env` (DESIGN section 4) so a site can reuse its file; new settings
 * have explicit names and are listed in `.env.example` and docs/operations.md (Settings).
 */
import path from 'node:path';
import { z } from 'zod';
import {
  AE_TITLE,
  allowedSendersSetting,
  combinePeers,
  destinationPermissionsSetting,
  type AllowedSender,
  type QueryRetrieveOperation,
} from './orthanc/peers';
import {
  WORKLIST_DEFAULT_SCHEDULE,
  grantWorklistQueries,
  worklistSettings,
  type WorklistSettings,
} from './worklist/settings';
import type { DicomWebDefinition } from './dicomweb/stow';
import { alertSettings, type AlertSettings } from './alerts/settings';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

const booleanFlag = (fallback: boolean) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const word = raw.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      ctx.addIssue({ code: 'custom', message: `expected true or false, got '${raw}'` });
      return z.NEVER;
    });

const integer = (fallback: number | undefined, min: number, max: number, unit: string) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return fallback;
      const text = raw.trim();
      const value = Number(text);
      if (!/^-?\d+$/.test(text) || value < min || value > max) {
        ctx.addIssue({ code: 'custom', message: `expected ${unit} between ${min} and ${max}, got '${raw}'` });
        return z.NEVER;
      }
      return value;
    });

const port = (fallback: number) => integer(fallback, 1, 65535, 'a TCP port').transform((v) => v as number);

const text = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw.trim() === '' ? fallback : raw.trim()));

const optionalText = z
  .string()
  .optional()
  .transform((raw) => (raw === undefined || raw.trim() === '' ? undefined : raw.trim()));

/** Values people leave in a template instead of a secret (`replace-me…`, `change-me…`, `<secret>`). */
const PLACEHOLDER_SECRET = /^(replace|change)[-_ ]?me|^changeit$|^<.*>$|^(.)\2*$/i;
const MIN_SECRET_BYTES = 32;

/**
 * Why a secret is unfit (a placeholder or too short to resist guessing), or undefined when it will do:
 * the one check behind the secret settings and `autorthanc doctor`.
 */
export function secretProblem(value: string): string | undefined {
  if (PLACEHOLDER_SECRET.test(value))
    return 'is a placeholder, not a secret; generate one (npm start does; or run: openssl rand -hex 32)';
  const bytes = Buffer.byteLength(value, 'utf8');
  if (bytes < MIN_SECRET_BYTES)
    return `is ${bytes} bytes; use at least ${MIN_SECRET_BYTES} random bytes (e.g. openssl rand -hex 32)`;
  return undefined;
}

/** A key everything else is derived from: generated (never a default), long enough to resist guessing. */
const secret = optionalText.superRefine((value, ctx) => {
  const problem = value === undefined ? undefined : secretProblem(value);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

/** Whether `inner` is `outer` or lies below it. */
function within(outer: string, inner: string): boolean {
  const relative = path.relative(outer, inner);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

const httpUrl = (fallback: string) =>
  text(fallback).superRefine((value, ctx) => {
    try {
      const parsed = new URL(value);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('scheme');
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected an http(s) URL, got '${value}'` });
    }
  });

/** A DICOM destination as Orthanc's `PUT /modalities/{name}` takes it. */
export interface ModalityDefinition {
  AET: string;
  Host: string;
  Port: number;
  /** Query/retrieve this destination may ask of Orthanc (ORTHANC_DESTINATION_PERMISSIONS); echo and store only when absent. */
  allow?: QueryRetrieveOperation[];
  /** May query the modality worklist (WORKLIST_CALLERS). */
  worklist?: boolean;
}

const tcpPort = z.number().int().min(1).max(65535);
/** A port as a number or, as some .env files write it, a string of digits: in range either way. */
const modalityPort = z.union([tcpPort, z.string().regex(/^\d+$/).transform(Number).pipe(tcpPort)]);
const modalityTuple = z.tuple([
  z.string().regex(AE_TITLE, 'AE title must be 1-16 printable characters'),
  z.string().min(1, 'host must not be empty'),
  modalityPort,
]);
const modalityObject = z.object({
  AET: z.string().regex(AE_TITLE, 'AE title must be 1-16 printable characters'),
  Host: z.string().min(1),
  Port: tcpPort,
});

/** autorthanc's `ORTHANC_DICOM_MODALITIES`: `{"NAME": ["AET", "host", 4242]}` (Orthanc's own form). */
const dicomModalitiesJson = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const result: Record<string, ModalityDefinition> = {};
    if (raw === undefined || raw.trim() === '') return result;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: `is not valid JSON (${(error as Error).message}); expected {"NAME": ["AET", "host", port]} on one line`,
      });
      return z.NEVER;
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      ctx.addIssue({ code: 'custom', message: 'expected a JSON object {"NAME": ["AET", "host", port]}' });
      return z.NEVER;
    }
    for (const [name, value] of Object.entries(parsed)) {
      const tuple = modalityTuple.safeParse(value);
      const object = tuple.success ? undefined : modalityObject.safeParse(value);
      if (tuple.success) result[name] = { AET: tuple.data[0], Host: tuple.data[1], Port: tuple.data[2] };
      else if (object?.success) result[name] = object.data;
      else
        ctx.addIssue({
          code: 'custom',
          message: `modality '${name}': expected ["AET", "host", port] or {"AET","Host","Port"}, got ${JSON.stringify(value)}`,
        });
    }
    return result;
  });

/** Seed 003's `MODALITY_<NAME>=AET|HOST|PORT` lines. */
function parseModalityLines(env: NodeJS.ProcessEnv, problems: string[]): Record<string, ModalityDefinition> {
  const result: Record<string, ModalityDefinition> = {};
  for (const [key, raw] of Object.entries(env)) {
    if (!key.startsWith('MODALITY_') || raw === undefined) continue;
    const name = key.slice('MODALITY_'.length);
    const parts = raw.split('|').map((p) => p.trim());
    const portNumber = Number(parts[2]);
    if (
      name === '' ||
      parts.length !== 3 ||
      !AE_TITLE.test(parts[0]) ||
      parts[1] === '' ||
      !/^\d+$/.test(parts[2] ?? '') ||
      portNumber < 1 ||
      portNumber > 65535
    ) {
      problems.push(`${key}: expected AET|HOST|PORT (e.g. PACS|10.0.0.5|104), got '${raw}'`);
      continue;
    }
    result[name] = { AET: parts[0], Host: parts[1], Port: portNumber };
  }
  return result;
}

const DICOMWEB_CREDENTIALS = ['USERNAME', 'PASSWORD', 'TOKEN'] as const;

/**
 * DICOMweb (STOW-RS) destinations: `DICOMWEB_<NAME>=<base URL>` with optional `DICOMWEB_<NAME>_USERNAME`
 * and `_PASSWORD`, or `_TOKEN` (a bearer token). A key ending in one of those suffixes is a credential
 * when its destination is declared, else a destination of its own. Messages never repeat a credential.
 */
function parseDicomWebLines(env: NodeJS.ProcessEnv, problems: string[]): Record<string, DicomWebDefinition> {
  const keys = Object.keys(env).filter((k) => k.startsWith('DICOMWEB_') && env[k] !== undefined);
  const credentialOf = (key: string) => {
    const suffix = DICOMWEB_CREDENTIALS.find(
      (c) => key.endsWith(`_${c}`) && keys.includes(key.slice(0, -c.length - 1)),
    );
    return suffix;
  };
  const result: Record<string, DicomWebDefinition> = {};
  for (const key of keys) {
    if (credentialOf(key)) continue;
    const name = key.slice('DICOMWEB_'.length);
    const raw = (env[key] ?? '').trim();
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    if (name === '' || !url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      problems.push(`${key}: expected the http(s) base URL of a DICOMweb service (e.g. http://pacs:8042/dicom-web)`);
      continue;
    }
    if (url.username || url.password) {
      problems.push(`${key}: put credentials in ${key}_USERNAME/_PASSWORD or ${key}_TOKEN, not in the URL`);
      continue;
    }
    if (url.search || url.hash) {
      problems.push(`${key}: the base URL must not have a query or fragment`);
      continue;
    }
    const read = (suffix: string) => {
      const value = env[`${key}_${suffix}`];
      return value === undefined || value === '' ? undefined : value;
    };
    const definition: DicomWebDefinition = {
      url: url.toString().replace(/\/+$/, ''),
      username: read('USERNAME'),
      password: read('PASSWORD'),
      token: read('TOKEN'),
    };
    if ((definition.username === undefined) !== (definition.password === undefined)) {
      problems.push(`${key}: set ${key}_USERNAME and ${key}_PASSWORD together`);
      continue;
    }
    if (definition.token !== undefined && definition.username !== undefined) {
      problems.push(`${key}: set either ${key}_TOKEN or ${key}_USERNAME/_PASSWORD, not both`);
      continue;
    }
    result[name] = definition;
  }
  return result;
}

const environmentSchema = z.object({
  // Orthanc
  ORTHANC_HTTP_PORT: port(8042),
  ORTHANC_URL: optionalText,
  ORTHANC_USERNAME: text('orthanc'),
  ORTHANC_PASSWORD: text('orthanc'),
  ORTHANC_TIMEOUT_SECONDS: integer(60, 1, 3600, 'seconds'),
  ORTHANC_STABLE_AGE: integer(300, 1, 86_400, 'seconds'),
  ORTHANC_AET_NAME: text('ORTHANC').refine(
    (v) => AE_TITLE.test(v),
    'AE title must be 1-16 printable characters without backslash',
  ),
  ORTHANC_AET_PORT: port(4242),
  ORTHANC_DICOM_MODALITIES: dicomModalitiesJson,
  ORTHANC_DESTINATION_PERMISSIONS: destinationPermissionsSetting,
  ORTHANC_ALLOWED_SENDERS: allowedSendersSetting,
  ORTHANC_WEB_PORT: port(80),
  ORTHANC_DISPLAY_NAME: text('autorthanc'),
  ORTHANC_AUTHENTICATION_ENABLED: booleanFlag(true),
  // Automation (autorthanc names)
  ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: text('automation/rules'),
  ORTHANC_AUTOMATION_STORAGE_PATH: text('automation/storage'),
  UID: integer(undefined, 0, 4_294_967_294, 'a numeric user id'),
  GID: integer(undefined, 0, 4_294_967_294, 'a numeric group id'),
  // Function app
  AzureWebJobsStorage: text('UseDevelopmentStorage=true'),
  AUTOMATION_PUBLISH_BLOB_CONNECTION: optionalText,
  FUNCTIONS_HTTP_PORT: port(7071),
  AUTOMATION_DOWNLOAD_CONCURRENCY: integer(8, 1, 64, 'a number of instance files fetched at once'),
  AUTOMATION_STEP_CONCURRENCY: integer(4, 1, 64, 'a number of files processed in parallel'),
  AUTOMATION_ANONYMISATION_SECRET: secret,
  AUTOMATION_STAGING_PATH: optionalText,
  AUTOMATION_LOG_PHI: booleanFlag(false),
  AUTOMATION_SWEEP_PAGE_SIZE: integer(500, 1, 10_000, 'a number of studies per page'),
  AUTOMATION_CHANGE_FEED_BATCH: integer(500, 1, 10_000, 'a number of changes per read'),
  AUTOMATION_FORWARD_POLL_SECONDS: integer(5, 1, 3600, 'seconds'),
  AUTOMATION_FORWARD_MAX_ATTEMPTS: integer(30, 1, 1000, 'a number of attempts'),
  AUTOMATION_DESTINATION_STUCK_MINUTES: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      // Fractions allowed (0.5 = 30 s), so tests and impatient sites can see "stuck" soon.
      if (raw === undefined || raw.trim() === '') return 30;
      const value = Number(raw.trim());
      if (!/^\d+(\.\d+)?$/.test(raw.trim()) || value < 0.05 || value > 10_080) {
        ctx.addIssue({ code: 'custom', message: `expected minutes between 0.05 and 10080, got '${raw}'` });
        return z.NEVER;
      }
      return value;
    }),
  AUTOMATION_STALE_HEARTBEAT_SECONDS: integer(120, 2, 86_400, 'seconds'),
  AUTOMATION_REPLACE_QUIET_SECONDS: integer(120, 0, 86_400, 'seconds'),
  AUTOMATION_LEDGER_RETENTION_DAYS: integer(90, 0, 36_500, 'days (0 keeps job records forever)'),
  APPLICATIONINSIGHTS_CONNECTION_STRING: optionalText,
  // Modality worklist from bookings (issue 19; docs/worklist.md)
  WORKLIST_SOURCE: optionalText,
  WORKLIST_SQL: optionalText,
  WORKLIST_MAPPING: optionalText,
  WORKLIST_FOLDER: optionalText,
  WORKLIST_SCHEDULE: text(WORKLIST_DEFAULT_SCHEDULE),
  WORKLIST_DAYS_AHEAD: integer(1, 0, 30, 'days'),
  WORKLIST_GRACE_HOURS: integer(12, 0, 168, 'hours'),
  WORKLIST_CALLERS: optionalText,
  // Webhook alerts (issue 22; docs/operations.md#alerts)
  AUTOMATION_ALERT_WEBHOOKS: optionalText,
  AUTOMATION_ALERT_FORMAT: optionalText,
  AUTOMATION_ALERT_MIN_INTERVAL_SECONDS: integer(900, 0, 604_800, 'seconds'),
  AUTOMATION_ALERT_DISK_FREE_PERCENT: integer(10, 0, 99, 'a percentage'),
});

export type Environment = z.infer<typeof environmentSchema>;

/** Every variable the schema reads (tests check that each one that can be wrong is named when it is). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(environmentSchema.shape);

/**
 * One setting checked alone by the schema above: its parsed value, or why the app would refuse it.
 * `autorthanc setup` checks every answer with this, so the wizard and the app never disagree.
 */
export function checkSetting(name: string, raw: string): { ok: true; value: unknown } | { ok: false; problem: string } {
  const schema = (environmentSchema.shape as Record<string, z.ZodType | undefined>)[name];
  if (schema === undefined) throw new Error(`checkSetting: ${name} is not a setting of the app`);
  const result = schema.safeParse(raw);
  return result.success
    ? { ok: true, value: result.data }
    : { ok: false, problem: result.error.issues.map((i) => i.message).join('; ') };
}

export interface Config {
  orthanc: {
    url: string;
    username: string;
    password: string;
    timeoutMs: number;
    stableAgeSeconds: number;
    aet: string;
    dicomPort: number;
  };
  rulesPath: string;
  storagePath: string;
  owner?: { uid: number; gid: number };
  storageConnectionString: string;
  /** The storage account rules with `Publish.Blob` upload to (AUTOMATION_PUBLISH_BLOB_CONNECTION, else AzureWebJobsStorage). */
  publishBlobConnectionString: string;
  downloadConcurrency: number;
  stepConcurrency: number;
  /**
   * How long a published result must have been left alone before a later job replaces it under the
   * same name (a watcher such as hurahura takes a result 60 s after it settles).
   */
  replaceQuietSeconds: number;
  anonymisationSecret?: string;
  /**
   * Where anonymising pipelines download originals: no share or watcher sees it, and it sits on the
   * storage root's filesystem so de-identified files move into `.WORKING` by rename.
   */
  stagingPath: string;
  logPhi: boolean;
  sweepPageSize: number;
  changeFeedBatch: number;
  forwardPollSeconds: number;
  forwardMaxAttempts: number;
  /** A destination still not sent this long after its forward was queued shows as stuck (and alerts). */
  destinationStuckMs: number;
  /** A running step whose heartbeat is older than this is presumed dead (its host crashed) and is taken over. */
  staleHeartbeatMs: number;
  /** Job records older than this many days are purged by the daily sweep; 0 keeps them forever. */
  ledgerRetentionDays: number;
  modalities: Record<string, ModalityDefinition>;
  /** DICOMweb (STOW-RS) destinations, DICOMWEB_<NAME>; their names never clash with a modality's. */
  dicomweb: Record<string, DicomWebDefinition>;
  /** Nodes allowed to send to Orthanc (ORTHANC_ALLOWED_SENDERS); undefined: any sender may store. */
  allowedSenders?: Record<string, AllowedSender>;
  applicationInsightsConnectionString?: string;
  /** The worklist sync, when WORKLIST_SOURCE is set. */
  worklist?: WorklistSettings;
  /** Webhook alerts (AUTOMATION_ALERT_*); no webhooks: none are sent. */
  alerts: AlertSettings;
}

/** Parses and validates the environment; throws a ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const parsed = environmentSchema.safeParse(env);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(`${issue.path.join('.')}: ${issue.message}`);
  }
  const lineModalities = parseModalityLines(env, problems);
  const dicomweb = parseDicomWebLines(env, problems);
  if (parsed.success && (parsed.data.UID === undefined) !== (parsed.data.GID === undefined)) {
    problems.push(
      `${parsed.data.UID === undefined ? 'UID' : 'GID'}: UID and GID must be set together (the output is chowned to UID:GID)`,
    );
  }
  if (parsed.success && parsed.data.ORTHANC_URL !== undefined) {
    const check = httpUrl('').safeParse(parsed.data.ORTHANC_URL);
    if (!check.success) problems.push(`ORTHANC_URL: ${check.error.issues[0]?.message}`);
  }
  const storagePath = path.resolve(parsed.data?.ORTHANC_AUTOMATION_STORAGE_PATH ?? 'automation/storage');
  const rulesPath = path.resolve(parsed.data?.ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH ?? 'automation/rules');
  // Beside the storage root (likely the same filesystem) and named after it, so two deployments
  // sharing a parent folder never share (and clean up) each other's staging.
  const stagingPath = path.resolve(
    parsed.data?.AUTOMATION_STAGING_PATH ??
      path.join(path.dirname(storagePath), `.${path.basename(storagePath)}-staging`),
  );
  if (
    parsed.success &&
    (within(storagePath, stagingPath) || within(stagingPath, storagePath) || within(stagingPath, rulesPath))
  ) {
    problems.push(
      `AUTOMATION_STAGING_PATH: '${stagingPath}' must be a folder of its own, outside ORTHANC_AUTOMATION_STORAGE_PATH (shares and watchers see that) and not containing it or the rules folder (the app deletes stale staging)`,
    );
  }
  const modalities = parsed.success
    ? combinePeers(
        { ...parsed.data.ORTHANC_DICOM_MODALITIES, ...lineModalities },
        parsed.data.ORTHANC_DESTINATION_PERMISSIONS,
        parsed.data.ORTHANC_ALLOWED_SENDERS,
        problems,
      )
    : {};
  // Rules name a destination without saying its kind, so one name must mean one destination.
  const modalityNames = new Map(Object.keys(modalities).map((n) => [n.toLowerCase(), n]));
  for (const name of Object.keys(dicomweb)) {
    const clash = modalityNames.get(name.toLowerCase());
    if (clash !== undefined)
      problems.push(
        `DICOMWEB_${name}: the destination name '${name}' is also a DICOM modality ('${clash}'); rename one`,
      );
  }
  const worklist = parsed.success ? worklistSettings(parsed.data, problems) : undefined;
  const alerts = alertSettings(parsed.success ? parsed.data : {}, problems);
  if (parsed.success)
    grantWorklistQueries(parsed.data.WORKLIST_CALLERS, modalities, parsed.data.ORTHANC_ALLOWED_SENDERS, problems);
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const e = parsed.data;
  return {
    orthanc: {
      url: (e.ORTHANC_URL ?? `http://127.0.0.1:${e.ORTHANC_HTTP_PORT}`).replace(/\/+$/, ''),
      username: e.ORTHANC_USERNAME,
      password: e.ORTHANC_PASSWORD,
      timeoutMs: (e.ORTHANC_TIMEOUT_SECONDS as number) * 1000,
      stableAgeSeconds: e.ORTHANC_STABLE_AGE as number,
      aet: e.ORTHANC_AET_NAME,
      dicomPort: e.ORTHANC_AET_PORT,
    },
    rulesPath,
    storagePath,
    owner: e.UID !== undefined && e.GID !== undefined ? { uid: e.UID, gid: e.GID } : undefined,
    storageConnectionString: e.AzureWebJobsStorage,
    publishBlobConnectionString: e.AUTOMATION_PUBLISH_BLOB_CONNECTION ?? e.AzureWebJobsStorage,
    downloadConcurrency: e.AUTOMATION_DOWNLOAD_CONCURRENCY as number,
    stepConcurrency: e.AUTOMATION_STEP_CONCURRENCY as number,
    anonymisationSecret: e.AUTOMATION_ANONYMISATION_SECRET,
    stagingPath,
    logPhi: e.AUTOMATION_LOG_PHI,
    sweepPageSize: e.AUTOMATION_SWEEP_PAGE_SIZE as number,
    changeFeedBatch: e.AUTOMATION_CHANGE_FEED_BATCH as number,
    forwardPollSeconds: e.AUTOMATION_FORWARD_POLL_SECONDS as number,
    forwardMaxAttempts: e.AUTOMATION_FORWARD_MAX_ATTEMPTS as number,
    destinationStuckMs: Math.round(e.AUTOMATION_DESTINATION_STUCK_MINUTES * 60_000),
    staleHeartbeatMs: (e.AUTOMATION_STALE_HEARTBEAT_SECONDS as number) * 1000,
    replaceQuietSeconds: e.AUTOMATION_REPLACE_QUIET_SECONDS as number,
    ledgerRetentionDays: e.AUTOMATION_LEDGER_RETENTION_DAYS as number,
    modalities,
    dicomweb,
    allowedSenders: e.ORTHANC_ALLOWED_SENDERS,
    applicationInsightsConnectionString: e.APPLICATIONINSIGHTS_CONNECTION_STRING,
    worklist,
    alerts,
  };
}

let cached: Config | undefined;

/** The process-wide configuration, parsed on first use. */
export function getConfig(): Config {
  cached ??= loadConfig();
  return cached;
}

/** For tests that change the environment between cases. */
export function resetConfigForTests(): void {
  cached = undefined;
}
