/**
 * One explicit decision for every public element, by allow-list rather than deny-list:
 * 1. the rule's Keep and Remove lists (a rule keeps or drops something on purpose);
 * 2. PS3.15 Table E.1-1 with the rule's options (profile.ts);
 * 3. the safe-attribute list (data/safe-attributes.json: numbers, coded values, pixel/LUT data,
 *    SOP Class UIDs and curated module attributes that carry no identity);
 * 4. otherwise a fallback by VR: PN removed, DA/DT/TM as Retain Longitudinal says, UI remapped
 *    unless registered, every other VR (free text, AE titles, URLs, binary) removed; an element
 *    unknown to the PS3.6 dictionary is removed whatever its VR.
 * Decisions for tags are resolved once per rule into a map, so each element costs one lookup.
 */
import dcmjs from 'dcmjs';
import safeAttributes from './data/safe-attributes.json';
import type { AnonymiseSettings } from './options';
import { profileActionFor, profileRow, type Action } from './profile';

export interface Decision {
  action: Action;
  /** The basis recorded in the de-identification record (see record.ts). */
  basis: string;
}

const SAFE = new Map<string, string>(safeAttributes.attributes.map(([tag, , , cls]) => [tag, cls]));
export const SAFE_ATTRIBUTE_COUNT = SAFE.size;

/** Every public tag of the dictionary; repeating groups (50xx, 60xx, 7Fxx) under their base group. */
const KNOWN_PUBLIC = new Set(
  Object.values(dcmjs.data.DicomMetaDictionary.nameMap).map((e) => e.tag.replace(/[(),]/g, '').toUpperCase()),
);

function repeatingBase(tag: string): string {
  const group = tag.slice(0, 4);
  if (/^(50|60)[0-9A-F]{2}$/.test(group)) return `${group.slice(0, 2)}00${tag.slice(4)}`;
  if (/^7F[0-9A-D][0-9A-F]$/.test(group)) return `7F00${tag.slice(4)}`;
  return tag;
}

export function isKnownPublic(tag: string): boolean {
  return KNOWN_PUBLIC.has(tag) || KNOWN_PUBLIC.has(repeatingBase(tag));
}

const NONE: Decision = { action: 'X', basis: '' };

export function createDecider(settings: AnonymiseSettings, lists: { keep: Set<string>; remove: Set<string> }) {
  const exact = new Map<string, Decision>();
  const fallbacks = new Map<string, Decision>();

  /** The fallback for a public attribute in neither the table nor the safe list. */
  function byVr(vr: string): Decision {
    const basis = `vr:${vr}`;
    switch (vr) {
      case 'SQ':
        return { action: 'K', basis };
      case 'UI':
        return { action: 'U', basis };
      case 'DA':
      case 'DT':
        return {
          action: settings.RetainLongitudinal === 'full' ? 'K' : settings.RetainLongitudinal === 'shifted' ? 'C' : 'X',
          basis,
        };
      case 'TM':
        return { action: settings.RetainLongitudinal === 'none' ? 'X' : 'K', basis };
      default:
        return { action: 'X', basis }; // PN, LO, SH, ST, LT, UT, UC, AE, UR, AS, binary VRs, ...
    }
  }

  return {
    /** The decision for a public element of this VR (private elements are decided by the caller). */
    decide(tag: string, vr: string): Decision {
      const cached = exact.get(tag);
      if (cached) return cached;
      let decision: Decision = NONE;
      if (lists.remove.has(tag)) decision = { action: 'X', basis: 'rule:Remove' };
      else if (lists.keep.has(tag)) decision = { action: 'K', basis: 'rule:Keep' };
      else if (tag.endsWith('0000')) decision = { action: 'X', basis: 'group-length' };
      else {
        const row = profileRow(tag);
        if (row) decision = { action: profileActionFor(row, settings), basis: 'table' };
        else if (SAFE.has(tag) || SAFE.has(repeatingBase(tag))) decision = { action: 'K', basis: 'safe-list' };
      }
      if (decision !== NONE) {
        exact.set(tag, decision);
        return decision;
      }
      if (!isKnownPublic(tag)) return { action: 'X', basis: 'unknown-public' };
      let fallback = fallbacks.get(vr);
      if (!fallback) fallbacks.set(vr, (fallback = byVr(vr)));
      return fallback;
    },
  };
}

export type Decider = ReturnType<typeof createDecider>;
