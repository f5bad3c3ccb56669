/**
 * The worklist's settings, as shared/config.ts parses them: which source, mapping and folder, how
 * often, how far ahead, and which scanners may query the worklist. Querying stays closed unless
 * WORKLIST_CALLERS names a registered peer: Orthanc then grants AllowFindWorklist to that peer
 * alone, from its registered address (DicomCheckModalityHost), never to an unknown AE title.
 */
import net from 'node:net';
import type { AllowedSender } from '../orthanc/peers';
import { sourceTypeOf, type SourceType } from './source';

/** Every five minutes (NCRONTAB, with seconds). */
export const WORKLIST_DEFAULT_SCHEDULE = '0 */5 * * * *';

export interface WorklistSettings {
  source: string;
  type: SourceType;
  sql?: string;
  mappingFile?: string;
  folder: string;
  daysAhead: number;
  graceHours: number;
}

interface WorklistEnvironment {
  WORKLIST_SOURCE?: string;
  WORKLIST_SQL?: string;
  WORKLIST_MAPPING?: string;
  WORKLIST_FOLDER?: string;
  WORKLIST_SCHEDULE: string;
  WORKLIST_DAYS_AHEAD?: number;
  WORKLIST_GRACE_HOURS?: number;
}

/** The worklist settings when WORKLIST_SOURCE is set; what is missing or wrong goes to `problems`. */
export function worklistSettings(env: WorklistEnvironment, problems: string[]): WorklistSettings | undefined {
  const fields = env.WORKLIST_SCHEDULE.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6 && !/^(\d+\.)?\d{1,2}:\d{2}:\d{2}$/.test(env.WORKLIST_SCHEDULE))
    problems.push(
      `WORKLIST_SCHEDULE: '${env.WORKLIST_SCHEDULE}' is not an NCRONTAB expression (six fields: second minute hour day month day-of-week, e.g. ${WORKLIST_DEFAULT_SCHEDULE})`,
    );
  if (env.WORKLIST_SOURCE === undefined) {
    for (const name of ['WORKLIST_SQL', 'WORKLIST_MAPPING'] as const)
      if (env[name] !== undefined)
        problems.push(`${name}: is set but WORKLIST_SOURCE is not; set the booking source too`);
    return undefined;
  }
  const type = sourceTypeOf(env.WORKLIST_SOURCE);
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(env.WORKLIST_SOURCE)?.[1];
  if (scheme && !/^(https?|webcals?|postgres(ql)?)$/i.test(scheme))
    problems.push(
      `WORKLIST_SOURCE: a ${scheme}:// address is not a booking source (an .ics path or http(s) URL, postgres://, or a folder of .csv files)`,
    );
  if (env.WORKLIST_FOLDER === undefined)
    problems.push('WORKLIST_FOLDER: is required with WORKLIST_SOURCE (the folder the worklist SCP serves)');
  if (type === 'postgres' && env.WORKLIST_SQL === undefined)
    problems.push(
      'WORKLIST_SQL: is required when WORKLIST_SOURCE is a postgres:// database (the query listing bookings)',
    );
  if (type !== 'postgres' && env.WORKLIST_SQL !== undefined)
    problems.push('WORKLIST_SQL: applies only when WORKLIST_SOURCE is a postgres:// database');
  return {
    source: env.WORKLIST_SOURCE,
    type,
    sql: env.WORKLIST_SQL,
    mappingFile: env.WORKLIST_MAPPING,
    folder: env.WORKLIST_FOLDER ?? '',
    daysAhead: env.WORKLIST_DAYS_AHEAD ?? 1,
    graceHours: env.WORKLIST_GRACE_HOURS ?? 12,
  };
}

/**
 * `WORKLIST_CALLERS`: names of allowed senders (ORTHANC_ALLOWED_SENDERS) or destinations that may
 * query the worklist, comma-separated. Each named peer is marked; an unknown name is a problem.
 */
export function grantWorklistQueries(
  raw: string | undefined,
  destinations: Record<string, { Host: string; worklist?: boolean }>,
  senders: Record<string, AllowedSender> | undefined,
  problems: string[],
): void {
  if (raw === undefined) return;
  for (const name of raw
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean)) {
    const peer = senders?.[name] ?? destinations[name];
    if (!peer) {
      problems.push(
        `WORKLIST_CALLERS: '${name}' is neither an allowed sender (ORTHANC_ALLOWED_SENDERS) nor a destination; only registered peers may query the worklist`,
      );
    } else if (!net.isIPv4(peer.Host)) {
      problems.push(
        `WORKLIST_CALLERS: '${name}' has host '${peer.Host}'; it needs an IPv4 address (Orthanc checks the caller's address as text)`,
      );
    } else {
      peer.worklist = true;
    }
  }
}
