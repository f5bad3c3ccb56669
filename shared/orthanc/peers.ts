/**
 * Which DICOM peers Orthanc knows and what each may ask of it (issue 17, "close the doors").
 *
 * Orthanc's own configuration (deploy/orthanc/orthanc.json) refuses C-FIND, C-GET and C-MOVE from
 * unknown AETs and checks the caller's IP address for known ones (`DicomCheckModalityHost`); that
 * holds whether or not the function app runs. The app then registers the peers from the environment
 * through `PUT /modalities/{name}`, always in the object form with explicit permissions: Orthanc's
 * legacy `[AET, host, port]` form allows every command, which is how a spoofed AET could query.
 *   - Destinations (ORTHANC_DICOM_MODALITIES, MODALITY_<NAME>) may echo and store, nothing more,
 *     unless ORTHANC_DESTINATION_PERMISSIONS grants find, get or move to a named one.
 *   - Allowed senders (ORTHANC_ALLOWED_SENDERS) may echo and store. When that list is set, the
 *     launchers turn Orthanc's `DicomAlwaysAllowStore`/`DicomAlwaysAllowEcho` off, so every other
 *     caller is refused at association time.
 */
import net from 'node:net';
import { z } from 'zod';
import type { ModalityDefinition } from '../config';

/** 16 printable characters, no backslash (VR AE). */
export const AE_TITLE = /^[\x20-\x5b\x5d-\x7e]{1,16}$/;

/** Query/retrieve operations a destination may be granted; echo and store are always allowed. */
export const QUERY_RETRIEVE_OPERATIONS = ['find', 'get', 'move'] as const;
export type QueryRetrieveOperation = (typeof QUERY_RETRIEVE_OPERATIONS)[number];

/** A node allowed to send to Orthanc. Orthanc needs a port in every modality; a sender is never called, so 104 stands in. */
export interface AllowedSender {
  AET: string;
  Host: string;
  /** May query the modality worklist (WORKLIST_CALLERS names it); never by default. */
  worklist?: boolean;
}
const SENDER_PLACEHOLDER_PORT = 104;

/** The body of `PUT /modalities/{name}` that Orthanc 1.10.1 accepts (object form; Allow* default to true when absent). */
export interface OrthancModalityBody {
  AET: string;
  Host: string;
  Port: number;
  AllowEcho: boolean;
  AllowStore: boolean;
  AllowFind: boolean;
  AllowFindWorklist: boolean;
  AllowGet: boolean;
  AllowMove: boolean;
  AllowStorageCommitment: boolean;
}

/**
 * Every peer gets every Allow* flag spelled out, so nothing falls back to Orthanc's allow-all default.
 * Storage commitment stays on: it belongs to storing (a scanner asks Orthanc to commit what it sent,
 * a destination reports back on Orthanc's request) and returns no patient data.
 */
export function orthancModalityBody(peer: {
  AET: string;
  Host: string;
  Port?: number;
  allow?: readonly QueryRetrieveOperation[];
  worklist?: boolean;
}): OrthancModalityBody {
  const allow = new Set(peer.allow ?? []);
  return {
    AET: peer.AET,
    Host: peer.Host,
    Port: peer.Port ?? SENDER_PLACEHOLDER_PORT,
    AllowEcho: true,
    AllowStore: true,
    AllowFind: allow.has('find'),
    AllowFindWorklist: peer.worklist === true,
    AllowGet: allow.has('get'),
    AllowMove: allow.has('move'),
    AllowStorageCommitment: true,
  };
}

export const PEER_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** `ORTHANC_ALLOWED_SENDERS`: `NAME|AET|IPV4[,NAME|AET|IPV4...]`, e.g. `SCANNER1|MRI_AET|10.0.0.7,CT|CT_AET|10.0.0.8`. */
export const allowedSendersSetting = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const result: Record<string, AllowedSender> = {};
    if (raw === undefined || raw === '') return undefined;
    if (raw.trim() === '') {
      ctx.addIssue({
        code: 'custom',
        message: 'is blank; leave it empty to let any sender store, or list NAME|AET|IPV4 entries separated by commas',
      });
      return z.NEVER;
    }
    for (const entry of raw.split(',').map((e) => e.trim())) {
      const parts = entry.split('|').map((p) => p.trim());
      const [name, aet, host] = parts;
      if (parts.length !== 3 || !PEER_NAME.test(name) || !AE_TITLE.test(aet)) {
        ctx.addIssue({
          code: 'custom',
          message: `expected NAME|AET|IPV4 entries separated by commas (NAME: letters, digits, _ or -; AET: 1-16 printable characters), got '${entry}'`,
        });
      } else if (!net.isIPv4(host)) {
        // Orthanc compares the caller's address with this text; a host name never matches.
        ctx.addIssue({
          code: 'custom',
          message: `sender '${name}': '${host}' is not an IPv4 address (Orthanc compares the caller's address as text, so a host name would refuse the sender)`,
        });
      } else if (result[name]) {
        ctx.addIssue({ code: 'custom', message: `sender '${name}' is listed twice` });
      } else {
        result[name] = { AET: aet, Host: host };
      }
    }
    return result;
  });

