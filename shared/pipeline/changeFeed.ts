/**
 * The change feed: Orthanc's `/changes` is durable and ordered, unlike Lua callbacks, which are lost
 * when the function app is down or Orthanc restarts. Each run reads from the stored cursor, enqueues
 * an evaluation for every StableStudy/StableSeries, and advances the cursor only after enqueueing,
 * so a crash repeats work (harmless: jobs collapse) rather than losing it.
 * An Orthanc that reports HasExtendedChanges (1.12.5+) is asked for the stable changes only, so a busy
 * archive's NewInstance rows never cross the wire; older ones ignore `type=`, hence the filter here too.
 * Either way `Last` is the cursor to go on from (with `type=`, the last stable change, or Orthanc's last
 * change when none is left).
 */
import type { OrthancClient } from '../orthanc/client';
import type { Cursors } from './ports';
import { QUEUES, type EvaluateMessage } from './messages';
import type { Logger } from '../vocabulary';
import type { QueueSender } from '../storage/queues';
import { forEachLimit } from '../util/concurrency';

export const CHANGE_FEED_CURSOR = 'orthanc-changes';
const STABLE_CHANGES: Record<string, EvaluateMessage['level']> = { StableStudy: 'Study', StableSeries: 'Series' };
const STABLE_TYPES = Object.keys(STABLE_CHANGES);
const MAX_PAGES_PER_RUN = 50;

export interface ChangeFeedDeps {
  orthanc: Pick<OrthancClient, 'changes' | 'lastChange' | 'capabilities'>;
  cursors: Cursors;
  queues: QueueSender;
  log: Logger;
  batchSize: number;
}

export async function pollChangeFeed(deps: ChangeFeedDeps): Promise<{ enqueued: number; cursor: number }> {
  let cursor = (await deps.cursors.get(CHANGE_FEED_CURSOR)) ?? 0;
  let enqueued = 0;
  const types = (await deps.orthanc.capabilities()).extendedChanges ? STABLE_TYPES : undefined;
  for (let page = 0; page < MAX_PAGES_PER_RUN; page += 1) {
    const changes = await deps.orthanc.changes({ since: cursor, limit: deps.batchSize, types });
    const stable = changes.Changes.filter((c) => STABLE_CHANGES[c.ChangeType] !== undefined);
    await forEachLimit(stable, 8, async (change) => {
      const message: EvaluateMessage = {
        level: STABLE_CHANGES[change.ChangeType],
        resourceId: change.ID,
        source: 'changeFeed',
        force: false,
        includeSeries: false,
      };
      await deps.queues.send(QUEUES.evaluate, message);
    });
    enqueued += stable.length;
    if (changes.Changes.length === 0 && changes.Done) {
      const newest = (await deps.orthanc.lastChange()).Last;
      if (newest < cursor) {
        // Orthanc's database was replaced (or reset): its sequence restarted below our cursor.
        deps.log.warn(`Change feed cursor ${cursor} is beyond Orthanc's last change ${newest}; restarting from 0`);
        cursor = 0;
        await deps.cursors.set(CHANGE_FEED_CURSOR, cursor);
        continue;
      }
    }
    // Only forward: a filtered page that found nothing must never send the cursor back (a reset is above).
    if (changes.Last > cursor) {
      cursor = changes.Last;
      await deps.cursors.set(CHANGE_FEED_CURSOR, cursor);
    }
    if (changes.Done) break;
  }
  if (enqueued > 0) deps.log.info(`Change feed: ${enqueued} stable resources enqueued, cursor at ${cursor}`);
  return { enqueued, cursor };
}
