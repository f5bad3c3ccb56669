/**
 * The credentials of a DICOMweb destination added in the dashboard, read from the environment at each
 * use under the prefix its record names (`STOW_AUTH_PACS` → `STOW_AUTH_PACS_TOKEN`, or `_USERNAME` and
 * `_PASSWORD`): rotating a secret is a change of setting, and Table storage never holds one.
 */
import type { DicomWebDefinition } from '../dicomweb/stow';

export type CredentialsFromEnv =
  | { ok: true; credentials: Pick<DicomWebDefinition, 'token' | 'username' | 'password'> }
  | { ok: false; reason: string };

export function credentialsFromEnv(prefix: string | undefined, env: NodeJS.ProcessEnv): CredentialsFromEnv {
  if (prefix === undefined) return { ok: true, credentials: {} };
  const read = (suffix: string) => {
    const value = env[`${prefix}_${suffix}`];
    return value === undefined || value === '' ? undefined : value;
  };
  const token = read('TOKEN');
  const username = read('USERNAME');
  const password = read('PASSWORD');
  // The reasons name settings, never their values.
  if (token !== undefined && (username !== undefined || password !== undefined))
    return { ok: false, reason: `set either ${prefix}_TOKEN or ${prefix}_USERNAME/_PASSWORD, not both` };
  if (token !== undefined) return { ok: true, credentials: { token } };
  if (username !== undefined && password !== undefined) return { ok: true, credentials: { username, password } };
  if (username !== undefined || password !== undefined)
    return { ok: false, reason: `set ${prefix}_USERNAME and ${prefix}_PASSWORD together` };
  return { ok: false, reason: `${prefix}_TOKEN or ${prefix}_USERNAME/_PASSWORD is not set in the environment` };
}
