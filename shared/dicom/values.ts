import type { DicomElement } from 'dcmjs';
import { anonymisedUid } from './pseudonyms';

/** An element's first value as text (see valueText). */
export function firstText(element: DicomElement | undefined): string {
  return valueText(element?.Value?.[0]);
}

/** One DICOM value as text: a person name's alphabetic form, a number or string as is, '' otherwise. */
export function valueText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'object' && value !== null && 'Alphabetic' in value) {
    const alphabetic = (value as { Alphabetic?: unknown }).Alphabetic;
    return typeof alphabetic === 'string' ? alphabetic : '';
  }
  return '';
}

/** Non-zero-length dummies (action D) that carry no information. */
export function dummyValue(vr: string, secret: string): unknown[] {
  switch (vr) {
    case 'DA':
      return ['19000101'];
    case 'TM':
      return ['000000'];
    case 'DT':
      return ['19000101000000'];
    case 'AS':
      return ['000Y'];
    case 'DS':
    case 'IS':
      return ['0'];
    case 'UI':
      return [anonymisedUid(secret, 'dummy')];
    case 'PN':
      return [{ Alphabetic: 'ANONYMIZED' }];
    case 'US':
    case 'SS':
    case 'UL':
    case 'SL':
    case 'FL':
    case 'FD':
    case 'UV':
    case 'SV':
      return [0];
    case 'SQ':
    case 'OB':
    case 'OW':
    case 'OF':
    case 'OD':
    case 'OL':
    case 'OV':
    case 'UN':
      return [];
    default:
      return ['ANONYMIZED'];
  }
}

/** A DA or DT value moved back by `days` (Retain Longitudinal, Modified Dates); '' when it is not a full date. */
export function shiftDate(value: string, days: number): string {
  const match = /^(\d{4})(\d{2})(\d{2})(.*)$/.exec(value.trim());
  // A value that is not a full date (a year-only DT, an old "2024-01-31") cannot be shifted: emptied.
  if (!match) return '';
  const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3])) - days * 86_400_000);
  const out = `${date.getUTCFullYear().toString().padStart(4, '0')}${String(date.getUTCMonth() + 1).padStart(2, '0')}${String(date.getUTCDate()).padStart(2, '0')}`;
  return `${out}${match[4]}`;
}
