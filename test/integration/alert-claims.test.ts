/**
 * The alerts' rate limit in real Table storage (Azurite): claims are insert-if-absent or
 * replace-if-unchanged, so of several instances raising one alert at once exactly one sends it, and
 * it goes out again only once the interval has passed. The memory claims of the unit tests keep this contract.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AlertClaims } from '../../shared/alerts/alerts';
import { openTableStorage } from '../../shared/storage/tableStorage';
import { createMemoryAlertClaims } from '../support/memory-alert-claims';
import { startAzurite, type AzuriteServer } from '../support/azurite';

let azurite: AzuriteServer;
before(async () => {
  azurite = await startAzurite();
});
after(async () => azurite?.stop());

function contract(name: string, make: () => Promise<AlertClaims[]>) {
  describe(`alert claims: ${name}`, () => {
    it('one of several concurrent claims wins; the next after the interval wins again', async () => {
      const instances = await make();
      const t0 = new Date('2026-03-02T10:00:00.000Z');
      const first = await Promise.all([...instances, ...instances].map((c) => c.claim('job-failed-abc', 60_000, t0)));
      assert.equal(first.filter(Boolean).length, 1, JSON.stringify(first));
      assert.equal(await instances[0].claim('job-failed-abc', 60_000, new Date(t0.getTime() + 59_000)), false);
      assert.equal(await instances[1].claim('job-failed-other', 60_000, t0), true, 'another subject is its own');
      const later = new Date(t0.getTime() + 60_000);
      const again = await Promise.all(instances.map((c) => c.claim('job-failed-abc', 60_000, later)));
      assert.equal(again.filter(Boolean).length, 1, JSON.stringify(again));
    });
  });
}

contract('Table storage (Azurite), three instances', async () => {
  const table = `alertclaims${Date.now()}`;
  return Promise.all([0, 1, 2].map(async () => (await openTableStorage(azurite.connectionString, table)).alertClaims));
});

contract('memory', async () => {
  const claims = createMemoryAlertClaims();
  return [claims, claims, claims];
});
