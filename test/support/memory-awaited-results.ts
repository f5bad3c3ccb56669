/** AwaitedResults in memory, with the Table adapter's contract: insert-if-absent, copies out, oldest first. */
import type { AwaitedEntry, AwaitedResults } from '../../shared/pipeline/ports';
import { studyKey } from '../../shared/pipeline/roundTrip';

export function createMemoryAwaitedResults(): AwaitedResults & { entries: Map<string, AwaitedEntry> } {
  const entries = new Map<string, AwaitedEntry>();
  const key = (e: Pick<AwaitedEntry, 'studyKey' | 'jobId'>) => `${e.studyKey}-${e.jobId}`;
  const sorted = (list: AwaitedEntry[]) =>
    list.map((e) => ({ ...e })).sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  return {
    entries,
    async expect({ jobId, studyInstanceUid, from, withinSeconds, createdAt }) {
      const entry = { jobId, studyKey: studyKey(studyInstanceUid), from, withinSeconds, createdAt };
      if (!entries.has(key(entry))) entries.set(key(entry), entry);
    },
    async forStudy(uid) {
      return sorted([...entries.values()].filter((e) => e.studyKey === studyKey(uid)));
    },
    async open() {
      return sorted([...entries.values()].filter((e) => !e.linkedAt));
    },
    async markLinked(entry, at) {
      const stored = entries.get(key(entry));
      if (stored) stored.linkedAt = at;
    },
    async remove(entry) {
      entries.delete(key(entry));
    },
  };
}
