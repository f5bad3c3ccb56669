/**
 * Every destination the app knows, whatever declared it: the environment's DICOM modalities
 * (ORTHANC_DICOM_MODALITIES, MODALITY_<NAME>) and DICOMweb servers (DICOMWEB_<NAME>), read-only, and
 * the DICOM and DICOMweb destinations operators saved in the dashboard (Table storage). The stored ones are read on
 * every call, so each instance of the app sees a change at once. A stored name that the environment
 * also declares (added to .env later) yields to the environment and is listed as shadowed.
 */
import type { ModalityDefinition } from '../config';
import { createStowClient, type DicomWebDefinition, type StowClient } from '../dicomweb/stow';
import { credentialsFromEnv } from './credentials';
import { isDicomWeb, type DestinationStore, type StoredDicomDestination } from './store';

export type DestinationSource = 'env' | 'dashboard';

export interface ListedDestination {
  name: string;
  kind: 'dicom' | 'dicomweb';
  source: DestinationSource;
  /** Operators may edit and delete only what the dashboard added. */
  readOnly: boolean;
  aet?: string;
  host?: string;
  port?: number;
  /** DICOMweb: the base URL (never a credential). */
  url?: string;
  /** DICOMweb added in the dashboard: the environment prefix of its credentials (never their values). */
  credentialsFrom?: string;
  /** Whether those settings are present and complete on this instance. */
  credentialsSet?: boolean;
  /** Query/retrieve granted by ORTHANC_DESTINATION_PERMISSIONS (env only). */
  allow?: string[];
  createdAt?: string;
  updatedAt?: string;
  updatedBy?: string;
  /** A stored destination whose name the environment now declares too: the environment's is used. */
  shadowed?: boolean;
  /** The rules that forward to it (a delete would make their forwards fail). */
  usedBy?: string[];
}

/** Each destination with the ids of the (valid) rules that name it, so a delete can say what it breaks. */
export function withRulesUsing(
  listed: ListedDestination[],
  rules: ReadonlyArray<{ id: string; destinations: readonly string[] }>,
): ListedDestination[] {
  return listed.map((d) => {
    const usedBy = rules.filter((r) => r.destinations.includes(d.name)).map((r) => r.id);
    return usedBy.length > 0 ? { ...d, usedBy } : d;
  });
}

export interface DestinationCatalog {
  /** Every DICOM destination as Orthanc's /modalities takes it: the environment's and the stored ones. */
  all(): Promise<Record<string, ModalityDefinition>>;
  /** The stored DICOM destinations only (not shadowed), as Orthanc takes them. */
  stored(): Promise<Record<string, ModalityDefinition>>;
  /** The environment's DICOM modalities and DICOMweb servers, and the stored destinations, sorted by name. */
  list(): Promise<ListedDestination[]>;
  /**
   * STOW-RS clients of every DICOMweb destination, the environment's and the stored ones (not shadowed),
   * read now. A stored one whose credentials settings are incomplete is a client whose sends and probes
   * fail with that reason, so a forward to it retries (and shows why) instead of sending unauthenticated.
   */
  dicomweb(): Promise<Record<string, StowClient>>;
  /** The environment's declaration of a name (any case), if any: such a destination is read-only. */
  fromEnvironment(name: string): { name: string; kind: 'dicom' | 'dicomweb' } | undefined;
  store: DestinationStore;
}

export interface CatalogDeps {
  modalities: Record<string, ModalityDefinition>;
  dicomweb: Record<string, DicomWebDefinition>;
  store: DestinationStore;
  /** The environment's STOW-RS clients (services.dicomweb); built here from `dicomweb` when not given. */
  stowClients?: Record<string, StowClient>;
  /** Where stored DICOMweb destinations' credentials are read (process.env). */
  env?: NodeJS.ProcessEnv;
  stowTimeoutMs?: number;
}

