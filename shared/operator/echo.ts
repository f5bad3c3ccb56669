/**
 * An operator's C-ECHO of one destination (POST /api/destinations/{name}/echo, `autorthanc test NAME`):
 * through Orthanc for a DICOM destination, a QIDO probe for a DICOMweb one, timed. The answer also
 * refreshes the destination's state in /api/status, so the dashboard and `doctor` see the latest try.
 */
import type { EchoState } from '../orthanc/destinations';
import type { OrthancClient } from '../orthanc/client';
import type { StowClient } from '../dicomweb/stow';

export interface EchoAnswer {
  name: string;
  kind: 'dicom' | 'dicomweb';
  ok: boolean;
  milliseconds: number;
  reason?: string;
  checkedAt: string;
}

export interface EchoDeps {
  orthanc: Pick<OrthancClient, 'echo'>;
  modalities: Record<string, unknown>;
  dicomweb: Record<string, Pick<StowClient, 'probe'>>;
  echoes: Map<string, EchoState>;
  now?: () => number;
}

/** undefined when no destination has that name (the caller answers 404). */
export async function echoDestination(deps: EchoDeps, name: string): Promise<EchoAnswer | undefined> {
  const now = deps.now ?? (() => performance.now());
  const started = now();
  if (Object.hasOwn(deps.modalities, name)) {
    const echo = await deps.orthanc.echo(name);
    const answer: EchoAnswer = {
      name,
      kind: 'dicom',
      ok: echo.ok,
      milliseconds: Math.round(now() - started),
      ...(echo.ok ? {} : { reason: echo.reason }),
      checkedAt: new Date().toISOString(),
    };
    const state = deps.echoes.get(name);
    if (state) {
      state.echo = echo.ok ? 'ok' : 'failed';
      state.checkedAt = answer.checkedAt;
      if (echo.ok) delete state.reason;
      else state.reason = echo.reason;
    }
    return answer;
  }
  if (Object.hasOwn(deps.dicomweb, name)) {
    const probe = await deps.dicomweb[name].probe();
    return {
      name,
      kind: 'dicomweb',
      ok: probe.reachable,
      milliseconds: Math.round(now() - started),
      ...(probe.reachable ? {} : { reason: probe.error ?? `HTTP ${probe.status ?? '?'}` }),
      checkedAt: new Date().toISOString(),
    };
  }
  return undefined;
}
