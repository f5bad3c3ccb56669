/**
 * The walk over one dataset: every element at every depth meets one decision (the rule's own
 * Keep/Remove/Replace, identity, character set, else decisions.ts) and its action is applied to
 * dcmjs's raw, tag-keyed dictionary. Pixel data is never touched.
 */
import dcmjs, { type DicomDataset, type DicomElement } from 'dcmjs';
import type { AnonymiseSettings } from './options';
import { isPrivate, type Action } from './profile';
import type { Decider, Decision } from './decisions';
import { PIXEL_DATA } from './write';
import type { Counts, Outcome } from './record';
import { clean } from './identifiers';
import { outgoingUids, type UidReport } from './uids';
import { dummyValue, firstText, shiftDate } from './values';

const { DicomMetaDictionary } = dcmjs.data;

const PATIENT_ID = '00100020';
const PATIENT_NAME = '00100010';
const SPECIFIC_CHARACTER_SET = '00080005';

/** What a rule's Anonymise settings compile to, once per rule. */
export interface WalkPolicy {
  secret: string;
  settings: AnonymiseSettings;
  keep: Set<string>;
  remove: Set<string>;
  replace: Map<string, string>;
  decider: Decider;
  safePrivate: Array<{ creator: string; group: string; element: string }>;
}

const KEYWORDS = new Map(
  Object.values(DicomMetaDictionary.nameMap).map((e) => [e.tag.replace(/[(),]/g, '').toUpperCase(), e.name]),
);

/** Free-text VRs emptied under Clean Descriptors (see applyAction). */
const FREE_TEXT_VRS = new Set(['ST', 'LT', 'UT']);

export function text(element: DicomElement | undefined): string | undefined {
  const v = element?.Value?.[0];
  return v === undefined || v === null ? undefined : firstText(element);
}

function set(element: DicomElement, value: unknown[]): void {
  element.Value = value;
  delete element._rawValue;
}

function isSafePrivate(policy: WalkPolicy, tag: string, creators: Map<string, string>): boolean {
  if (!policy.settings.RetainSafePrivate) return false;
  const group = tag.slice(0, 4);
  const elementLow = parseInt(tag.slice(4), 16);
  if (elementLow < 0x1000) return false; // creators are kept with the first element they reserve
  const block = (elementLow >> 8).toString(16).toUpperCase().padStart(2, '0');
  const creator = creators.get(`${group}00${block}`);
  return policy.safePrivate.some(
    (s) => s.group === group && s.element === tag.slice(6).toUpperCase() && s.creator === creator,
  );
}

/** One instance's walk: its patient's values and what was decided, counted. */
export interface WalkContext extends UidReport {
  shiftDays: number;
  identifiers: string[];
  pseudonym: string;
  counts: Counts;
  fallbacks: Record<string, number>;
}

export function tally(context: WalkContext, basis: string, outcome: Outcome, n = 1): void {
  const outcomes = (context.counts[basis] ??= {});
  outcomes[outcome] = (outcomes[outcome] ?? 0) + n;
}

/** Decides every element of `dataset` and, through kept sequences, of every item below it. */
export function walkDataset(policy: WalkPolicy, dataset: DicomDataset, context: WalkContext): void {
  const creators = new Map<string, string>();
  for (const [tag, element] of Object.entries(dataset)) {
    const upper = tag.toUpperCase();
    if (isPrivate(upper) && parseInt(upper.slice(4), 16) >= 0x10 && parseInt(upper.slice(4), 16) <= 0xff)
      creators.set(upper, text(element) ?? '');
  }
  const keptBlocks = new Set<string>();
  for (const tag of Object.keys(dataset)) {
    const upper = tag.toUpperCase();
    const element = dataset[tag];
    if (upper === PIXEL_DATA) {
      tally(context, 'safe-list', 'kept');
      continue;
    }
    if (isPrivate(upper)) {
      const low = parseInt(upper.slice(4), 16);
      if (low >= 0x10 && low <= 0xff) continue; // decided after the elements of its block
      const kept = policy.keep.has(upper)
        ? 'rule:Keep'
        : isSafePrivate(policy, upper, creators)
          ? 'private:safe'
          : undefined;
      if (kept) {
        keptBlocks.add(`${upper.slice(0, 4)}00${upper.slice(4, 6)}`);
        if (element.vr === 'UI') {
          // Kept as the rule says, but still a valid UID when written.
          const { before, after } = outgoingUids(policy.secret, element, upper, context, false);
          if (after.some((v, i) => v !== before[i]) || context.malformed.has(upper)) set(element, after);
        }
        tally(context, kept, 'kept');
        if (element.vr === 'SQ')
          for (const item of (element.Value ?? []) as DicomDataset[]) walkDataset(policy, item, context);
      } else {
        delete dataset[tag];
        tally(context, 'private', 'removed');
      }
      continue;
    }
    if (policy.remove.has(upper)) {
      delete dataset[tag];
      tally(context, 'rule:Remove', 'removed');
      continue;
    }
    if (policy.replace.has(upper)) {
      set(element, [element.vr === 'PN' ? { Alphabetic: policy.replace.get(upper)! } : policy.replace.get(upper)!]);
      tally(context, 'rule:Replace', 'replaced');
      continue;
    }
    if (upper === PATIENT_ID || upper === PATIENT_NAME) {
      set(element, [upper === PATIENT_ID ? context.pseudonym : { Alphabetic: context.pseudonym }]);
      tally(context, 'identity', 'replaced');
      continue;
    }
    if (upper === SPECIFIC_CHARACTER_SET) {
      // Every string is written as UTF-8 (the top level's is set again in record()).
      set(element, ['ISO_IR 192']);
      tally(context, 'charset', 'replaced');
      continue;
    }
    let decision = policy.decider.decide(upper, element.vr);
    // A UN value is opaque bytes (or, inside a UN-encoded sequence that dcmjs parsed as explicit
    // VR, garbage): nothing can be remapped or vetted in it, so only actions that drop the value
    // stand, and a rule's Keep.
    if (
      element.vr === 'UN' &&
      decision.basis !== 'rule:Keep' &&
      (decision.action === 'K' || decision.action === 'U' || decision.action === 'C')
    )
      decision = { action: 'X', basis: 'vr:UN' };
    // Sequences that fall back are kept (their items are decided one by one): not worth a review.
    if ((decision.basis.startsWith('vr:') && decision.basis !== 'vr:SQ') || decision.basis === 'unknown-public') {
      const where = `(${upper.slice(0, 4)},${upper.slice(4)}) ${KEYWORDS.get(upper) ?? 'unknown'}`;
      context.fallbacks[where] = (context.fallbacks[where] ?? 0) + 1;
    }
    applyAction(policy, dataset, tag, element, decision, context);
  }
  for (const creator of creators.keys()) {
    if (keptBlocks.has(creator)) {
      tally(context, 'private:creator', 'kept');
    } else {
      delete dataset[Object.keys(dataset).find((t) => t.toUpperCase() === creator)!];
      tally(context, 'private:creator', 'removed');
    }
  }
}

