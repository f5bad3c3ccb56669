/** AlertClaims in memory, with the Table adapter's contract: a claim younger than the interval refuses the next. */
import type { AlertClaims } from '../../shared/alerts/alerts';

export function createMemoryAlertClaims(): AlertClaims & { sentAt: Map<string, Date> } {
  const sentAt = new Map<string, Date>();
  return {
    sentAt,
    async claim(key, intervalMs, now) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      const last = sentAt.get(key);
      if (last && now.getTime() - last.getTime() < intervalMs) return false;
      sentAt.set(key, now);
      return true;
    },
  };
}
