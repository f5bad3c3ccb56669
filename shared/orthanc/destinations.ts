/**
 * The DICOM peers from the environment, put into Orthanc (`PUT /modalities/{name}`, always with
 * explicit permissions, see shared/orthanc/peers.ts):
 *   - destinations (autorthanc's ORTHANC_DICOM_MODALITIES and seed 003's MODALITY_<NAME>=AET|HOST|PORT)
 *     are registered and C-ECHOed at start-up; the outcome is logged and shown by the status report;
 *   - allowed senders (ORTHANC_ALLOWED_SENDERS) are registered so Orthanc lets them store.
 * Orthanc keeps these only in memory (DicomModalitiesInDatabase is false), so `ensureDicomPeers`
 * puts back whatever an Orthanc restart lost; until then Orthanc refuses rather than admits.
 */
import type { ModalityDefinition } from '../config';
import type { OrthancClient } from './client';
import { orthancModalityBody, type AllowedSender } from './peers';

export interface EchoState {
  aet: string;
  host: string;
  port: number;
  configured: boolean;
  echo: 'ok' | 'failed' | 'not checked';
  reason?: string;
  checkedAt: string;
  /** Who declared it: the environment (absent, for older readers) or the dashboard (shared/destinations/). */
  source?: 'env' | 'dashboard';
}

export async function applyDestinations(
  orthanc: Pick<OrthancClient, 'putModality' | 'echo'>,
  modalities: Record<string, ModalityDefinition>,
  log: (line: string) => void,
  senders: Record<string, AllowedSender> = {},
  states = new Map<string, EchoState>(),
): Promise<Record<string, EchoState>> {
  for (const [name, modality] of Object.entries(modalities)) {
    const state: EchoState = {
      aet: modality.AET,
      host: modality.Host,
      port: modality.Port,
      configured: false,
      echo: 'not checked',
      checkedAt: new Date().toISOString(),
    };
    try {
      await orthanc.putModality(name, modality);
      state.configured = true;
      const echo = await orthanc.echo(name);
      state.echo = echo.ok ? 'ok' : 'failed';
      if (!echo.ok) state.reason = echo.reason;
    } catch (error) {
      state.reason = (error as Error).message;
    }
    states.set(name, state);
    const grants = modality.allow ? `, may also ${modality.allow.join('+')}` : '';
    log(
      `Destination ${name} (${modality.AET}@${modality.Host}:${modality.Port}${grants}): ${state.configured ? `configured in Orthanc, C-ECHO ${state.echo}` : 'not configured'}${state.reason ? ` - ${state.reason}` : ''}`,
    );
  }
  // A sender need not answer C-ECHO (it may be a scanner without an SCP), so none is sent.
  for (const [name, sender] of Object.entries(senders)) {
    try {
      await orthanc.putModality(name, sender);
      log(`Allowed sender ${name} (${sender.AET}@${sender.Host}): configured in Orthanc (echo and store)`);
    } catch (error) {
      log(
        `Allowed sender ${name} (${sender.AET}@${sender.Host}): not configured - ${(error as Error).message}; Orthanc refuses it until this succeeds`,
      );
    }
  }
  return Object.fromEntries(states);
}

/** The fields that decide who may do what; Orthanc reports more (Manufacturer, Timeout...) that we leave alone. */
const DECISIVE = [
  'AET',
  'Host',
  'Port',
  'AllowEcho',
  'AllowStore',
  'AllowFind',
  'AllowFindWorklist',
  'AllowGet',
  'AllowMove',
] as const;

/**
 * Compares Orthanc's modalities with the environment's peers and puts back those missing or changed
 * (after an Orthanc restart, or an edit by hand). Returns the names it put. Modalities Orthanc has
 * beyond these are left alone: an operator may have added them on purpose.
 */
export async function ensureDicomPeers(
  orthanc: Pick<OrthancClient, 'modalities' | 'putModality'>,
  peers: { modalities: Record<string, ModalityDefinition>; allowedSenders?: Record<string, AllowedSender> },
  log: (line: string) => void,
): Promise<string[]> {
  const wanted: Array<[string, Parameters<typeof orthancModalityBody>[0]]> = [
    ...Object.entries(peers.modalities),
    ...Object.entries(peers.allowedSenders ?? {}),
  ];
  if (wanted.length === 0) return [];
  const present = await orthanc.modalities();
  const put: string[] = [];
  for (const [name, peer] of wanted) {
    const body = orthancModalityBody(peer) as unknown as Record<string, unknown>;
    const current = present[name] as Record<string, unknown> | undefined;
    if (current && DECISIVE.every((key) => current[key] === body[key])) continue;
    await orthanc.putModality(name, peer);
    put.push(name);
  }
  if (put.length > 0) log(`DICOM peers put back into Orthanc (missing or changed there): ${put.join(', ')}`);
  return put;
}
