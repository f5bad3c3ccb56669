/**
 * Adding, editing and deleting the dashboard's DICOM and DICOMweb destinations (POST/PUT/DELETE
 * /api/destinations): each change is checked against every other peer, saved durably, a DICOM one pushed
 * into Orthanc's /modalities
 * with the safe permissions of shared/orthanc/peers.ts (echo and store only) through applyDestinations,
 * and recorded in the audit with who made it. A DICOMweb one needs nothing of Orthanc: the forward step
 * reads it from the catalog at each send. The environment's destinations are read-only here: they
 * change in .env, where the rest of the site's configuration lives.
 *
 * The record is saved before Orthanc is told, so a change Orthanc misses (it is down, restarting)
 * is not lost: the start-up and the dicomPeers timer put every stored destination back.
 */
import type { ModalityDefinition } from '../config';
import { applyDestinations, type EchoState } from '../orthanc/destinations';
import type { OrthancClient } from '../orthanc/client';
import { combinePeers, type AllowedSender } from '../orthanc/peers';
import { modalityOf, type DestinationCatalog } from './catalog';
import {
  DestinationConflict,
  isDicomWeb,
  type DestinationChange,
  type DestinationFields,
  type StoredDestination,
} from './store';

export interface DestinationAdminDeps {
  catalog: DestinationCatalog;
  orthanc: Pick<OrthancClient, 'putModality' | 'echo' | 'deleteModality'>;
  /** ORTHANC_ALLOWED_SENDERS: their names are taken, and with a sender list AE titles must be unique. */
  allowedSenders?: Record<string, AllowedSender>;
  /** The status report's destination states (services.destinationEchoes), kept in step with each change. */
  echoes: Map<string, EchoState>;
  log: (line: string) => void;
  now?: () => Date;
}

/** How Orthanc took the change: the destination's state after it was put (and C-ECHOed), or removed. */
export type OrthancOutcome = EchoState | { removed: boolean; reason?: string };

export type AdminOutcome =
  | { kind: 'ok'; destination?: StoredDestination; change?: DestinationChange; orthanc?: OrthancOutcome }
  /** 404 */
  | { kind: 'not-found'; error: string }
  /** 409: read-only (environment), a name taken, an AE title that would reopen Orthanc's host check, a concurrent change. */
  | { kind: 'conflict'; error: string };

/** The audited fields: for DICOMweb the URL and the credentials' setting name, which is no secret. */
const fieldsOf = (d: DestinationFields): DestinationFields =>
  isDicomWeb(d)
    ? { kind: 'dicomweb', url: d.url, ...(d.credentialsFrom ? { credentialsFrom: d.credentialsFrom } : {}) }
    : { aet: d.aet, host: d.host, port: d.port };

const describe = (f: DestinationFields) =>
  isDicomWeb(f)
    ? `${f.url}${f.credentialsFrom ? ` (credentials ${f.credentialsFrom})` : ''}`
    : `${f.aet}@${f.host}:${f.port}`;

const sameFields = (a: DestinationFields, b: DestinationFields) =>
  JSON.stringify(fieldsOf(a)) === JSON.stringify(fieldsOf(b));

const readOnly = (name: string, kind: 'dicom' | 'dicomweb') =>
  kind === 'dicom'
    ? `destination '${name}' comes from the environment (MODALITY_${name} or ORTHANC_DICOM_MODALITIES) and is read-only here; change it in .env and restart`
    : `destination '${name}' comes from the environment (DICOMWEB_${name}) and is read-only here; change it in .env and restart`;

/** The problems combinePeers finds with `candidate` among the others that it does not find without it. */
function newPeerProblems(
  others: Record<string, ModalityDefinition>,
  candidate: Record<string, ModalityDefinition>,
  senders: Record<string, AllowedSender> | undefined,
): string[] {
  const before: string[] = [];
  combinePeers(others, {}, senders, before);
  const after: string[] = [];
  combinePeers({ ...others, ...candidate }, {}, senders, after);
  return after.filter((p) => !before.includes(p));
}

