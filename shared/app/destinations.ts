/**
 * DICOM destinations from the environment (autorthanc's ORTHANC_DICOM_MODALITIES and seed 003's
 * MODALITY_<NAME>=AET|HOST|PORT) are put into Orthanc at start-up and C-ECHOed; the outcome is logged
 * and shown by the health endpoint.
 */
import type { ModalityDefinition } from '../config';
import type { OrthancClient } from '../orthanc/client';

export interface EchoState {
  aet: string;
  host: string;
  port: number;
  configured: boolean;
  echo: 'ok' | 'failed' | 'not checked';
  reason?: string;
  checkedAt: string;
}

const states = new Map<string, EchoState>();

export function destinationStates(): Record<string, EchoState> {
  return Object.fromEntries(states);
}

export async function applyDestinations(orthanc: Pick<OrthancClient, 'putModality' | 'echo'>, modalities: Record<string, ModalityDefinition>, log: (line: string) => void): Promise<Record<string, EchoState>> {
  for (const [name, modality] of Object.entries(modalities)) {
    const state: EchoState = { aet: modality.AET, host: modality.Host, port: modality.Port, configured: false, echo: 'not checked', checkedAt: new Date().toISOString() };
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
    log(`Destination ${name} (${modality.AET}@${modality.Host}:${modality.Port}): ${state.configured ? `configured in Orthanc, C-ECHO ${state.echo}` : 'not configured'}${state.reason ? ` - ${state.reason}` : ''}`);
  }
  return destinationStates();
}
