/** How a de-identified instance says what was done to it (PS3.15 E.1-1, CID 7050 codes). */
import type { DicomDataset } from 'dcmjs';
import type { AnonymiseSettings } from './options';
import { TABLE_EDITION } from './profile';
import { SAFE_ATTRIBUTE_COUNT } from './decisions';

/** Where the de-identification came from, in every output file and record. */
export const PROFILE = { table: `PS3.15 ${TABLE_EDITION} Table E.1-1`, safeAttributes: SAFE_ATTRIBUTE_COUNT };

/** CID 7050 De-identification Method codes (PS3.16). */
const METHOD_CODES: Array<[string, string, (o: AnonymiseSettings) => boolean]> = [
  ['113100', 'Basic Application Confidentiality Profile', () => true],
  ['113105', 'Clean Descriptors Option', (o) => o.CleanDescriptors],
  ['113106', 'Retain Longitudinal Temporal Information Full Dates Option', (o) => o.RetainLongitudinal === 'full'],
  [
    '113107',
    'Retain Longitudinal Temporal Information Modified Dates Option',
    (o) => o.RetainLongitudinal === 'shifted',
  ],
  ['113108', 'Retain Patient Characteristics Option', (o) => o.RetainPatientCharacteristics],
  ['113109', 'Retain Device Identity Option', (o) => o.RetainDeviceIdentity],
  ['113111', 'Retain Safe Private Option', (o) => o.RetainSafePrivate],
  ['113112', 'Retain Institution Identity Option', (o) => o.RetainInstitutionIdentity],
];

/** PatientIdentityRemoved, the method (text and codes), the temporal option and UTF-8, at the top level. */
export function markDeidentified(dataset: DicomDataset, settings: AnonymiseSettings): void {
  const codes = METHOD_CODES.filter(([, , applies]) => applies(settings));
  dataset['00120062'] = { vr: 'CS', Value: ['YES'] };
  // LO is limited to 64 characters a value, so the method is told in three values.
  dataset['00120063'] = {
    vr: 'LO',
    Value: [
      `autorthanc-functions PS3.15 E.1-1 ${codes.map(([code]) => code).join(' ')}`.slice(0, 64),
      PROFILE.table,
      `allow-list: safe-attributes v1 (${SAFE_ATTRIBUTE_COUNT})`,
    ],
  };
  dataset['00120064'] = {
    vr: 'SQ',
    Value: codes.map(([code, meaning]) => ({
      '00080100': { vr: 'SH', Value: [code] },
      '00080102': { vr: 'SH', Value: ['DCM'] },
      '00080104': { vr: 'LO', Value: [meaning] },
    })),
  };
  dataset['00280303'] = {
    vr: 'CS',
    Value: [
      settings.RetainLongitudinal === 'full'
        ? 'UNMODIFIED'
        : settings.RetainLongitudinal === 'shifted'
          ? 'MODIFIED'
          : 'REMOVED',
    ],
  };
  // dcmjs writes every string as UTF-8: declare it, whatever the input said.
  dataset['00080005'] = { vr: 'CS', Value: ['ISO_IR 192'] };
}
