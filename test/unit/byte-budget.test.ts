/**
 * createByteBudget: grants up to its limit, in the order asked, lets a request larger than the
 * whole limit run alone rather than never, and counts a release once however often it is called.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createByteBudget } from '../../shared/util/byte-budget';

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('createByteBudget', () => {
  it('grants what fits, then waits for releases, first come first served', async () => {
    const budget = createByteBudget(100);
    const order: string[] = [];
    const a = await budget.acquire(60);
    const b = await budget.acquire(40);
    assert.equal(budget.inFlight, 100);
    const c = budget.acquire(50).then((release) => (order.push('c'), release));
    const d = budget.acquire(10).then((release) => (order.push('d'), release));
    await tick();
    assert.deepEqual(order, [], 'nothing fits beside 100 bytes in flight');
    a();
    await tick();
    assert.deepEqual(order, ['c', 'd'], 'c first (it came first), then d beside it');
    b();
    (await c)();
    (await d)();
    assert.equal(budget.inFlight, 0);
  });

  it('runs a request larger than the limit alone, and a release counts once', async () => {
    const budget = createByteBudget(100);
    const small = await budget.acquire(10);
    let bigGranted = false;
    const big = budget.acquire(1000).then((release) => ((bigGranted = true), release));
    const after = budget.acquire(1);
    await tick();
    assert.equal(bigGranted, false, 'waits for the small one');
    small();
    small();
    const releaseBig = await big;
    assert.equal(budget.inFlight, 1000);
    let afterGranted = false;
    void after.then(() => (afterGranted = true));
    await tick();
    assert.equal(afterGranted, false, 'nothing runs beside the one above the limit');
    releaseBig();
    (await after)();
    assert.equal(budget.inFlight, 0);
    assert.throws(() => createByteBudget(0), /positive limit/);
  });
});
