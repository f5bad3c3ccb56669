/** Cursors in Azure Table storage: the `cursor` partition, row = cursor name, its value and when it was set. */
import type { Cursors } from '../pipeline/ports';
import { CURSOR_PARTITION, getEntityIfAny, type JobTable } from './table';

export function createTableCursors({ table }: JobTable): Cursors {
  return {
    async get(name) {
      const entity = await getEntityIfAny<{ value: number }>(table, CURSOR_PARTITION, name);
      return entity && Number(entity.value);
    },

    async set(name, value) {
      await table.upsertEntity(
        { partitionKey: CURSOR_PARTITION, rowKey: name, value, updatedAt: new Date().toISOString() },
        'Replace',
      );
    },
  };
}
