/**
 * A typed Orthanc REST client: one method per call the app makes, each with its answer's schema, on
 * the transport of transport.ts (auth, timeouts, retries, error wording).
 */
import { z } from 'zod';
import type { Readable } from 'node:stream';
import {
  changesSchema,
  instanceSchema,
  jobSchema,
  jobStartedSchema,
  lookupSchema,
  modalitiesSchema,
  seriesSchema,
  simplifiedTagsSchema,
  storeStraightSchema,
  studySchema,
  systemSchema,
  type OrthancChanges,
  type OrthancInstance,
  type OrthancJob,
  type OrthancModality,
  type OrthancSeries,
  type OrthancStudy,
  type OrthancSystem,
} from './schemas';
import { orthancModalityBody, type QueryRetrieveOperation } from './peers';
import { capabilitiesOf, type OrthancCapabilities } from './capabilities';
import { createOrthancTransport, OrthancError, validate, type OrthancClientOptions } from './transport';

export { OrthancError, type OrthancClientOptions } from './transport';

const studyIdsSchema = z.array(z.string());

/** The REST collection a resource lives under (`/studies/{id}`); not the rules' ResourceLevel. */
export type OrthancCollection = 'patients' | 'studies' | 'series' | 'instances';

export interface StoreOptions {
  asynchronous?: boolean;
  storageCommitment?: boolean;
  timeoutSeconds?: number;
}

export type OrthancClient = ReturnType<typeof createOrthancClient>;

/** How long what /system reported is trusted: an upgraded or restarted Orthanc is seen within it. */
const CAPABILITIES_TTL_MS = 60_000;

