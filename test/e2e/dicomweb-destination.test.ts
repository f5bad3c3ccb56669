/**
 * A DICOMweb destination added from the dashboard, in headless Chromium, against the real stack and a
 * second real Orthanc with its DICOMweb plugin: the operator adds it with the base URL and the name of
 * the credentials settings (STOW_AUTH_PEER_*, in the app's environment only), tests it (a timed
 * QIDO-RS request), a rule forwards a study to it by STOW-RS and every instance arrives; then it is
 * deleted. The secret is in no API answer, audit entry or page.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import type { DestinationChange } from '../../shared/destinations/store';
import type { ListedDestination } from '../../shared/destinations/catalog';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import { generateStudy } from '../support/dicom';
import { startOrthanc, type OrthancServer } from '../support/orthanc';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

describe('a DICOMweb destination from the dashboard', { timeout: 300_000 }, () => {
  let peer: OrthancServer;
  let peerClient: OrthancClient;
  let stack: Stack;
  let browser: Browser;

  before(async () => {
    peer = await startOrthanc({ dicomWeb: true, aet: 'PEERWEB' });
    peerClient = createOrthancClient({ url: peer.url, username: peer.username, password: peer.password });
    stack = await startStack({
      env: {
        STOW_AUTH_PEER_USERNAME: peer.username,
        STOW_AUTH_PEER_PASSWORD: peer.password,
        AUTOMATION_FORWARD_POLL_SECONDS: '1',
      },
    });
    await mkdir(ARTIFACTS, { recursive: true });
    browser = await launchChromium();
  });
  after(async () => {
    await browser?.close();
    await stack?.stop();
    await peer?.stop();
  });

  const listed = async () => {
    const response = await fetch(`${stack.host.url}/api/destinations`, {
      headers: { 'x-functions-key': stack.functionKey },
    });
    const text = await response.text();
    assert.ok(!text.includes(peer.password), 'no secret in the API answer');
    return JSON.parse(text) as { destinations: ListedDestination[]; audit: DestinationChange[] };
  };

  it('adds it, tests it, forwards a study to it by STOW-RS, and deletes it', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${stack.host.url}/api/dashboard?code=${stack.functionKey}`);
    const row = `#destinations-list tr[data-destination="WEBPEER"]`;
    await page.waitForSelector('#destination-form');

    // A URL with credentials in it is refused with the API's reason.
    await page.fill('#d-name', 'WEBPEER');
    await page.selectOption('#d-kind', 'dicomweb');
    assert.equal(await page.isVisible('#d-aet'), false, 'the DICOM fields are hidden for DICOMweb');
    await page.fill('#d-url', `http://user:pw@127.0.0.1:${new URL(peer.url).port}/dicom-web`);
    await page.click('#d-save');
    await page.waitForSelector('#d-message.error');
    assert.match((await page.textContent('#d-message')) ?? '', /no credentials in the URL/);

    await page.fill('#d-url', `${peer.url}/dicom-web`);
    await page.fill('#d-credentials', 'STOW_AUTH_PEER');
    await page.click('#d-save');
    await page.waitForSelector(`${row}[data-source="dashboard"]`, { timeout: 20_000 });
    assert.match((await page.textContent(row)) ?? '', /DICOMweb/);
    assert.match((await page.textContent(row)) ?? '', /credentials STOW_AUTH_PEER/);
    assert.doesNotMatch((await page.textContent(row)) ?? '', /not set/);

    await page.click(`${row} [data-echo]`);
    await page.waitForSelector(`${row} td.echo .badge`, { timeout: 20_000 });
    assert.match((await page.textContent(`${row} td.echo`)) ?? '', /^ok \d+ ms/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'dicomweb-destination.png'), fullPage: true });

    const { destinations, audit } = await listed();
    const web = destinations.find((d) => d.name === 'WEBPEER')!;
    assert.deepEqual(
      [web.kind, web.source, web.url, web.credentialsFrom, web.credentialsSet],
      ['dicomweb', 'dashboard', `${peer.url}/dicom-web`, 'STOW_AUTH_PEER', true],
    );
    assert.deepEqual(audit[0].after, {
      kind: 'dicomweb',
      url: `${peer.url}/dicom-web`,
      credentialsFrom: 'STOW_AUTH_PEER',
    });
    assert.equal(audit[0].action, 'add');

    await stack.writeRule('to-webpeer', {
      CheckOn: 'Study',
      Steps: ['forward'],
      Forward: { Destinations: ['WEBPEER'] },
      Tags: [{ TagName: 'StudyDescription', Value: 'stow from dashboard' }],
    });
    const study = await generateStudy({
      studyDescription: 'stow from dashboard',
      series: [{ seriesNumber: 1, modality: 'CT', instances: 3 }],
    });
    await stack.sendStudy(study);
    const [job] = await stack.waitForJobs(1, (j) => j.ruleId === 'to-webpeer');
    assert.equal(job.status, 'succeeded', job.error);
    for (const file of study.series.flatMap((s) => s.files)) {
      const found = (await peerClient.lookup(file.sopInstanceUID)).find((r) => r.Type === 'Instance');
      assert.ok(found, `${file.sopInstanceUID} arrived at the DICOMweb destination`);
    }

    await page.click(`${row} [data-delete]`);
    await page.waitForSelector(row, { state: 'detached', timeout: 20_000 });
    const afterDelete = await listed();
    assert.equal(
      afterDelete.destinations.some((d) => d.name === 'WEBPEER'),
      false,
    );
    assert.equal(afterDelete.audit[0].action, 'delete');
    assert.ok(!(await page.content()).includes(peer.password), 'no secret on the page');
    assert.deepEqual(problems, []);
  });
});
