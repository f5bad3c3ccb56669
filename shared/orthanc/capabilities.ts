/**
 * What an Orthanc offers beyond 1.10, read from its GET /system: the app uses a newer feature only
 * when the Orthanc it talks to reports it, so one build serves sites on 1.10 and on 1.12.
 * - Labels (1.12.0, REST API 18): `HasLabels`, false when the database plugin has no labels.
 * - Typed change feed (1.12.5): `Capabilities.HasExtendedChanges`, which also depends on the database
 *   (SQLite and recent PostgreSQL plugins); then `/changes?type=A;B` returns only those changes.
 */
import type { OrthancSystem } from './schemas';

export interface OrthancCapabilities {
  version: string;
  /** PUT /{level}/{id}/labels/{label} works. */
  labels: boolean;
  /** GET /changes honours `type=` (older versions ignore it and return every change). */
  extendedChanges: boolean;
}

/** The REST API version of Orthanc 1.12.0, which brought labels. */
const LABELS_API_VERSION = 18;

/** [major, minor, patch] of "1.12.7"; undefined for builds such as "mainline", which are newer than any release. */
export function parseOrthancVersion(version: string): [number, number, number] | undefined {
  const m = /^(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

export function orthancVersionAtLeast(version: string, wanted: [number, number, number]): boolean {
  const parsed = parseOrthancVersion(version);
  if (!parsed) return true;
  for (let i = 0; i < 3; i += 1) if (parsed[i] !== wanted[i]) return parsed[i] > wanted[i];
  return true;
}

export function capabilitiesOf(system: OrthancSystem): OrthancCapabilities {
  const extra = system as OrthancSystem & { HasLabels?: unknown; Capabilities?: { HasExtendedChanges?: unknown } };
  const newEnough = (system.ApiVersion ?? 0) >= LABELS_API_VERSION || orthancVersionAtLeast(system.Version, [1, 12, 0]);
  return {
    version: system.Version,
    labels: newEnough && extra.HasLabels === true,
    extendedChanges: newEnough && extra.Capabilities?.HasExtendedChanges === true,
  };
}
