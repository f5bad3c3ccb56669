/**
 * Which Orthanc the tests run: `ORTHANC_FLAVOUR=1.10` (default) is Debian 12's package on this machine;
 * `ORTHANC_FLAVOUR=1.12` is Debian 13's, in the root folder scripts/install-system-deps.sh debootstraps,
 * started through scripts/orthanc-chroot.sh with the folders Orthanc reads bind-mounted at the same
 * paths. Both run the same deploy/orthanc files, so a test passes on both or names a real difference.
 */
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireBinary } from './process';

const REPO = path.resolve(__dirname, '../..');
export const ORTHANC_CHROOT_SCRIPT = path.join(REPO, 'scripts/orthanc-chroot.sh');
export const DEFAULT_TRIXIE_ROOT = '/var/cache/autorthanc/trixie-orthanc';
const PREPARE = 'bash scripts/install-system-deps.sh (as root)';

export type OrthancFlavourName = '1.10' | '1.12';

export interface OrthancFlavour {
  name: OrthancFlavourName;
  /** Where the files of the Orthanc's own system live ('' for this machine). */
  root: string;
  /** The command that starts Orthanc with `args`, giving it `folders` (read-write) and `readOnly` folders. */
  command(args: string[], folders: { readWrite: string[]; readOnly: string[] }): { file: string; args: string[] };
  /** The path on this machine of a file of the Orthanc's system (a plugin), for existence checks. */
  hostPath(file: string): string;
}

export function orthancFlavourName(env: NodeJS.ProcessEnv = process.env): OrthancFlavourName {
  const value = (env.ORTHANC_FLAVOUR ?? '').trim() || '1.10';
  if (value !== '1.10' && value !== '1.12')
    throw new Error(`ORTHANC_FLAVOUR is '${value}'; use 1.10 (Debian 12's Orthanc) or 1.12 (Debian 13's)`);
  return value;
}

const isInside = (folder: string, outer: string) =>
  folder === outer || folder.startsWith(outer.endsWith('/') ? outer : `${outer}/`);

/** Removes folders already inside another one of the list: one bind mount covers them. */
function outermost(folders: string[]): string[] {
  const unique = [...new Set(folders.map((f) => path.resolve(f)))].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const folder of unique) if (!kept.some((k) => isInside(folder, k))) kept.push(folder);
  return kept;
}

export function orthancFlavour(env: NodeJS.ProcessEnv = process.env): OrthancFlavour {
  const name = orthancFlavourName(env);
  if (name === '1.10') {
    const binary = requireBinary('Orthanc', 'orthanc');
    return { name, root: '', command: (args) => ({ file: binary, args }), hostPath: (file) => file };
  }
  const root = path.resolve(env.ORTHANC_TRIXIE_ROOT || DEFAULT_TRIXIE_ROOT);
  const stamp = path.join(root, '.autorthanc-complete');
  if (!existsSync(path.join(root, 'usr/sbin/Orthanc')) || !existsSync(stamp) || !readFileSync(stamp, 'utf8').trim())
    throw new Error(`ORTHANC_FLAVOUR=1.12 needs Debian 13's Orthanc prepared in ${root}: run ${PREPARE}`);
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    throw new Error('ORTHANC_FLAVOUR=1.12 runs Orthanc with chroot, which needs root (as CI runs)');
  return {
    name,
    root,
    command(args, folders) {
      // The temp folder holds every test's storage and worklist folders; mounted whole, no mount point is left behind.
      const readWrite = outermost([os.tmpdir(), ...folders.readWrite]);
      const readOnly = outermost(folders.readOnly).filter((f) => !readWrite.some((k) => isInside(f, k)));
      return {
        file: ORTHANC_CHROOT_SCRIPT,
        args: [
          root,
          ...readWrite.flatMap((f) => ['--bind', f]),
          ...readOnly.flatMap((f) => ['--bind-ro', f]),
          '--',
          ...args,
        ],
      };
    },
    hostPath: (file) => path.join(root, file),
  };
}

/** True when `version` (from GET /system) belongs to `flavour` (1.12 matches 1.12.7, not 1.1.2 or 1.120). */
export function versionMatchesFlavour(version: string, flavour: OrthancFlavourName): boolean {
  return version === flavour || version.startsWith(`${flavour}.`);
}