/** A client that refuses every send and probe with `reason` (credentials settings missing). */
function unusableStowClient(url: string, reason: string): StowClient {
  return {
    url,
    async store(parts) {
      return { stored: [], failed: new Map(parts.map((p) => [p.sopInstanceUid, reason])) };
    },
    async probe() {
      return { reachable: false, error: reason };
    },
  };
}

export const modalityOf = (d: Pick<StoredDicomDestination, 'aet' | 'host' | 'port'>): ModalityDefinition => ({
  AET: d.aet,
  Host: d.host,
  Port: d.port,
});

export function createDestinationCatalog(deps: CatalogDeps): DestinationCatalog {
  const envNames = new Map<string, { name: string; kind: 'dicom' | 'dicomweb' }>();
  for (const name of Object.keys(deps.modalities)) envNames.set(name.toLowerCase(), { name, kind: 'dicom' });
  for (const name of Object.keys(deps.dicomweb)) envNames.set(name.toLowerCase(), { name, kind: 'dicomweb' });
  const fromEnvironment = (name: string) => envNames.get(name.toLowerCase());
  const envClients =
    deps.stowClients ??
    Object.fromEntries(
      Object.entries(deps.dicomweb).map(([name, d]) => [name, createStowClient(d, deps.stowTimeoutMs)]),
    );

  const stored = async () => {
    const result: Record<string, ModalityDefinition> = {};
    for (const d of await deps.store.list())
      if (!isDicomWeb(d) && !fromEnvironment(d.name)) result[d.name] = modalityOf(d);
    return result;
  };

  return {
    store: deps.store,
    fromEnvironment,
    stored,
    async dicomweb() {
      const env = deps.env ?? process.env;
      const result: Record<string, StowClient> = {};
      for (const d of await deps.store.list()) {
        if (!isDicomWeb(d) || fromEnvironment(d.name)) continue;
        const credentials = credentialsFromEnv(d.credentialsFrom, env);
        result[d.name] = credentials.ok
          ? createStowClient(
              { url: d.url, ...credentials.credentials } satisfies DicomWebDefinition,
              deps.stowTimeoutMs,
            )
          : unusableStowClient(d.url, credentials.reason);
      }
      return { ...result, ...envClients };
    },
    async all() {
      return { ...(await stored()), ...deps.modalities };
    },
    async list() {
      const listed: ListedDestination[] = [
        ...Object.entries(deps.modalities).map(([name, m]) => ({
          name,
          kind: 'dicom' as const,
          source: 'env' as const,
          readOnly: true,
          aet: m.AET,
          host: m.Host,
          port: m.Port,
          ...(m.allow ? { allow: [...m.allow] } : {}),
        })),
        ...Object.entries(deps.dicomweb).map(([name, d]) => ({
          name,
          kind: 'dicomweb' as const,
          source: 'env' as const,
          readOnly: true,
          url: d.url,
        })),
        ...(await deps.store.list()).map((d) => ({
          name: d.name,
          kind: isDicomWeb(d) ? ('dicomweb' as const) : ('dicom' as const),
          source: 'dashboard' as const,
          readOnly: false,
          ...(isDicomWeb(d)
            ? {
                url: d.url,
                ...(d.credentialsFrom
                  ? {
                      credentialsFrom: d.credentialsFrom,
                      credentialsSet: credentialsFromEnv(d.credentialsFrom, deps.env ?? process.env).ok,
                    }
                  : {}),
              }
            : { aet: d.aet, host: d.host, port: d.port }),
          createdAt: d.createdAt,
          updatedAt: d.updatedAt,
          updatedBy: d.updatedBy,
          ...(fromEnvironment(d.name) ? { shadowed: true } : {}),
        })),
      ];
      // By name without regard to case (as names are compared), the environment's first.
      const order = (d: ListedDestination) => `${d.name.toLowerCase()}\u0000${d.source === 'env' ? 0 : 1}`;
      return listed.sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
    },
  };
}
