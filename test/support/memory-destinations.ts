/**
 * DestinationStore in memory, with the Table adapter's contract (shared/storage/tableDestinations.ts):
 * names compare without regard to case, writes from a stale read are refused, the audit is newest first.
 */
import {
  DestinationConflict,
  type DestinationChange,
  type DestinationStore,
  type StoredDestination,
} from '../../shared/destinations/store';

export function createMemoryDestinationStore(): DestinationStore & { changes: DestinationChange[] } {
  const records = new Map<string, StoredDestination & { version: string }>();
  const changes: DestinationChange[] = [];
  let versions = 0;
  const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
  const copy = (d: StoredDestination) => ({ ...d });
  const current = (expected: StoredDestination) => {
    const found = records.get(expected.name.toLowerCase());
    if (!found) throw new DestinationConflict('missing');
    if (found.version !== expected.version) throw new DestinationConflict('changed');
  };
  return {
    changes,
    async list() {
      await tick();
      return [...records.values()].map(copy).sort((a, b) => a.name.localeCompare(b.name));
    },
    async get(name) {
      await tick();
      const found = records.get(name.toLowerCase());
      return found && copy(found);
    },
    async create(d) {
      await tick();
      if (records.has(d.name.toLowerCase())) throw new DestinationConflict('exists');
      records.set(d.name.toLowerCase(), { ...d, version: String(++versions) });
    },
    async replace(expected, next) {
      await tick();
      current(expected);
      records.set(expected.name.toLowerCase(), { ...next, version: String(++versions) });
    },
    async remove(expected) {
      await tick();
      current(expected);
      records.delete(expected.name.toLowerCase());
    },
    async record(change) {
      await tick();
      changes.unshift(structuredClone(change));
    },
    async audit(limit) {
      await tick();
      return changes.slice(0, limit).map((c) => structuredClone(c));
    },
  };
}
