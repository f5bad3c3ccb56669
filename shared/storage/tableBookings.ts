/**
 * Booking records (shared/worklist/store.ts) in their own Azure Table (`automationbookings`):
 * partition `booking`, row = the booking's key (a hash of its id: ids may hold characters a row
 * key refuses). The day, study identifiers and status are columns too, so listings and the
 * arrival lookup are filters rather than reads of every body.
 */
import { odata, RestError, type TableClient } from '@azure/data-tables';
import type { BookingRecord, BookingStore } from '../worklist/store';
import { byStart } from '../worklist/store';
import { tableClient } from './connection';

const PARTITION = 'booking';
const MAX_UPDATE_ATTEMPTS = 20;

interface BookingEntity {
  partitionKey: string;
  rowKey: string;
  day: string;
  studyInstanceUid: string;
  accessionNumber: string;
  status: string;
  body: string;
}

const statusOf = (error: unknown) =>
  error instanceof RestError ? error.statusCode : (error as { statusCode?: number })?.statusCode;

function entityOf(record: BookingRecord): BookingEntity {
  return {
    partitionKey: PARTITION,
    rowKey: record.key,
    day: record.day,
    studyInstanceUid: record.studyInstanceUid,
    accessionNumber: record.accessionNumber,
    status: record.status,
    body: JSON.stringify(record),
  };
}

async function all(table: TableClient, filter: string): Promise<BookingRecord[]> {
  const out: BookingRecord[] = [];
  for await (const entity of table.listEntities<BookingEntity>({ queryOptions: { filter } }))
    out.push(JSON.parse(entity.body) as BookingRecord);
  return out;
}

export async function createTableBookingStore(
  connectionString: string,
  tableName = 'automationbookings',
): Promise<BookingStore> {
  const table = tableClient(connectionString, tableName);
  try {
    await table.createTable();
  } catch (error) {
    if (statusOf(error) !== 409) throw error;
  }
  const read = async (key: string) => {
    try {
      return await table.getEntity<BookingEntity>(PARTITION, key);
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  };
  return {
    async get(key) {
      const entity = await read(key);
      return entity && (JSON.parse(entity.body) as BookingRecord);
    },
    async put(record) {
      await table.upsertEntity(entityOf(record), 'Replace');
    },
    async update(key, change) {
      for (let attempt = 1; ; attempt++) {
        const entity = await read(key);
        if (!entity) return undefined;
        const record = JSON.parse(entity.body) as BookingRecord;
        change(record);
        try {
          await table.updateEntity(entityOf(record), 'Replace', { etag: entity.etag });
          return record;
        } catch (error) {
          if (statusOf(error) !== 412 || attempt >= MAX_UPDATE_ATTEMPTS) throw error;
        }
      }
    },
    async listDays(fromDay, toDay) {
      const records = await all(table, odata`PartitionKey eq ${PARTITION} and day ge ${fromDay} and day le ${toDay}`);
      return records.sort(byStart);
    },
    async findByStudy({ studyInstanceUid, accessionNumber }) {
      if (studyInstanceUid) {
        const [hit] = await all(table, odata`PartitionKey eq ${PARTITION} and studyInstanceUid eq ${studyInstanceUid}`);
        if (hit) return hit;
      }
      if (accessionNumber) {
        const [hit] = await all(table, odata`PartitionKey eq ${PARTITION} and accessionNumber eq ${accessionNumber}`);
        if (hit) return hit;
      }
      return undefined;
    },
    async purgeBefore(day) {
      let removed = 0;
      for (const record of await all(table, odata`PartitionKey eq ${PARTITION} and day lt ${day}`)) {
        try {
          await table.deleteEntity(PARTITION, record.key);
          removed++;
        } catch (error) {
          if (statusOf(error) !== 404) throw error;
        }
      }
      return removed;
    },
  };
}