export function createDestinationAdmin(deps: DestinationAdminDeps) {
  const { catalog } = deps;
  const store = catalog.store;
  const now = deps.now ?? (() => new Date());

  /** Why `name` may not be added or changed from the dashboard, if it may not. */
  function takenBy(name: string): string | undefined {
    const env = catalog.fromEnvironment(name);
    if (env) return readOnly(env.name, env.kind);
    const sender = Object.keys(deps.allowedSenders ?? {}).find((s) => s.toLowerCase() === name.toLowerCase());
    if (sender)
      return `'${name}' is the name of an allowed sender (ORTHANC_ALLOWED_SENDERS '${sender}'); give the destination another name`;
    return undefined;
  }

  async function peerProblems(name: string, fields: DestinationFields): Promise<string | undefined> {
    // A DICOMweb destination is no Orthanc peer: its name was checked against every other already.
    if (isDicomWeb(fields)) return undefined;
    const others = await catalog.all();
    for (const key of Object.keys(others)) if (key.toLowerCase() === name.toLowerCase()) delete others[key];
    const problems = newPeerProblems(others, { [name]: modalityOf(fields) }, deps.allowedSenders);
    return problems.length > 0 ? problems.join('; ') : undefined;
  }

  /** Puts the destination into Orthanc and C-ECHOes it; never throws (the record is saved, and put back later). */
  async function push(destination: StoredDestination): Promise<EchoState | undefined> {
    if (isDicomWeb(destination)) return undefined;
    const states = await applyDestinations(
      deps.orthanc,
      { [destination.name]: modalityOf(destination) },
      deps.log,
      {},
      deps.echoes,
    );
    const state = states[destination.name];
    state.source = 'dashboard';
    return state;
  }

  async function audit(change: DestinationChange): Promise<DestinationChange> {
    await store.record(change);
    const what =
      change.action === 'delete'
        ? ''
        : ` ${describe(change.after!)}${change.before ? ` (was ${describe(change.before)})` : ''}`;
    deps.log(
      `Destination ${change.name} ${change.action === 'add' ? 'added' : `${change.action}ed`} by ${change.who}:${what}`,
    );
    return change;
  }

  return {
    async add(input: { name: string } & DestinationFields, who: string): Promise<AdminOutcome> {
      const taken = takenBy(input.name);
      if (taken) return { kind: 'conflict', error: taken };
      const existing = await store.get(input.name);
      if (existing)
        return {
          kind: 'conflict',
          error: `a destination named '${existing.name}' exists already (names are compared without regard to case); edit it instead`,
        };
      const problem = await peerProblems(input.name, input);
      if (problem) return { kind: 'conflict', error: problem };
      const at = now().toISOString();
      const destination: StoredDestination = {
        name: input.name,
        ...fieldsOf(input),
        createdAt: at,
        updatedAt: at,
        updatedBy: who,
      };
      try {
        await store.create(destination);
      } catch (error) {
        if (error instanceof DestinationConflict)
          return { kind: 'conflict', error: `a destination named '${input.name}' was added meanwhile; reload` };
        throw error;
      }
      const change = await audit({ at, who, action: 'add', name: input.name, after: fieldsOf(input) });
      return { kind: 'ok', destination, change, orthanc: await push(destination) };
    },

    async edit(name: string, fields: DestinationFields, who: string): Promise<AdminOutcome> {
      const env = catalog.fromEnvironment(name);
      const existing = await store.get(name);
      if (env) return { kind: 'conflict', error: readOnly(env.name, env.kind) };
      if (!existing) return { kind: 'not-found', error: `no destination ${name} was added in the dashboard` };
      const before = fieldsOf(existing);
      const after = fieldsOf(fields);
      if (isDicomWeb(before) !== isDicomWeb(after))
        return {
          kind: 'conflict',
          error: `destination '${existing.name}' is ${isDicomWeb(before) ? 'a DICOMweb' : 'a DICOM'} one; delete it and add the other kind`,
        };
      if (sameFields(before, after)) return { kind: 'ok', destination: existing, orthanc: await push(existing) };
      const problem = await peerProblems(existing.name, after);
      if (problem) return { kind: 'conflict', error: problem };
      const at = now().toISOString();
      const next: StoredDestination = {
        name: existing.name,
        ...after,
        createdAt: existing.createdAt,
        updatedAt: at,
        updatedBy: who,
      };
      try {
        await store.replace(existing, next);
      } catch (error) {
        if (error instanceof DestinationConflict)
          return { kind: 'conflict', error: `destination '${existing.name}' was changed or deleted meanwhile; reload` };
        throw error;
      }
      const change = await audit({ at, who, action: 'edit', name: existing.name, before, after });
      return { kind: 'ok', destination: next, change, orthanc: await push(next) };
    },

    async remove(name: string, who: string): Promise<AdminOutcome> {
      const env = catalog.fromEnvironment(name);
      const existing = await store.get(name);
      if (!existing)
        return env
          ? { kind: 'conflict', error: readOnly(env.name, env.kind) }
          : { kind: 'not-found', error: `no destination ${name} was added in the dashboard` };
      try {
        await store.remove(existing);
      } catch (error) {
        if (error instanceof DestinationConflict)
          return { kind: 'conflict', error: `destination '${existing.name}' was changed or deleted meanwhile; reload` };
        throw error;
      }
      const at = now().toISOString();
      const change = await audit({ at, who, action: 'delete', name: existing.name, before: fieldsOf(existing) });
      // A record the environment shadows is only forgotten: Orthanc's modality is the environment's;
      // and Orthanc never had a DICOMweb one.
      if (env || isDicomWeb(existing)) return { kind: 'ok', change };
      deps.echoes.delete(existing.name);
      let orthanc: OrthancOutcome;
      try {
        orthanc = { removed: await deps.orthanc.deleteModality(existing.name) };
      } catch (error) {
        // Orthanc forgets REST-put modalities when it restarts, and the timer no longer puts this one back.
        orthanc = { removed: false, reason: (error as Error).message };
        deps.log(`Destination ${existing.name} deleted, but not removed from Orthanc: ${orthanc.reason}`);
      }
      return { kind: 'ok', change, orthanc };
    },
  };
}

export type DestinationAdmin = ReturnType<typeof createDestinationAdmin>;

/** At start-up: the stored destinations put into Orthanc (and C-ECHOed) beside the environment's. */
export async function applyStoredDestinations(
  deps: Pick<DestinationAdminDeps, 'catalog' | 'orthanc' | 'echoes' | 'log'>,
): Promise<Record<string, EchoState>> {
  const stored = await deps.catalog.stored();
  const states = await applyDestinations(deps.orthanc, stored, deps.log, {}, deps.echoes);
  // applyDestinations answers with every state the map holds, the environment's too.
  const applied = Object.entries(states).filter(([name]) => Object.hasOwn(stored, name));
  for (const [, state] of applied) state.source = 'dashboard';
  return Object.fromEntries(applied);
}
