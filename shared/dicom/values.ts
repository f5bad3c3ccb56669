import type { DicomElement } from 'dcmjs';

/** An element's first value as text: a person name's alphabetic form, a number or string as is, '' otherwise. */
export function firstText(element: DicomElement | undefined): string {
  const value = element?.Value?.[0];
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (typeof value === 'object' && value !== null && 'Alphabetic' in value) {
    const alphabetic = (value as { Alphabetic?: unknown }).Alphabetic;
    return typeof alphabetic === 'string' ? alphabetic : '';
  }
  return '';
}
