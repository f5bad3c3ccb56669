/**
 * The health report: is Orthanc reachable (and which version), is storage reachable. Each check is
 * bounded in time so a hung dependency gives a clear 503 instead of a hung probe.
 */
import { destinationStates, type EchoState } from './destinations';
import type { Services } from './services';

export interface HealthReport {
  ok: boolean;
  checkedAt: string;
  orthanc: { ok: boolean; version?: string; error?: string };
  storage: { ok: boolean; error?: string };
  settings?: { ok: boolean; error?: string };
  /** DICOM destinations from the environment and their C-ECHO at start-up (not part of `ok`). */
  destinations?: Record<string, EchoState>;
}

const CHECK_TIMEOUT_MS = 5_000;

async function within<T>(promise: Promise<T>, label: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label} did not answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function checkHealth(getServices: () => Promise<Services>): Promise<HealthReport> {
  const checkedAt = new Date().toISOString();
  let services: Services;
  try {
    services = await within(getServices(), 'startup');
  } catch (error) {
    const message = (error as Error).message;
    return { ok: false, checkedAt, orthanc: { ok: false, error: 'not checked' }, storage: { ok: false, error: 'not checked' }, settings: { ok: false, error: message } };
  }
  const [orthanc, storage] = await Promise.all([
    within(services.orthanc.system(), 'Orthanc')
      .then((s) => ({ ok: true, version: s.Version }))
      .catch((error: Error) => ({ ok: false, error: error.message })),
    within(services.ledger.ping(), 'Table storage')
      .then(() => ({ ok: true }))
      .catch((error: Error) => ({ ok: false, error: error.message })),
  ]);
  return { ok: orthanc.ok && storage.ok, checkedAt, orthanc, storage, destinations: destinationStates() };
}