function applyAction(
  policy: WalkPolicy,
  dataset: DicomDataset,
  tag: string,
  element: DicomElement,
  decision: Decision,
  context: WalkContext,
): void {
  const { basis } = decision;
  const action: Action = decision.action;
  const upper = tag.toUpperCase();
  switch (action) {
    case 'X':
      delete dataset[tag];
      tally(context, basis, 'removed');
      return;
    case 'Z':
      set(element, []);
      tally(context, basis, 'emptied');
      return;
    case 'D':
      set(element, dummyValue(element.vr, policy.secret));
      tally(context, basis, element.vr === 'SQ' ? 'emptied' : 'dummied');
      return;
    case 'U': {
      if (element.vr === 'SQ') break;
      if ((element.Value ?? []).some((v) => typeof v !== 'string')) {
        // Not text (a UI read as bytes): it cannot be remapped, so it goes.
        delete dataset[tag];
        tally(context, basis, 'removed');
        return;
      }
      const { before, after } = outgoingUids(policy.secret, element, upper, context, true);
      set(element, after);
      tally(context, basis, after.some((v, i) => v !== before[i]) ? 'remapped' : 'kept');
      return;
    }
    case 'C':
      // Dates under Retain Longitudinal with Modified Dates move by the patient's offset; times stay.
      if (element.vr === 'DA' || element.vr === 'DT') {
        const shifted = policy.settings.RetainLongitudinal === 'shifted';
        set(
          element,
          shifted
            ? (element.Value ?? []).map((v) => (typeof v === 'string' ? shiftDate(v, context.shiftDays) : v))
            : [],
        );
        tally(context, basis, shifted ? 'shifted' : 'emptied');
        return;
      }
      if (element.vr === 'SQ') break;
      if (element.vr === 'TM') {
        tally(context, basis, 'kept');
        return;
      }
      // Narrative text (comments, histories, notes) cannot be cleaned reliably: it is emptied.
      if (FREE_TEXT_VRS.has(element.vr)) {
        set(element, []);
        tally(context, basis, 'emptied');
        return;
      }
      // Short descriptors (protocol, series, study descriptions) are kept with this patient's own
      // identifiers (name parts, IDs, accession, birth date) cut out.
      set(
        element,
        (element.Value ?? []).map((v) =>
          typeof v === 'string'
            ? clean(v, context.identifiers)
            : typeof v === 'object' && v && 'Alphabetic' in v
              ? { Alphabetic: clean(String((v as { Alphabetic: string }).Alphabetic), context.identifiers) }
              : v,
        ),
      );
      tally(context, basis, 'cleaned');
      return;
    case 'K':
      if (element.vr === 'UI') {
        // Kept UIDs (SOP classes, a rule's Keep) must still be valid UIDs.
        const { before, after } = outgoingUids(policy.secret, element, upper, context, false);
        if (after.some((v, i) => v !== before[i]) || context.malformed.has(upper)) {
          set(element, after);
          tally(context, basis, 'remapped');
          return;
        }
      }
      break;
  }
  tally(context, basis, 'kept');
  if (element.vr === 'SQ')
    for (const item of (element.Value ?? []) as DicomDataset[]) walkDataset(policy, item, context);
}
