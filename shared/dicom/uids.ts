/** UIDs as they leave the anonymiser: registered ones kept, the rest remapped by key, every one valid. */
import type { DicomElement } from 'dcmjs';
import { anonymisedUid } from './pseudonyms';

/** Registered DICOM UIDs (PS3.6 Annex A: transfer syntaxes, SOP classes, well-known instances): never replaced. */
export function isWellKnownUid(uid: string): boolean {
  return uid.trim().startsWith('1.2.840.10008.');
}

/** PS3.5 9.1: digits and dots, at most 64 bytes (leading zeros are tolerated, as in many real files). */
export function isValidUid(uid: string): boolean {
  return uid.length <= 64 && /^[0-9]+(\.[0-9]+)*$/.test(uid);
}

/** Where malformed UIDs are reported, once per tag and instance (`name` holds no PHI). */
export interface UidReport {
  name: string;
  warnings: string[];
  malformed: Set<string>;
}

/**
 * A UID value as it leaves. dcmjs drops every character but digits and dots when it reads a UI
 * value, so the raw value tells whether the file's was malformed (garbage, spaces, several UIDs
 * run together). Under U everything but a well-formed registered UID becomes a keyed 2.25 UID;
 * under K a well-formed value stays, a malformed one only when what is left is a registered UID.
 */
function outgoingUid(
  secret: string,
  value: unknown,
  raw: unknown,
  tag: string,
  context: UidReport,
  remap: boolean,
): unknown {
  if (typeof value !== 'string') return value;
  const uid = value.replace(/\0/g, '').trim();
  if (uid === '') return uid;
  const original = typeof raw === 'string' ? raw.replace(/[\0 ]+$/, '').trim() : uid;
  const malformed = original !== uid || !isValidUid(uid);
  if (malformed && !context.malformed.has(tag)) {
    context.malformed.add(tag);
    context.warnings.push(
      `${context.name}: a malformed UID in (${tag.slice(0, 4)},${tag.slice(4)}) was replaced by a valid one`,
    );
  }
  const registered = isWellKnownUid(uid) && isValidUid(uid);
  if (registered && !(remap && malformed)) return uid;
  if (!remap && !malformed) return uid;
  return anonymisedUid(secret, uid);
}

export function outgoingUids(
  secret: string,
  element: DicomElement,
  tag: string,
  context: UidReport,
  remap: boolean,
): { before: unknown[]; after: unknown[] } {
  const before = element.Value ?? [];
  const raws = Array.isArray(element._rawValue) ? element._rawValue : [];
  return { before, after: before.map((v, i) => outgoingUid(secret, v, raws[i], tag, context, remap)) };
}