export function createOrthancClient(options: OrthancClientOptions) {
  const { send, getJson, postJson, fileStream } = createOrthancTransport(options);
  let capabilities: { value: OrthancCapabilities; at: number } | undefined;
  return {
    url: options.url,

    system: (): Promise<OrthancSystem> => getJson('/system', systemSchema),

    /** What this Orthanc offers beyond 1.10 (labels, typed /changes), from /system, kept for a minute. */
    capabilities: async (): Promise<OrthancCapabilities> => {
      if (capabilities && Date.now() - capabilities.at < CAPABILITIES_TTL_MS) return capabilities.value;
      const value = capabilitiesOf(await getJson('/system', systemSchema));
      capabilities = { value, at: Date.now() };
      return value;
    },

    /** Orthanc's clock (`/tools/now`, UTC, to the second), for the operator's clock-skew check. */
    now: async (): Promise<Date> => {
      const text = validate(z.string(), (await send('GET', '/tools/now')).data, 'GET', '/tools/now').trim();
      const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})$/.exec(text);
      if (!m) throw new Error(`Orthanc's /tools/now answered '${text.slice(0, 40)}', not YYYYMMDDTHHMMSS`);
      return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
    },

    getStudy: (id: string): Promise<OrthancStudy> => getJson(`/studies/${encodeURIComponent(id)}`, studySchema),
    getSeries: (id: string): Promise<OrthancSeries> => getJson(`/series/${encodeURIComponent(id)}`, seriesSchema),
    getInstance: (id: string): Promise<OrthancInstance> =>
      getJson(`/instances/${encodeURIComponent(id)}`, instanceSchema),

    /** Every instance of a study or series, with FileSize, in one call. */
    listInstances: (level: 'studies' | 'series', id: string): Promise<OrthancInstance[]> =>
      getJson(`/${level}/${encodeURIComponent(id)}/instances`, instanceSchema.array()),

    /** One page of study ids, in Orthanc's index order. */
    listStudies: (page: { since: number; limit: number }): Promise<string[]> =>
      getJson('/studies', studyIdsSchema, { params: { since: page.since, limit: page.limit } }),

    /**
     * The stored Part-10 bytes as a stream; the caller must consume or destroy it. Retried like a GET
     * until the answer starts; a cut or a stall (no byte for the timeout) mid-body fails the stream.
     */
    instanceFile: (id: string): Promise<Readable> => fileStream(`/instances/${encodeURIComponent(id)}/file`),

    /** keyword → value (sequences as arrays of objects). */
    getInstanceTags: (id: string): Promise<Record<string, unknown>> =>
      getJson(`/instances/${encodeURIComponent(id)}/simplified-tags`, simplifiedTagsSchema),

    /** `gggg,eeee` → value, for tags without a keyword (private, retired). */
    getInstanceTagsByNumber: (id: string): Promise<Record<string, unknown>> =>
      getJson(`/instances/${encodeURIComponent(id)}/tags`, simplifiedTagsSchema, { params: { short: '' } }),

    /** One metadata value (e.g. RemoteAET), or undefined when Orthanc has none. */
    getMetadata: async (level: OrthancCollection, id: string, name: string): Promise<string | undefined> => {
      try {
        const { data } = await send<string>(
          'GET',
          `/${level}/${encodeURIComponent(id)}/metadata/${encodeURIComponent(name)}`,
          { responseType: 'text', transformResponse: (x: unknown) => x },
        );
        return String(data);
      } catch (error) {
        if (error instanceof OrthancError && error.notFound) return undefined;
        throw error;
      }
    },

    setMetadata: async (level: OrthancCollection, id: string, name: string, value: string): Promise<void> => {
      await send('PUT', `/${level}/${encodeURIComponent(id)}/metadata/${encodeURIComponent(name)}`, {
        data: value,
        headers: { 'Content-Type': 'text/plain' },
      });
    },

    /** A page of /changes; `types` (Orthanc 1.12.5+ with HasExtendedChanges) limits it to those change types. */
    changes: (page: { since: number; limit: number; types?: readonly string[] }): Promise<OrthancChanges> => {
      // Orthanc splits `type` on a literal ';' and does not decode %3B, so it is written into the URL as is.
      const types = (page.types ?? []).filter((t) => /^[A-Za-z]+$/.test(t));
      return getJson(types.length > 0 ? `/changes?type=${types.join(';')}` : '/changes', changesSchema, {
        params: { since: page.since, limit: page.limit },
      });
    },

    lastChange: (): Promise<OrthancChanges> => getJson('/changes', changesSchema, { params: { last: '' } }),

    /** Adds a label (Orthanc 1.12.0+; `[A-Za-z0-9_-]{1,64}`, see shared/pipeline/studyLabels.ts); adding it twice is harmless. */
    addLabel: async (level: OrthancCollection, id: string, label: string): Promise<void> => {
      await send('PUT', `/${level}/${encodeURIComponent(id)}/labels/${encodeURIComponent(label)}`, {
        data: '',
        headers: { 'Content-Type': 'text/plain' },
      });
    },

    /** The labels of a resource (Orthanc 1.12.0+). */
    labels: (level: OrthancCollection, id: string): Promise<string[]> =>
      getJson(`/${level}/${encodeURIComponent(id)}/labels`, z.array(z.string())),

    /** Orthanc ids of the resources carrying a DICOM UID. */
    lookup: async (uid: string) => {
      const { data } = await send(
        'POST',
        '/tools/lookup',
        { data: uid, headers: { 'Content-Type': 'text/plain' } },
        true,
      );
      return validate(lookupSchema, data, 'POST', '/tools/lookup');
    },

    modalities: (): Promise<Record<string, OrthancModality>> =>
      getJson('/modalities', modalitiesSchema, { params: { expand: '' } }),

    /** Registers a DICOM peer with explicit permissions: echo and store, plus what `allow` grants (see peers.ts). */
    putModality: async (
      name: string,
      modality: { AET: string; Host: string; Port?: number; allow?: readonly QueryRetrieveOperation[] },
    ): Promise<void> => {
      await send('PUT', `/modalities/${encodeURIComponent(name)}`, {
        data: orthancModalityBody(modality),
        headers: { 'Content-Type': 'application/json' },
      });
    },

    /** Forgets a DICOM peer; false when Orthanc had none of that name (already gone is not an error). */
    deleteModality: async (name: string): Promise<boolean> => {
      try {
        await send('DELETE', `/modalities/${encodeURIComponent(name)}`);
        return true;
      } catch (error) {
        if (error instanceof OrthancError && error.details.status === 404) return false;
        throw error;
      }
    },

    /** C-ECHO through Orthanc; resolves with the failure reason instead of throwing. */
    echo: async (name: string, timeoutSeconds = 10): Promise<{ ok: true } | { ok: false; reason: string }> => {
      try {
        await send(
          'POST',
          `/modalities/${encodeURIComponent(name)}/echo`,
          { data: { Timeout: timeoutSeconds }, headers: { 'Content-Type': 'application/json' } },
          false,
        );
        return { ok: true };
      } catch (error) {
        const e = error as OrthancError;
        return { ok: false, reason: e.details?.orthancDetails ?? e.message };
      }
    },

    /** C-STORE resources Orthanc holds to a modality, as an Orthanc job; returns the job id. */
    storeToModalityAsync: async (name: string, resources: string[], store: StoreOptions = {}): Promise<string> => {
      const started = await postJson(
        `/modalities/${encodeURIComponent(name)}/store`,
        {
          Resources: resources,
          Asynchronous: true,
          StorageCommitment: store.storageCommitment ?? false,
          ...(store.timeoutSeconds !== undefined ? { Timeout: store.timeoutSeconds } : {}),
        },
        jobStartedSchema,
      );
      return started.ID;
    },

    /** C-STORE a DICOM file that Orthanc does not hold (e.g. anonymised by us) without storing it. */
    storeStraight: async (name: string, dicom: Buffer): Promise<{ SOPInstanceUID: string }> => {
      const { data } = await send(
        'POST',
        `/modalities/${encodeURIComponent(name)}/store-straight`,
        { data: dicom, headers: { 'Content-Type': 'application/dicom' } },
        false,
      );
      return validate(storeStraightSchema, data, 'POST', `/modalities/${name}/store-straight`);
    },

    getJob: (id: string): Promise<OrthancJob> => getJson(`/jobs/${encodeURIComponent(id)}`, jobSchema),

    /** For callers that need an endpoint this client does not wrap yet (kept typed at the call site). */
    raw: send,
  };
}
