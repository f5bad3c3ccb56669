/**
 * What the dashboard may send for a destination, and what is refused with which reason. A name is a
 * rule's `DestinationModality` and Orthanc's modality id, so it follows the peer names of the
 * environment (letters, digits, `_`, `-`; shared/orthanc/peers.ts); the AE title is a DICOM AE value;
 * the host is an IP address or a DNS name (Orthanc resolves it), never a URL or anything with spaces.
 */
import net from 'node:net';
import { z } from 'zod';
import { AE_TITLE } from '../orthanc/peers';

export const DESTINATION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export const destinationNameSchema = z
  .string({ error: 'name is required' })
  .trim()
  .regex(DESTINATION_NAME, 'use 1-64 letters, digits, _ or - (rules name the destination by it)');

const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** An IPv4/IPv6 address or a DNS host name (RFC 1123 labels, at most 253 characters). */
export function isHostName(value: string): boolean {
  if (net.isIP(value) !== 0) return true;
  if (value.length === 0 || value.length > 253) return false;
  const labels = value.replace(/\.$/, '').split('.');
  // All digits would be a malformed IPv4 address rather than a name.
  return labels.every((l) => DNS_LABEL.test(l)) && !labels.every((l) => /^\d+$/.test(l));
}

export const aetSchema = z
  .string({ error: 'aet is required' })
  .trim()
  .regex(AE_TITLE, 'an AE title is 1-16 printable ASCII characters, no backslash');

export const hostSchema = z
  .string({ error: 'host is required' })
  .trim()
  .refine(isHostName, 'expected an IP address or a DNS host name (no scheme, port or path)');

export const portSchema = z
  .number({ error: 'port must be a number' })
  .int('port must be a whole number')
  .min(1, 'port must be between 1 and 65535')
  .max(65535, 'port must be between 1 and 65535');

/**
 * A DICOMweb base URL: http or https, parsed as a URL, without userinfo (a credential in a URL ends up
 * in logs and in the API's answers), a query or a fragment; stored without trailing slashes.
 */
export const dicomWebUrlSchema = z
  .string({ error: 'url is required' })
  .trim()
  .max(2048, 'the URL is too long')
  .superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'expected an http(s) URL, e.g. http://pacs:8042/dicom-web' });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      ctx.addIssue({ code: 'custom', message: 'only http and https URLs are accepted' });
    else if (url.username || url.password)
      ctx.addIssue({ code: 'custom', message: 'no credentials in the URL: name a credentials setting instead' });
    else if (url.search || url.hash)
      ctx.addIssue({ code: 'custom', message: 'the base URL must not have a query or fragment' });
  })
  .transform((value) => new URL(value).toString().replace(/\/+$/, ''));

/**
 * The environment prefix of a DICOMweb destination's credentials. Only this namespace may be named, so a
 * function-key holder cannot send another setting's secret (Orthanc's, storage's) to a URL of their choosing.
 */
export const CREDENTIALS_PREFIX = 'STOW_AUTH_';
export const credentialsFromSchema = z
  .string()
  .trim()
  .regex(
    /^STOW_AUTH_[A-Z0-9]+(?:_[A-Z0-9]+)*$/,
    `name a setting prefix such as ${CREDENTIALS_PREFIX}PACS (its _TOKEN, or _USERNAME and _PASSWORD, are read from the environment)`,
  )
  .max(80, 'the setting name is too long');

const dicomFields = {
  kind: z.literal('dicom'),
  aet: aetSchema,
  host: hostSchema,
  port: portSchema,
};
const dicomWebFields = {
  kind: z.literal('dicomweb'),
  url: dicomWebUrlSchema,
  credentialsFrom: credentialsFromSchema.optional(),
};

/** A body without `kind` is a DICOM destination, as before DICOMweb ones could be added. */
const dicomByDefault = (body: unknown) =>
  typeof body === 'object' && body !== null && !Array.isArray(body) && !('kind' in body)
    ? { ...body, kind: 'dicom' }
    : body;

/** A DICOM destination's kind is left out again: absent means DICOM in the records and the audit. */
const withoutDicomKind = <T extends { kind: string }>(value: T) => {
  if (value.kind !== 'dicom') return value as Exclude<T, { kind: 'dicom' }>;
  const { kind: _dicom, ...rest } = value;
  return rest as Omit<Extract<T, { kind: 'dicom' }>, 'kind'>;
};

/** POST /api/destinations: a DICOM destination (kind absent or `dicom`) or a DICOMweb one. */
export const newDestinationSchema = z
  .preprocess(
    dicomByDefault,
    z.discriminatedUnion('kind', [
      z.strictObject({ name: destinationNameSchema, ...dicomFields }),
      z.strictObject({ name: destinationNameSchema, ...dicomWebFields }),
    ]),
  )
  .transform(withoutDicomKind);

/** PUT /api/destinations/{name}: the fields, never the name (rename is delete and add: rules refer to names). */
export const destinationEditSchema = z
  .preprocess(
    dicomByDefault,
    z.discriminatedUnion('kind', [z.strictObject(dicomFields), z.strictObject(dicomWebFields)]),
  )
  .transform(withoutDicomKind);

export type NewDestination = z.infer<typeof newDestinationSchema>;
