/**
 * The one worker pool (shared/util/concurrency.ts): at most `limit` in flight, results in the items'
 * order, and a failure that stops new work but waits for the running ones before it is rethrown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { forEachLimit, mapLimit } from '../../shared/util/concurrency';

describe('forEachLimit and mapLimit', () => {
  it('keeps at most `limit` in flight and each result at its index', async () => {
    let running = 0;
    let most = 0;
    const results = await mapLimit([30, 5, 20, 1, 10, 2], 3, async (ms, index) => {
      running += 1;
      most = Math.max(most, running);
      await sleep(ms);
      running -= 1;
      return `${index}:${ms}`;
    });
    assert.deepEqual(results, ['0:30', '1:5', '2:20', '3:1', '4:10', '5:2']);
    assert.equal(most, 3);
    assert.deepEqual(await mapLimit([], 4, () => Promise.resolve(1)), []);
  });

  it('stops starting work after a failure and rethrows it once the running ones have settled', async () => {
    const started: number[] = [];
    const settled: number[] = [];
    const failure = new Error('item 1');
    await assert.rejects(
      forEachLimit([0, 1, 2, 3, 4, 5], 2, async (item) => {
        started.push(item);
        if (item === 1) throw failure;
        await sleep(20);
        settled.push(item);
      }),
      (error) => error === failure,
    );
    assert.deepEqual(started, [0, 1], 'nothing starts after the failure');
    assert.deepEqual(settled, [0], 'the running item 0 finished before the rethrow');
  });
});
