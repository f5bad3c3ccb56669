/**
 * Access as compose runs it: Debian's nginx with the project's own `deploy/nginx` templates (filled
 * as the nginx image fills them; only the upstream addresses and ports differ) in front of the stack,
 * whose host enforces function keys as the container does.
 * - health is open; the API and dashboard ask browsers for the dashboard login, and nginx then adds
 *   the function key; a script's own x-functions-key skips the login and is checked by the host;
 * - the dashboard works in Chromium through the login alone;
 * - Orthanc Explorer's study page gets the "Run automation" button, which starts a forced job.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { generateStudy } from '../support/dicom';
import { freePort, makeTempDir, requireBinary, spawnManaged, waitFor, type ManagedProcess } from '../support/process';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');

/** `${NAME}` replaced for the variables compose gives the nginx container, as the image's envsubst does. */
function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => values[name] ?? whole);
}

describe('access through nginx, as in compose', { timeout: 300_000 }, () => {
  let stack: Stack;
  let nginx: ManagedProcess;
  let base: string;
  let login: { username: string; password: string };

  before(async () => {
    const binary = requireBinary('/usr/sbin/nginx', 'nginx');
    stack = await startStack({ enforceAuth: true });
    // One login for Orthanc and the dashboard, so the browser's single credential opens both.
    login = { username: stack.orthanc.username, password: stack.orthanc.password };
    const dir = await makeTempDir('nginx-');
    const port = await freePort();
    const viewerPort = await freePort();
    base = `http://127.0.0.1:${port}`;
    const values = { AUTOMATION_FUNCTION_KEY: stack.functionKey, DASHBOARD_USER: login.username, DASHBOARD_PASSWORD: login.password };
    const site = fill(readFileSync(path.join(REPO_ROOT, 'deploy/nginx/default.conf.template'), 'utf8'), values)
      .replaceAll('http://functions:80', `http://127.0.0.1:${stack.host.port}`)
      .replaceAll('http://orthanc:8042', stack.orthanc.url)
      .replace('listen 80;', `listen 127.0.0.1:${port};`)
      .replace('listen 3000;', `listen 127.0.0.1:${viewerPort};`)
      .replace('/etc/nginx/conf.d/htpasswd', path.join(dir, 'htpasswd'))
      .replace('/etc/nginx/autorthanc/explorer.js', path.join(REPO_ROOT, 'deploy/orthanc/explorer.js'));
    assert.doesNotMatch(site, /\$\{[A-Z_]+\}/, 'every template variable is filled');
    await writeFile(path.join(dir, 'site.conf'), site);
    await writeFile(path.join(dir, 'htpasswd'), fill(readFileSync(path.join(REPO_ROOT, 'deploy/nginx/htpasswd.template'), 'utf8'), values));
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, sub));
    await writeFile(
      path.join(dir, 'nginx.conf'),
      `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents {}\nhttp {\n  include /etc/nginx/mime.types;\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  include ${dir}/site.conf;\n}\n`,
    );
    nginx = spawnManaged(binary, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { name: 'nginx' });
    await waitFor(async () => (await fetch(`${base}/api/health`).catch(() => undefined))?.status === 200, { timeoutMs: 20_000, description: 'nginx to proxy /api/health', onTimeout: () => nginx.output() });
  });
  after(async () => {
    await nginx?.stop('SIGTERM');
    await stack?.stop();
  });

  const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

  it('keeps health open, asks for the login on the API, and adds the key for a logged-in browser', async () => {
    assert.equal((await fetch(`${base}/api/health`)).status, 200);
    const anonymous = await fetch(`${base}/api/jobs`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="autorthanc-functions"/);
    assert.equal((await fetch(`${base}/api/jobs`, { headers: basic(login.username, 'wrong') })).status, 401);
    const loggedIn = await fetch(`${base}/api/jobs`, { headers: basic(login.username, login.password) });
    assert.equal(loggedIn.status, 200);
    assert.ok(Array.isArray(((await loggedIn.json()) as { jobs: unknown[] }).jobs));
  });

  it("lets scripts use their own key instead, checked by the Functions host", async () => {
    const wrong = await fetch(`${base}/api/jobs`, { headers: { 'x-functions-key': 'not-the-key' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), null, 'the host refused it, not the nginx login');
    assert.equal((await fetch(`${base}/api/jobs`, { headers: { 'x-functions-key': stack.functionKey } })).status, 200);
    assert.equal((await fetch(`${base}/api/rules`, { headers: { 'x-functions-key': stack.masterKey } })).status, 200);
  });

  describe('in Chromium', () => {
    let browser: Browser;
    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      browser = await chromium.launch({ executablePath: requireBinary('chromium', 'chromium'), args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    });
    after(async () => {
      await browser?.close();
    });

    it('opens the dashboard with the login alone (nginx supplies the key to the page and its API calls)', async () => {
      const context = await browser.newContext({ httpCredentials: login, viewport: { width: 1300, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${base}/api/dashboard`);
      await page.waitForSelector('body[data-loaded]', { timeout: 20_000 });
      assert.match((await page.textContent('#health')) ?? '', /Orthanc 1\.10\.1/);
      assert.equal(await page.locator('#message.error').count(), 0, 'no API call failed');
      assert.deepEqual(errors, []);
      await context.close();
    });

    it('adds "Run automation" to the Orthanc Explorer study page, and the button starts a forced job', async () => {
      await stack.writeRule('explorer_button', { CheckOn: 'Study', IsActive: true, Action: 'DOWNLOAD', Tags: [{ TagName: 'StudyDescription', Value: 'explorer' }] });
      const study = await generateStudy({ patientID: 'EXP-1', patientName: 'Ødegård^Ása', studyDescription: 'explorer button', series: [{ seriesNumber: 1, modality: 'MR', instances: 1 }] });
      await stack.sendStudy(study);
      const id = await stack.studyId(study.studyInstanceUID);
      await stack.waitForJobs(1, (j) => j.resourceId === id && j.ruleId === 'explorer_button');

      const context = await browser.newContext({ httpCredentials: login, viewport: { width: 1300, height: 900 } });
      const page = await context.newPage();
      const dialogs: string[] = [];
      page.on('dialog', (dialog) => {
        dialogs.push(dialog.message());
        void dialog.accept();
      });
      await page.goto(`${base}/orthanc/app/explorer.html#study?uuid=${id}`);
      const button = page.locator('#autorthanc-run-studies');
      await button.waitFor({ state: 'visible', timeout: 20_000 });
      await page.screenshot({ path: path.join(ARTIFACTS, 'explorer-run-automation.png') });
      await button.click();
      await waitFor(() => dialogs.length > 0, { timeoutMs: 10_000, description: 'the button to report back' });
      assert.match(dialogs[0], /Automation queued for this study/);
      const jobs = await stack.waitForJobs(2, (j) => j.resourceId === id && j.ruleId === 'explorer_button');
      const forced = jobs.find((j) => j.forced);
      assert.ok(forced, 'the button made a forced job');
      assert.equal(forced.source, 'manual');
      assert.equal(forced.status, 'succeeded');
      await context.close();
    });
  });
});
