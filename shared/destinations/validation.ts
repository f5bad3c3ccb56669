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

/** POST /api/destinations. */
export const newDestinationSchema = z.strictObject({
  name: destinationNameSchema,
  aet: aetSchema,
  host: hostSchema,
  port: portSchema,
});

/** PUT /api/destinations/{name}: the fields, never the name (rename is delete and add: rules refer to names). */
export const destinationEditSchema = z.strictObject({
  aet: aetSchema,
  host: hostSchema,
  port: portSchema,
});

export type NewDestination = z.infer<typeof newDestinationSchema>;
