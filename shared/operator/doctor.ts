/**
 * The app's half of `autorthanc doctor` (GET /api/doctor): what only the app can see. Its folders
 * writable with free space, its secrets set and strong, its clock against Orthanc's. The CLI adds
 * what /api/status already reports (Orthanc, Table storage, queues, destinations) and its own clock.
 * Each finding says what is wrong and how to fix it, never a secret's value.
 */
import { randomUUID } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { diskFree, type DiskFree } from '../alerts/events';
import { secretProblem, type Config } from '../config';
import type { OrthancClient } from '../orthanc/client';

export interface DoctorCheck {
  name: string;
  ok: boolean;
  detail: string;
}

export interface DoctorReport {
  checkedAt: string;
  checks: DoctorCheck[];
}

export interface DoctorDeps {
  config: Pick<Config, 'storagePath' | 'stagingPath' | 'anonymisationSecret'> & {
    orthanc: Pick<Config['orthanc'], 'password'>;
    alerts: Pick<Config['alerts'], 'diskFreePercent'>;
  };
  orthanc: Pick<OrthancClient, 'now'>;
  diskFree?: (folder: string) => Promise<DiskFree>;
  now?: () => Date;
}

/** Beyond this the ledger's times, heartbeats and StableSeconds disagree with Orthanc's enough to mislead. */
export const MAX_CLOCK_SKEW_SECONDS = 30;

const GIB = 2 ** 30;

async function folderCheck(
  role: string,
  folder: string,
  minFreePercent: number,
  free: (folder: string) => Promise<DiskFree>,
): Promise<DoctorCheck> {
  const name = `${role} folder`;
  // A probe file proves the app's user may create and remove files there, which a mode bit alone does not.
  const probe = path.join(folder, `.autorthanc-doctor-${randomUUID()}`);
  try {
    await writeFile(probe, '');
    await unlink(probe);
  } catch (error) {
    return { name, ok: false, detail: `not writable: ${(error as NodeJS.ErrnoException).code ?? 'error'}` };
  }
  const space = await free(folder);
  const percent = Math.round(space.freePercent * 10) / 10;
  const summary = `writable, ${(space.freeBytes / GIB).toFixed(1)} GiB free (${percent}%)`;
  const threshold = Math.max(minFreePercent, 1);
  return space.freePercent < threshold
    ? { name, ok: false, detail: `${summary}, below ${threshold}% (AUTOMATION_ALERT_DISK_FREE_PERCENT)` }
    : { name, ok: true, detail: summary };
}

function secretCheck(setting: string, value: string | undefined, whenUnset: string): DoctorCheck {
  const name = `secret ${setting}`;
  if (value === undefined || value === '') return { name, ok: false, detail: `not set: ${whenUnset}` };
  const problem = secretProblem(value);
  return problem ? { name, ok: false, detail: problem } : { name, ok: true, detail: 'set and strong' };
}

async function clockCheck(deps: DoctorDeps): Promise<DoctorCheck> {
  const name = 'clock against Orthanc';
  try {
    const orthanc = await deps.orthanc.now();
    const skew = Math.round(((deps.now ?? (() => new Date()))().getTime() - orthanc.getTime()) / 1000);
    // /tools/now has whole seconds, so one second either way is rounding, not skew.
    const detail = `the app is ${Math.abs(skew)} s ${skew >= 0 ? 'ahead of' : 'behind'} Orthanc`;
    return Math.abs(skew) > MAX_CLOCK_SKEW_SECONDS
      ? { name, ok: false, detail: `${detail} (more than ${MAX_CLOCK_SKEW_SECONDS} s; run NTP on both hosts)` }
      : { name, ok: true, detail };
  } catch (error) {
    return { name, ok: false, detail: `cannot read Orthanc's clock: ${(error as Error).message}` };
  }
}

export async function runDoctor(deps: DoctorDeps): Promise<DoctorReport> {
  const free = deps.diskFree ?? diskFree;
  const { config } = deps;
  const checks = await Promise.all([
    folderCheck('storage', config.storagePath, config.alerts.diskFreePercent, free),
    folderCheck('staging', config.stagingPath, config.alerts.diskFreePercent, free),
    Promise.resolve(
      secretCheck(
        'AUTOMATION_ANONYMISATION_SECRET',
        config.anonymisationSecret,
        'anonymising rules cannot run (deploy/generate-keys.sh sets one)',
      ),
    ),
    Promise.resolve(secretCheck('ORTHANC_PASSWORD', config.orthanc.password, 'Orthanc is reached without credentials')),
    clockCheck(deps),
  ]);
  return { checkedAt: new Date().toISOString(), checks };
}
