/**
 * createFairShare: never more than its limit at once, freed slots handed to the waiting lanes in
 * turn (so a lane that came later is not starved by one with many pieces queued), a lone lane uses
 * every slot, and a failing piece frees its slot.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFairShare } from '../../shared/util/fair-share';

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A piece of work that ends when `finish` is called, recording when it started. */
function gate(log: string[], name: string) {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return {
    work: async () => {
      log.push(name);
      await done;
      return name;
    },
    finish: () => finish(),
  };
}

describe('createFairShare', () => {
  it('refuses a limit that is not a positive whole number', () => {
    for (const limit of [0, -1, 1.5, Number.NaN]) assert.throws(() => createFairShare(limit), /positive whole limit/);
  });

  it('lets a lone lane use every slot, and no more than the limit', async () => {
    const share = createFairShare(3);
    const lane = share.lane();
    const log: string[] = [];
    const gates = ['a1', 'a2', 'a3', 'a4', 'a5'].map((n) => gate(log, n));
    const runs = gates.map((g) => lane.run(g.work));
    await tick();
    assert.deepEqual(log, ['a1', 'a2', 'a3']);
    assert.equal(share.running, 3);
    gates[0].finish();
    await tick();
    assert.deepEqual(log, ['a1', 'a2', 'a3', 'a4']);
    assert.equal(share.running, 3);
    for (const g of gates) g.finish();
    assert.deepEqual(await Promise.all(runs), ['a1', 'a2', 'a3', 'a4', 'a5']);
    assert.equal(share.running, 0);
  });

  it('hands freed slots to the waiting lanes in turn, a later lane included', async () => {
    const share = createFairShare(2);
    const log: string[] = [];
    const a = share.lane();
    const b = share.lane();
    const c = share.lane();
    const gates = new Map<string, ReturnType<typeof gate>>();
    const runs: Promise<string>[] = [];
    const queue = (lane: typeof a, name: string) => {
      const g = gate(log, name);
      gates.set(name, g);
      runs.push(lane.run(g.work));
    };
    for (let i = 1; i <= 4; i += 1) queue(a, `a${i}`);
    await tick();
    for (let i = 1; i <= 3; i += 1) queue(b, `b${i}`);
    queue(c, 'c1');
    await tick();
    assert.deepEqual(log, ['a1', 'a2'], 'the first lane took both slots while it was alone');
    // Each freed slot goes to the next lane that waits: a, b, c, then round again.
    for (const name of ['a1', 'a2', 'a3', 'b1', 'c1', 'a4', 'b2', 'b3']) {
      gates.get(name)!.finish();
      await tick();
    }
    assert.deepEqual(log, ['a1', 'a2', 'a3', 'b1', 'c1', 'a4', 'b2', 'b3']);
    await Promise.all(runs);
    assert.equal(share.running, 0);
  });

  it('frees the slot of a piece that fails and passes its error on', async () => {
    const share = createFairShare(1);
    const lane = share.lane();
    await assert.rejects(
      lane.run(async () => {
        throw new Error('cut');
      }),
      /cut/,
    );
    assert.equal(share.running, 0);
    assert.equal(await share.lane().run(async () => 'next'), 'next');
  });
});
