/**
 * The de-identification record: how many elements each basis of decision removed, emptied, dummied,
 * remapped, replaced, cleaned, shifted or kept, and every warning. It holds tags, counts and
 * pseudonymous file names only, never an original value, so it can go on the job, the dashboard and
 * into the zip (DEIDENTIFICATION.json) as it is.
 */
export const OUTCOMES = [
  'removed',
  'emptied',
  'dummied',
  'remapped',
  'replaced',
  'cleaned',
  'shifted',
  'kept',
] as const;
export type Outcome = (typeof OUTCOMES)[number];

/**
 * Why an element got its outcome: `table` (PS3.15 Table E.1-1 with the rule's options),
 * `safe-list` (data/safe-attributes.json), `rule:Keep|Remove|Replace`, `identity` (PatientID and
 * PatientName pseudonyms), `vr:<VR>` (fallback for public attributes in neither list),
 * `unknown-public`, `private`, `private:safe`, `group-length`, `file-meta`, `charset`, `method`
 * (the attributes that record what was done).
 */
export type Counts = Record<string, Partial<Record<Outcome, number>>>;

export interface DeidentificationRecord {
  format: 'autorthanc-functions/deidentification@1';
  /** Edition of Table E.1-1 and version of the safe-attribute list the decisions came from. */
  profile: { table: string; safeAttributes: number };
  instances: number;
  excluded: number;
  counts: Counts;
  /** Elements, by `(gggg,eeee) Keyword`, that fell back by VR or were unknown: what to review first. */
  fallbacks: Record<string, number>;
  /** Instances per original Specific Character Set that was decoded here and written as UTF-8. */
  characterSets: Record<string, number>;
  warnings: string[];
}

export function emptyRecord(profile: DeidentificationRecord['profile']): DeidentificationRecord {
  return {
    format: 'autorthanc-functions/deidentification@1',
    profile,
    instances: 0,
    excluded: 0,
    counts: {},
    fallbacks: {},
    characterSets: {},
    warnings: [],
  };
}

/** Adds `from` (one instance's, or another record's) into `into`. */
export function mergeRecord(
  into: DeidentificationRecord,
  from: Pick<DeidentificationRecord, 'counts' | 'fallbacks' | 'characterSets' | 'warnings'> &
    Partial<Pick<DeidentificationRecord, 'instances' | 'excluded'>>,
): DeidentificationRecord {
  for (const [basis, outcomes] of Object.entries(from.counts)) {
    const target = (into.counts[basis] ??= {});
    for (const [outcome, n] of Object.entries(outcomes) as Array<[Outcome, number]>)
      target[outcome] = (target[outcome] ?? 0) + n;
  }
  for (const [where, n] of Object.entries(from.fallbacks)) into.fallbacks[where] = (into.fallbacks[where] ?? 0) + n;
  for (const [charset, n] of Object.entries(from.characterSets))
    into.characterSets[charset] = (into.characterSets[charset] ?? 0) + n;
  into.warnings.push(...from.warnings);
  into.instances += from.instances ?? 0;
  into.excluded += from.excluded ?? 0;
  return into;
}

/** Totals per outcome over all bases (the dashboard's one-line summary). */
export function outcomeTotals(counts: Counts): Partial<Record<Outcome, number>> {
  const totals: Partial<Record<Outcome, number>> = {};
  for (const outcomes of Object.values(counts)) {
    for (const [outcome, n] of Object.entries(outcomes) as Array<[Outcome, number]>)
      totals[outcome] = (totals[outcome] ?? 0) + n;
  }
  return totals;
}

/** Most fallback tags kept on the job record (which Table storage caps at 64 KiB). */
const FALLBACKS_ON_JOB = 50;

/**
 * The record as it goes on the job: counts and character sets whole, the most frequent fallback
 * tags only, and the number of warnings (the warnings themselves are the job's own).
 */
export function jobRecord(
  record: DeidentificationRecord,
): Omit<DeidentificationRecord, 'warnings'> & { warnings: number; fallbacksOmitted?: number } {
  const fallbacks = Object.entries(record.fallbacks).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const out: Omit<DeidentificationRecord, 'warnings'> & { warnings: number; fallbacksOmitted?: number } = {
    ...record,
    fallbacks: Object.fromEntries(fallbacks.slice(0, FALLBACKS_ON_JOB)),
    warnings: record.warnings.length,
  };
  if (fallbacks.length > FALLBACKS_ON_JOB) out.fallbacksOmitted = fallbacks.length - FALLBACKS_ON_JOB;
  return out;
}
