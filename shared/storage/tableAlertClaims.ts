/**
 * Alert claims in Azure Table storage: the `alert` partition of the job table, row = alert key, the
 * time it was last sent. Claiming is insert-if-absent or replace-if-unchanged (ETag), so of several
 * instances raising the same alert at once exactly one sends it.
 */
import type { AlertClaims } from '../alerts/alerts';
import { getEntityIfAny, isStatus, type JobTable } from './table';

export const ALERT_PARTITION = 'alert';

export function createTableAlertClaims({ table }: Pick<JobTable, 'table'>): AlertClaims {
  return {
    async claim(key, intervalMs, now) {
      const entity = { partitionKey: ALERT_PARTITION, rowKey: key, sentAt: now.toISOString() };
      const existing = await getEntityIfAny<{ sentAt: string }>(table, ALERT_PARTITION, key);
      try {
        if (!existing) {
          await table.createEntity(entity);
          return true;
        }
        if (now.getTime() - Date.parse(existing.sentAt) < intervalMs) return false;
        await table.updateEntity(entity, 'Replace', { etag: existing.etag });
        return true;
      } catch (error) {
        // Another instance claimed it between the read and the write.
        if (isStatus(error, 409) || isStatus(error, 412)) return false;
        throw error;
      }
    },
  };
}