/** `ORTHANC_DESTINATION_PERMISSIONS`: `NAME:op+op[,NAME:op...]` with op find, get or move, e.g. `PACS:find+move`. */
export const destinationPermissionsSetting = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const result: Record<string, QueryRetrieveOperation[]> = {};
    if (raw === undefined || raw.trim() === '') return result;
    for (const entry of raw.split(',').map((e) => e.trim())) {
      const match = /^([A-Za-z0-9_-]+):([a-z+]+)$/i.exec(entry);
      const operations = match ? match[2].toLowerCase().split('+') : [];
      const unknown = operations.filter((op) => !(QUERY_RETRIEVE_OPERATIONS as readonly string[]).includes(op));
      if (!match || operations.length === 0 || unknown.length > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `expected NAME:op[+op...] entries separated by commas, op one of ${QUERY_RETRIEVE_OPERATIONS.join(', ')} (echo and store are always allowed), got '${entry}'`,
        });
      } else if (result[match[1]]) {
        ctx.addIssue({ code: 'custom', message: `destination '${match[1]}' is listed twice` });
      } else {
        result[match[1]] = [...new Set(operations)] as QueryRetrieveOperation[];
      }
    }
    return result;
  });

/**
 * Grants the permissions to the destinations and checks what only the whole set can show. Orthanc
 * skips its host check for an AET that several modalities share when all of them allow the command
 * (OrthancApplicationEntityFilter::IsAllowedRequest), so a shared AET would reopen the door: it is
 * refused wherever the host check matters (a sender list, or a granted query/retrieve permission).
 * AETs compare case-insensitively, as Orthanc does without StrictAetComparison.
 */
export function combinePeers(
  destinations: Record<string, ModalityDefinition>,
  permissions: Record<string, QueryRetrieveOperation[]>,
  senders: Record<string, AllowedSender> | undefined,
  problems: string[],
): Record<string, ModalityDefinition> {
  const combined: Record<string, ModalityDefinition> = {};
  for (const [name, destination] of Object.entries(destinations))
    combined[name] = permissions[name] ? { ...destination, allow: permissions[name] } : destination;
  for (const name of Object.keys(permissions)) {
    if (!destinations[name])
      problems.push(
        `ORTHANC_DESTINATION_PERMISSIONS: '${name}' is not a destination (ORTHANC_DICOM_MODALITIES or MODALITY_<NAME>)`,
      );
    // The grant would never apply: Orthanc compares the caller's address with the host as text.
    else if (!net.isIPv4(destinations[name].Host))
      problems.push(
        `ORTHANC_DESTINATION_PERMISSIONS: destination '${name}' has host '${destinations[name].Host}'; a grant needs its IPv4 address (Orthanc compares the caller's address as text)`,
      );
  }
  const byAet = new Map<string, string[]>();
  const note = (aet: string, who: string) =>
    byAet.set(aet.toUpperCase(), [...(byAet.get(aet.toUpperCase()) ?? []), who]);
  for (const [name, destination] of Object.entries(combined)) note(destination.AET, `destination ${name}`);
  for (const [name, sender] of Object.entries(senders ?? {})) {
    if (destinations[name])
      problems.push(`ORTHANC_ALLOWED_SENDERS: sender '${name}' has the name of a destination; give it another name`);
    note(sender.AET, `sender ${name}`);
  }
  for (const [aet, users] of byAet) {
    if (users.length < 2) continue;
    const granted = users.some(
      (who) => who.startsWith('destination ') && combined[who.slice('destination '.length)]?.allow,
    );
    if (senders === undefined && !granted) continue;
    problems.push(
      `${senders === undefined ? 'ORTHANC_DESTINATION_PERMISSIONS' : 'ORTHANC_ALLOWED_SENDERS'}: AET '${aet}' is used by ${users.join(' and ')}; Orthanc skips its host check for an AET several peers share, so each peer needs its own AET (a destination may already store from its own host)`,
    );
  }
  return combined;
}

/**
 * Settings the launchers (npm start, the test harness; the compose entrypoint does the same in sh)
 * derive for Orthanc's config from the operator's: a sender list closes storing and echo to others.
 */
export function orthancDicomAccessEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const strict = (env.ORTHANC_ALLOWED_SENDERS ?? '') !== '';
  return {
    ORTHANC_DICOM_ALWAYS_ALLOW_STORE: strict ? 'false' : 'true',
    ORTHANC_DICOM_ALWAYS_ALLOW_ECHO: strict ? 'false' : 'true',
  };
}
