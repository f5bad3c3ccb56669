/**
 * Keyed, deterministic replacements: the same key and original always give the same UID,
 * pseudonym and date shift, so references stay consistent across a study, across re-runs and across
 * studies of the same patient, while nothing can be reversed without the key.
 *
 * The key is never the site's secret itself but a project key derived from it (`projectKey`), so
 * recipients of different projects cannot link a patient by comparing pseudonyms or UIDs.
 */
import { createHmac, hkdfSync } from 'node:crypto';

/** Fixed HKDF salt: it separates this use of the site secret from any other use of the same bytes. */
const PROJECT_KEY_SALT = 'autorthanc-functions anonymisation v1';

/**
 * The key of one project (a rule's `Anonymise.Project`, by default its id): HKDF-SHA-256 of the site
 * secret with the project name as info. Same project, same key, whichever rule names it.
 */
export function projectKey(secret: string, project: string): string {
  return Buffer.from(hkdfSync('sha256', secret, PROJECT_KEY_SALT, `project\u0000${project}`, 32)).toString('hex');
}

function hmac(secret: string, purpose: string, value: string): Buffer {
  return createHmac('sha256', secret).update(`${purpose}\u0000${value}`).digest();
}

/** `2.25.<decimal of 128 bits of HMAC>` (at most 44 characters, well under the 64 of VR UI). */
export function anonymisedUid(secret: string, uid: string): string {
  const bytes = hmac(secret, 'uid', uid.trim().replace(/\0+$/, '')).subarray(0, 16);
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** `<prefix><12 base-32 characters>`: a PatientID/PatientName that is stable per original PatientID. */
export function patientPseudonym(secret: string, patientId: string, prefix = 'ANON'): string {
  const bytes = hmac(secret, 'patient', patientId.trim());
  let out = '';
  for (let i = 0; i < 12; i += 1) out += BASE32[bytes[i] % 32];
  return `${prefix}${out}`;
}

/** Days a patient's dates move back: 1 to 3650, fixed per patient, so intervals are kept. */
export function dateShiftDays(secret: string, patientId: string): number {
  return (hmac(secret, 'dateshift', patientId.trim()).readUInt32BE(0) % 3650) + 1;
}

/** A short opaque token for folder names (e.g. of a study). */
export function opaqueToken(secret: string, value: string): string {
  return hmac(secret, 'token', value).toString('hex').slice(0, 12);
}
