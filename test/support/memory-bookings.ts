/** Booking records in memory, for unit tests of the sync and the arrival link (the port of shared/worklist/store.ts). */
import type { BookingRecord, BookingStore } from '../../shared/worklist/store';
import { byStart } from '../../shared/worklist/store';

export interface MemoryBookingStore extends BookingStore {
  all(): BookingRecord[];
}

export function createMemoryBookingStore(): MemoryBookingStore {
  // Stored as JSON, as the table does, so callers never share objects with the store.
  const rows = new Map<string, string>();
  const read = (key: string) => {
    const body = rows.get(key);
    return body === undefined ? undefined : (JSON.parse(body) as BookingRecord);
  };
  const every = () => [...rows.keys()].map((k) => read(k)!);
  return {
    all: () => every().sort(byStart),
    get: async (key) => read(key),
    async put(record) {
      rows.set(record.key, JSON.stringify(record));
    },
    async update(key, change) {
      const record = read(key);
      if (!record) return undefined;
      change(record);
      rows.set(key, JSON.stringify(record));
      return record;
    },
    listDays: async (fromDay, toDay) =>
      every()
        .filter((r) => r.day >= fromDay && r.day <= toDay)
        .sort(byStart),
    async findByStudy({ studyInstanceUid, accessionNumber }) {
      return (
        (studyInstanceUid ? every().find((r) => r.studyInstanceUid === studyInstanceUid) : undefined) ??
        (accessionNumber ? every().find((r) => r.accessionNumber === accessionNumber) : undefined)
      );
    },
    async purgeBefore(day) {
      const old = every().filter((r) => r.day < day);
      for (const r of old) rows.delete(r.key);
      return old.length;
    },
  };
}
