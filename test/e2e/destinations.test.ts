/**
 * Destinations from the dashboard against the real stack (Orthanc, Azurite, the devhost with keys
 * enforced) and real storescp nodes, in headless Chromium: an operator adds a destination, echoes it
 * (the round trip is shown), moves it to another port and echoes it there, and deletes it; Orthanc's
 * /modalities follows every step, with echo and store only. The environment's destinations (seed 003's
 * MODALITY_<NAME> and a DICOMWEB_<NAME>) are listed as such and refuse changes. Every change is in
 * the audit with who made it; a stored destination survives a restart of the app and is put back into
 * an Orthanc that lost it.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import type { DestinationChange } from '../../shared/destinations/store';
import type { ListedDestination } from '../../shared/destinations/catalog';
import { startStorescp, type Storescp } from '../support/dcmtk';
import { startSlowProxy, type SlowProxy } from '../support/slow-proxy';
import { waitFor } from '../support/process';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

describe('destinations from the dashboard', { timeout: 300_000 }, () => {
  let stack: Stack;
  let pacs: Storescp;
  let first: Storescp;
  let second: Storescp;
  /** The second node again, behind a link that takes 1.2 s to connect: its echo is slow. */
  let slowLink: SlowProxy;

  const call = async (
    method: string,
    route: string,
    body?: unknown,
    headers: Record<string, string | null> = {},
  ): Promise<{ status: number; body: Record<string, unknown> }> => {
    const sent: Record<string, string> = { 'x-functions-key': stack.functionKey };
    if (body !== undefined) sent['Content-Type'] = 'application/json';
    for (const [name, value] of Object.entries(headers))
      if (value === null) delete sent[name];
      else sent[name] = value;
    const response = await fetch(`${stack.host.url}/api/${route}`, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  };
  const listed = async () =>
    (await call('GET', 'destinations')).body as { destinations: ListedDestination[]; audit: DestinationChange[] };
  const orthancModality = async (name: string) => (await stack.client.modalities())[name];

  before(async () => {
    pacs = await startStorescp({ aet: 'PACS' });
    // One AI node that moves: the same AE title on two ports, the first stopped once it has moved.
    first = await startStorescp({ aet: 'AINODE' });
    second = await startStorescp({ aet: 'AINODE' });
    slowLink = await startSlowProxy({ host: '127.0.0.1', port: second.port }, 1200);
    stack = await startStack({
      enforceAuth: true,
      env: {
        MODALITY_PACS: `PACS|127.0.0.1|${pacs.port}`,
        DICOMWEB_CLOUD: 'http://127.0.0.1:9/dicom-web',
      },
    });
  });
  after(async () => {
    await stack?.stop();
    await slowLink?.stop();
    for (const node of [pacs, first, second]) await node?.stop();
  });

  it('lists the environment`s destinations as read-only and refuses changes to them', async () => {
    assert.equal((await call('GET', 'destinations', undefined, { 'x-functions-key': null })).status, 401);
    const { destinations, audit } = await listed();
    assert.deepEqual(
      destinations.map((d) => [d.name, d.kind, d.source, d.readOnly]),
      [
        ['CLOUD', 'dicomweb', 'env', true],
        ['PACS', 'dicom', 'env', true],
      ],
    );
    assert.deepEqual(audit, []);
    const edit = await call('PUT', 'destinations/PACS', { aet: 'PACS', host: '127.0.0.1', port: 1 });
    assert.equal(edit.status, 409);
    assert.match(String(edit.body.error), /comes from the environment .* read-only here/);
    assert.equal((await call('DELETE', 'destinations/CLOUD', {})).status, 409);
    const shadow = await call('POST', 'destinations', { name: 'pacs', aet: 'X', host: '127.0.0.1', port: 1 });
    assert.equal(shadow.status, 409);
    assert.equal((await orthancModality('PACS'))?.Port, pacs.port, 'Orthanc keeps the environment`s destination');
  });

  it('refuses a bad destination with a reason per field, and a form post', async () => {
    const bad = await call('POST', 'destinations', { name: 'a/b', aet: 'A\\B', host: 'http://x', port: 0 });
    assert.equal(bad.status, 400);
    for (const field of ['name', 'aet', 'host', 'port']) assert.match(String(bad.body.error), new RegExp(`${field}: `));
    const form = await fetch(`${stack.host.url}/api/destinations`, {
      method: 'POST',
      headers: { 'x-functions-key': stack.functionKey, 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'name=AI&aet=AINODE&host=127.0.0.1&port=104',
    });
    assert.equal(form.status, 415);
    assert.equal((await call('PUT', 'destinations/..%2Fx', { aet: 'A', host: 'h', port: 1 })).status, 400);
    assert.equal((await call('DELETE', 'destinations/NOPE', {})).status, 404);
    assert.deepEqual((await listed()).audit, [], 'nothing refused is audited');
  });

  describe('in headless Chromium', () => {
    let browser: Browser;
    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      browser = await launchChromium();
    });
    after(async () => {
      await browser?.close();
    });

    it('adds, echoes, edits and deletes a destination; Orthanc follows each step', async () => {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') problems.push(m.text());
      });
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.accept();
      });
      await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
      const row = (name: string) => `#destinations-list tr[data-destination="${name}"]`;
      await page.waitForSelector(`${row('PACS')}[data-source="env"]`, { timeout: 20_000 });
      assert.equal(await page.locator(`${row('PACS')} [data-edit], ${row('PACS')} [data-delete]`).count(), 0);
      assert.equal(await page.locator(`${row('PACS')} [data-echo]`).count(), 1, 'an env destination can be echoed');
      assert.equal(await page.locator(`${row('CLOUD')}[data-source="env"]`).count(), 1);

      // Add.
      await page.fill('#d-name', 'AI');
      await page.fill('#d-aet', 'AINODE');
      await page.fill('#d-host', '127.0.0.1');
      await page.fill('#d-port', String(first.port));
      await page.click('#d-save');
      await page.waitForSelector(`${row('AI')}[data-source="dashboard"]`);
      assert.match((await page.textContent('#d-message')) ?? '', /AI added; in Orthanc, C-ECHO ok/);
      const added = await orthancModality('AI');
      assert.deepEqual(
        [
          added?.AET,
          added?.Host,
          added?.Port,
          added?.AllowEcho,
          added?.AllowStore,
          added?.AllowFind,
          added?.AllowGet,
          added?.AllowMove,
        ],
        ['AINODE', '127.0.0.1', first.port, true, true, false, false, false],
        'Orthanc has it with echo and store only',
      );

      // Echo against the real storescp: the round trip in ms.
      // The row first shows the echo made when it was added ("echo ok"); the button's answer has the time.
      const timedEcho = page.locator(`${row('AI')} td.echo .badge.ok`, { hasText: /^ok \d+ ms$/ });
      await page.click(`${row('AI')} [data-echo]`);
      await timedEcho.waitFor();
      const firstEcho = (await timedEcho.textContent()) ?? '';
      const ms = Number(/\d+/.exec(firstEcho)![0]);
      assert.ok(ms >= 0 && ms < 1000, `a loopback echo is fast (${ms} ms)`);
      assert.equal(await page.locator(`${row('AI')} td.echo .badge.slow`).count(), 0, 'no slow badge under 1 s');

      // Edit: the node moved to another port; the old one is stopped, so only the new port can answer.
      await page.click(`${row('AI')} [data-edit]`);
      assert.equal(await page.inputValue('#d-port'), String(first.port));
      assert.equal(await page.isDisabled('#d-name'), true, 'the name is the id rules use: it does not change');
      await page.fill('#d-port', String(second.port));
      await page.click('#d-save');
      await page.waitForSelector(`${row('AI')} td:nth-child(5):text-is("${second.port}")`);
      assert.equal((await orthancModality('AI'))?.Port, second.port);
      await first.stop();
      await page.click(`${row('AI')} [data-echo]`);
      await timedEcho.waitFor();
      await page.waitForSelector('#destinations-audit tr[data-change="edit"][data-change-of="AI"]');
      assert.match(
        (await page.textContent('#destinations-audit tr[data-change="edit"]')) ?? '',
        new RegExp(`function-key.*AINODE@127\\.0\\.0\\.1:${first.port}.*AINODE@127\\.0\\.0\\.1:${second.port}`),
      );

      // A rule that forwards to AI (no study will match it): the delete's confirmation names it.
      await stack.writeRule('to_ai', {
        CheckOn: 'Study',
        Action: 'FORWARD',
        DestinationModality: 'AI',
        Tags: [{ TagName: 'StudyDescription', Value: 'never-sent' }],
      });
      // A node behind a slow link: its echo succeeds after more than a second and is badged "slow".
      await page.fill('#d-name', 'REMOTE');
      await page.fill('#d-aet', 'AINODE');
      await page.fill('#d-host', '127.0.0.1');
      await page.fill('#d-port', String(slowLink.port));
      await page.click('#d-save');
      await page.waitForSelector(`${row('REMOTE')}[data-source="dashboard"]`, { timeout: 20_000 });
      await page.click(`${row('REMOTE')} [data-echo]`);
      await page.waitForSelector(`${row('REMOTE')} td.echo .badge.slow`, { timeout: 20_000 });
      const slowEcho = (await page.textContent(`${row('REMOTE')} td.echo .badge.ok`)) ?? '';
      assert.match(slowEcho, /^ok \d+ ms$/);
      assert.ok(Number(/\d+/.exec(slowEcho)![0]) > 1000, slowEcho);
      assert.equal(await page.locator(`${row('AI')} td.echo .badge.slow`).count(), 0);
      await page.locator('#destinations').screenshot({ path: path.join(ARTIFACTS, 'destinations.png') });

      // Delete, after the confirm.
      await page.click(`${row('AI')} [data-delete]`);
      await page.waitForSelector(row('AI'), { state: 'detached' });
      assert.equal(dialogs.length, 1);
      assert.match(dialogs[0], /Delete destination AI\? The rule\(s\) to_ai forward to it/);
      assert.equal(await orthancModality('AI'), undefined, 'Orthanc no longer has it');
      assert.ok(await orthancModality('PACS'));
      await page.waitForSelector('#destinations-audit tr[data-change="delete"][data-change-of="AI"]');

      const audit = ((await call('GET', 'destinations/audit?limit=10')).body.audit as DestinationChange[]).filter(
        (c) => c.name === 'AI',
      );
      assert.deepEqual(
        audit.map((c) => [c.action, c.name, c.who]),
        [
          ['delete', 'AI', 'function-key'],
          ['edit', 'AI', 'function-key'],
          ['add', 'AI', 'function-key'],
        ],
      );
      assert.deepEqual(audit[1].before, { aet: 'AINODE', host: '127.0.0.1', port: first.port });
      assert.deepEqual(audit[1].after, { aet: 'AINODE', host: '127.0.0.1', port: second.port });
      assert.deepEqual(problems, [], 'no script error and no CSP violation');
      await page.close();
    });
  });

  it('keeps a stored destination across a restart and puts it back into Orthanc; the audit names who', async () => {
    const added = await call(
      'POST',
      'destinations',
      { name: 'AI2', aet: 'AINODE', host: '127.0.0.1', port: second.port },
      { 'X-Remote-User': 'alice' },
    );
    assert.equal(added.status, 201, JSON.stringify(added.body));
    assert.equal((added.body.orthanc as { echo: string }).echo, 'ok');
    // Orthanc forgets REST-put modalities when it restarts: simulate that, then restart the app.
    assert.equal(await stack.client.deleteModality('AI2'), true);
    await stack.host.stop();
    await stack.host.start();
    await waitFor(async () => (await orthancModality('AI2'))?.Port === second.port, {
      timeoutMs: 30_000,
      description: 'the app to put AI2 back into Orthanc at start-up',
    });
    const after = await listed();
    const ai2 = after.destinations.find((d) => d.name === 'AI2');
    assert.deepEqual([ai2?.source, ai2?.port, ai2?.updatedBy], ['dashboard', second.port, 'alice']);
    const echo = await call('POST', 'destinations/AI2/echo', {});
    assert.equal(echo.status, 200);
    assert.equal(echo.body.ok, true);
    assert.equal(typeof echo.body.milliseconds, 'number');
    const status = (await call('GET', 'status')).body as { destinations: Record<string, { source?: string }> };
    assert.equal(status.destinations.AI2?.source, 'dashboard');
    assert.equal(status.destinations.PACS?.source, 'env');

    const removed = await call('DELETE', 'destinations/ai2', {}, { 'X-Remote-User': 'bob' });
    assert.equal(removed.status, 200, JSON.stringify(removed.body));
    assert.equal(await orthancModality('AI2'), undefined);
    const audit = (await listed()).audit.filter((c) => c.name === 'AI2');
    assert.deepEqual(
      audit.map((c) => [c.action, c.who]),
      [
        ['delete', 'bob'],
        ['add', 'alice'],
      ],
    );
  });
});
