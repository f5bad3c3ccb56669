/**
 * Every destination the app knows, whatever declared it: the environment's DICOM modalities
 * (ORTHANC_DICOM_MODALITIES, MODALITY_<NAME>) and DICOMweb servers (DICOMWEB_<NAME>), read-only, and
 * the DICOM destinations operators saved in the dashboard (Table storage). The stored ones are read on
 * every call, so each instance of the app sees a change at once. A stored name that the environment
 * also declares (added to .env later) yields to the environment and is listed as shadowed.
 */
import type { ModalityDefinition } from '../config';
import type { DicomWebDefinition } from '../dicomweb/stow';
import type { DestinationStore, StoredDestination } from './store';

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
  /** The environment's declaration of a name (any case), if any: such a destination is read-only. */
  fromEnvironment(name: string): { name: string; kind: 'dicom' | 'dicomweb' } | undefined;
  store: DestinationStore;
}

export interface CatalogDeps {
  modalities: Record<string, ModalityDefinition>;
  dicomweb: Record<string, DicomWebDefinition>;
  store: DestinationStore;
}

export const modalityOf = (d: Pick<StoredDestination, 'aet' | 'host' | 'port'>): ModalityDefinition => ({
  AET: d.aet,
  Host: d.host,
  Port: d.port,
});

export function createDestinationCatalog(deps: CatalogDeps): DestinationCatalog {
  const envNames = new Map<string, { name: string; kind: 'dicom' | 'dicomweb' }>();
  for (const name of Object.keys(deps.modalities)) envNames.set(name.toLowerCase(), { name, kind: 'dicom' });
  for (const name of Object.keys(deps.dicomweb)) envNames.set(name.toLowerCase(), { name, kind: 'dicomweb' });
  const fromEnvironment = (name: string) => envNames.get(name.toLowerCase());

  const stored = async () => {
    const result: Record<string, ModalityDefinition> = {};
    for (const d of await deps.store.list()) if (!fromEnvironment(d.name)) result[d.name] = modalityOf(d);
    return result;
  };

  return {
    store: deps.store,
    fromEnvironment,
    stored,
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
          kind: 'dicom' as const,
          source: 'dashboard' as const,
          readOnly: false,
          aet: d.aet,
          host: d.host,
          port: d.port,
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
