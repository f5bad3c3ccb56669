/**
 * Access as compose runs it: Debian's nginx with the project's own `deploy/nginx` templates (filled
 * as the nginx image fills them; only the upstream addresses, ports and file paths differ) in front of
 * the stack, whose host enforces function keys as the container does. The dashboard login and the
 * TLS certificate are the ones `deploy/generate-keys.sh` writes (a hashed htpasswd, a self-signed pair).
 * - plain HTTP redirects to HTTPS; every HTTPS response carries the security headers, once each;
 * - health is open; the API and dashboard ask browsers for the dashboard login, and nginx then adds
 *   the function key; a script's own x-functions-key skips the login, and nginx refuses a wrong one
 *   before reading any body; a body over the API's bound is refused as soon as its headers arrive;
 * - the dashboard works over HTTPS in Chromium, which trusts the self-signed certificate by its key;
 * - Orthanc Explorer's study page gets the "Run automation" button, which starts a forced job, and
 *   runs under its Content-Security-Policy without a violation;
 * - a burst of wrong logins is cut off (429).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { type Browser, type Page } from 'playwright-core';
import { launchChromium } from '../support/chromium';
import { generateStudy } from '../support/dicom';
import { freePort, makeTempDir, requireBinary, spawnManaged, waitFor, type ManagedProcess } from '../support/process';
import { REPO_ROOT, startStack, type Stack } from './stack';

const ARTIFACTS = path.join(REPO_ROOT, 'test/artifacts');
const SECURITY_HEADERS = [
  'strict-transport-security',
  'content-security-policy',
  'x-frame-options',
  'x-content-type-options',
  'referrer-policy',
];

/** `${NAME}` replaced for the variables compose gives the nginx container, as the image's envsubst does. */
function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => values[name] ?? whole);
}

interface Reply {
  status: number;
  headers: Headers;
  /** How many times the response carried the header (duplicates would be merged by `headers`). */
  count(name: string): number;
  body: string;
  json(): unknown;
}

/** One request, no redirect followed. HTTPS trusts only `ca` (Node's fetch cannot be given a CA). */
function request(
  url: string,
  ca: string,
  init: { method?: string; headers?: Record<string, string>; body?: string; agent?: https.Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const options = { method: init.method ?? 'GET', headers: init.headers ?? {} };
    const done = (response: http.IncomingMessage) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', reject);
      response.on('end', () => {
        const headers = new Headers();
        const raw = response.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
        const body = Buffer.concat(chunks).toString('utf8');
        const count = (name: string) => raw.filter((value, i) => i % 2 === 0 && value.toLowerCase() === name).length;
        resolve({ status: response.statusCode ?? 0, headers, count, body, json: () => JSON.parse(body) as unknown });
      });
    };
    const req =
      target.protocol === 'https:'
        ? https.request(target, { ...options, ca, agent: init.agent }, done)
        : http.request(target, options, done);
    req.on('error', reject);
    req.end(init.body);
  });
}

/** Sends only the head of a request over TLS and returns nginx's status line, without a byte of body. */
function headOnly(port: number, ca: string, head: string): Promise<{ statusLine: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => socket.write(head));
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s: nginx waited for the body')));
    let received = '';
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.includes('\r\n')) {
        resolve({
          statusLine: received.slice(0, received.indexOf('\r\n')),
          ms: Number(process.hrtime.bigint() - started) / 1e6,
        });
        socket.destroy();
      }
    });
    socket.on('error', reject);
  });
}

describe('access through nginx, as in compose', { timeout: 300_000 }, () => {
  let stack: Stack;
  let nginx: ManagedProcess;
  let base: string;
  let httpBase: string;
  let httpsPort: number;
  let viewerPort: number;
  let login: { username: string; password: string };
  let generated: string;
  let certificate: string;
  let accessLog: string;
  const basic = (user: string, password: string) => ({
    Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`,
  });
  const get = (url: string, init?: Parameters<typeof request>[2]) => request(url, certificate, init);

  before(async () => {
    const binary = requireBinary('/usr/sbin/nginx', 'nginx');
    requireBinary('openssl', 'openssl');
    stack = await startStack({ enforceAuth: true });
    // One login for Orthanc and the dashboard, so the browser's single credential opens both.
    login = { username: stack.orthanc.username, password: stack.orthanc.password };

    // The deployment's own secrets step, on a copy of .env.example holding that login.
    const root = makeTempDir('nginx-root-');
    copyFileSync(path.join(REPO_ROOT, '.env.example'), path.join(root, '.env.example'));
    writeFileSync(
      path.join(root, '.env'),
      readFileSync(path.join(REPO_ROOT, '.env.example'), 'utf8')
        .replace(/^DASHBOARD_USER=.*$/m, `DASHBOARD_USER=${login.username}`)
        .replace(/^DASHBOARD_PASSWORD=.*$/m, `DASHBOARD_PASSWORD=${login.password}`),
    );
    const keys = spawnSync('bash', [path.join(REPO_ROOT, 'deploy/generate-keys.sh')], {
      env: { PATH: process.env.PATH, AUTORTHANC_ROOT: root, AUTORTHANC_TLS_NAMES: 'localhost 127.0.0.1' },
      encoding: 'utf8',
    });
    assert.equal(keys.status, 0, keys.stderr);
    assert.match(keys.stdout, /made a SELF-SIGNED TLS certificate/, 'the script says the certificate is self-signed');
    generated = path.join(root, 'deploy/generated');
    certificate = readFileSync(path.join(generated, 'self-signed.crt'), 'utf8');

    const dir = makeTempDir('nginx-');
    accessLog = path.join(dir, 'access.log');
    const httpPort = await freePort();
    httpsPort = await freePort();
    viewerPort = await freePort();
    base = `https://127.0.0.1:${httpsPort}`;
    httpBase = `http://127.0.0.1:${httpPort}`;
    const values = {
      AUTOMATION_FUNCTION_KEY: stack.functionKey,
      AUTOMATION_MASTER_KEY: stack.masterKey,
      ORTHANC_HTTPS_PORT: String(httpsPort),
      OHIF_PORT: String(viewerPort),
    };
    const site = fill(readFileSync(path.join(REPO_ROOT, 'deploy/nginx/default.conf.template'), 'utf8'), values)
      .replaceAll('http://functions:80', `http://127.0.0.1:${stack.host.port}`)
      .replaceAll('http://orthanc:8042', stack.orthanc.url)
      .replace('listen 80 ssl;', `listen 127.0.0.1:${httpPort} ssl;`)
      .replace('listen 443 ssl;', `listen 127.0.0.1:${httpsPort} ssl;`)
      .replace('listen 3000 ssl;', `listen 127.0.0.1:${viewerPort} ssl;`)
      .replace('/etc/nginx/tls/certificate.pem', path.join(generated, 'self-signed.crt'))
      .replace('/etc/nginx/tls/key.pem', path.join(generated, 'self-signed.key'))
      .replace('/etc/nginx/autorthanc/htpasswd', path.join(generated, 'htpasswd'))
      .replace(
        '/etc/nginx/autorthanc/security-headers.conf',
        path.join(REPO_ROOT, 'deploy/nginx/security-headers.conf'),
      )
      .replace('/etc/nginx/autorthanc/explorer.js', path.join(REPO_ROOT, 'deploy/orthanc/explorer.js'))
      .replaceAll('/var/log/nginx/access.log', accessLog);
    assert.doesNotMatch(site, /\$\{[A-Z_]+\}/, 'every template variable is filled');
    assert.doesNotMatch(site, /\/etc\/nginx\/|\/var\/log\//, 'every container path is mapped');
    await writeFile(path.join(dir, 'site.conf'), site);
    for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) await mkdir(path.join(dir, sub));
    await writeFile(
      path.join(dir, 'nginx.conf'),
      `${process.getuid?.() === 0 ? 'user root;\n' : ''}daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents {}\nhttp {\n  include /etc/nginx/mime.types;\n  access_log off;\n  client_body_temp_path ${dir}/body;\n  proxy_temp_path ${dir}/proxy;\n  fastcgi_temp_path ${dir}/fastcgi;\n  uwsgi_temp_path ${dir}/uwsgi;\n  scgi_temp_path ${dir}/scgi;\n  include ${dir}/site.conf;\n}\n`,
    );
    nginx = spawnManaged(binary, ['-p', dir, '-c', path.join(dir, 'nginx.conf')], { name: 'nginx' });
    await waitFor(async () => (await get(`${base}/api/health`).catch(() => undefined))?.status === 200, {
      timeoutMs: 20_000,
      description: 'nginx to proxy /api/health over HTTPS',
      onTimeout: () => nginx.output(),
    });
  });
  after(async () => {
    await nginx?.stop('SIGTERM');
    await stack?.stop();
  });

  it('keeps the dashboard password hashed, not in plain text', () => {
    const htpasswd = readFileSync(path.join(generated, 'htpasswd'), 'utf8');
    assert.match(
      htpasswd,
      new RegExp(`^${login.username}:\\$6\\$[^$]+\\$[A-Za-z0-9./]{86}\\n$`),
      'one sha512-crypt line',
    );
    assert.ok(!htpasswd.includes(login.password), 'the password itself is not in the file');
    assert.doesNotMatch(htpasswd, /\{PLAIN\}/);
  });

  it('logs requests without their query strings (DICOMweb searches carry patient names there)', async () => {
    await get(`https://127.0.0.1:${viewerPort}/dicom-web/studies?PatientName=Secret%5EPatient&PatientID=PID-123`);
    await get(`${base}/orthanc/tools/lookup?q=Secret`);
    // nginx writes a request's log line after the response has gone, so the last one may lag.
    const lookedUp = /"GET \/orthanc\/tools\/lookup HTTP\/1\.1" 401 /;
    await waitFor(() => lookedUp.test(readFileSync(accessLog, 'utf8')), {
      timeoutMs: 5_000,
      description: 'the access log line of the last request',
      onTimeout: () => readFileSync(accessLog, 'utf8'),
    });
    const log = readFileSync(accessLog, 'utf8');
    assert.match(log, /"GET \/dicom-web\/studies HTTP\/1\.1" 401 /);
    assert.match(log, /"GET \/orthanc\/tools\/lookup HTTP\/1\.1" 401 /);
    assert.doesNotMatch(log, /Secret|PID-123/);
  });

  it('redirects plain HTTP to HTTPS, keeping the path and the method', async () => {
    for (const method of ['GET', 'POST']) {
      const redirect = await get(`${httpBase}/api/dashboard?view=failed`, { method });
      assert.equal(redirect.status, 308, `${method} is redirected permanently`);
      assert.equal(redirect.headers.get('location'), `${base}/api/dashboard?view=failed`);
    }
    // A browser that has seen HSTS asks the HTTP port over TLS: it gets the redirect too.
    const upgraded = await get(`https://127.0.0.1:${httpBase.split(':').at(-1)}/api/dashboard`);
    assert.equal(upgraded.status, 308);
    assert.equal(upgraded.headers.get('location'), `${base}/api/dashboard`);
    const onTlsPort = await get(`http://127.0.0.1:${httpsPort}/orthanc/app/explorer.html`);
    assert.equal(onTlsPort.status, 308, 'plain HTTP sent to the HTTPS port');
    assert.equal(onTlsPort.headers.get('location'), `${base}/orthanc/app/explorer.html`);
    const viewer = await get(`http://127.0.0.1:${viewerPort}/`);
    assert.equal(viewer.status, 308, 'the viewer port speaks TLS too');
    assert.equal(viewer.headers.get('location'), `https://127.0.0.1:${viewerPort}/`);
    // The viewer port's DICOMweb proxy answers over TLS (Orthanc asks for its login).
    const dicomWeb = await get(`https://127.0.0.1:${viewerPort}/dicom-web/studies`);
    assert.equal(dicomWeb.status, 401);
    assert.match(dicomWeb.headers.get('strict-transport-security') ?? '', /max-age=\d{7,}/);
    const negotiated = await new Promise<string | null>((resolve, reject) => {
      const socket = tls.connect(
        { host: '127.0.0.1', port: httpsPort, ca: certificate, servername: 'localhost' },
        () => {
          resolve(socket.getProtocol());
          socket.end();
        },
      );
      socket.on('error', reject);
    });
    assert.ok(negotiated === 'TLSv1.3' || negotiated === 'TLSv1.2', `negotiated ${negotiated}`);
  });

  it('sends the security headers once each on every location, errors included, and no nginx version', async () => {
    const orthanc = basic(login.username, login.password);
    const cases: [string, Parameters<typeof request>[2], number][] = [
      ['/', {}, 302],
      ['/nowhere', {}, 404],
      ['/orthanc/app/explorer.html', { headers: orthanc }, 200],
      ['/orthanc/system', {}, 401],
      ['/orthanc/plugins/explorer.js', {}, 200],
      ['/api/health', {}, 200],
      ['/api/jobs', {}, 401],
      ['/api/jobs', { headers: orthanc }, 200],
      ['/api/jobs', { headers: { 'x-functions-key': 'wrong-key-0123456789' } }, 401],
      ['/api/dashboard', { headers: orthanc }, 200],
    ];
    for (const [route, init, status] of cases) {
      const reply = await get(`${base}${route}`, init);
      const what = `${route} (${status})`;
      assert.equal(reply.status, status, what);
      for (const name of SECURITY_HEADERS) assert.equal(reply.count(name), 1, `${what}: one ${name}`);
      assert.match(reply.headers.get('strict-transport-security') ?? '', /^max-age=31536000$/, what);
      assert.equal(reply.headers.get('x-frame-options'), 'DENY', what);
      assert.equal(reply.headers.get('x-content-type-options'), 'nosniff', what);
      assert.equal(reply.headers.get('referrer-policy'), 'no-referrer', what);
      assert.equal(reply.headers.get('server'), 'nginx', `${what}: server_tokens off`);
      const csp = reply.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/, what);
      if (route === '/api/dashboard')
        assert.match(csp, /script-src 'sha256-/, "the dashboard's own policy, by hash, is kept");
      else if (route.startsWith('/orthanc/')) assert.match(csp, /script-src 'self'/, what);
      else assert.match(csp, /^default-src 'none'/, what);
    }
    assert.equal((await get(`${base}/orthanc/plugins/explorer.js`)).headers.get('cache-control'), 'no-cache');
  });

  it('keeps health open, asks for the login on the API, and adds the key for a logged-in browser', async () => {
    assert.equal((await get(`${base}/api/health`)).status, 200);
    const anonymous = await get(`${base}/api/jobs`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic realm="autorthanc-functions"/);
    assert.equal((await get(`${base}/api/jobs`, { headers: basic(login.username, 'wrong') })).status, 401);
    const loggedIn = await get(`${base}/api/jobs`, { headers: basic(login.username, login.password) });
    assert.equal(loggedIn.status, 200);
    assert.ok(Array.isArray((loggedIn.json() as { jobs: unknown[] }).jobs));
  });

  it('lets scripts use their own key instead; nginx refuses a wrong one itself, the host checks the rest', async () => {
    const wrong = await get(`${base}/api/jobs`, { headers: { 'x-functions-key': 'not-the-key' } });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers.get('www-authenticate'), null, 'a key refusal, not the nginx login');
    assert.match(wrong.body, /<center>nginx<\/center>/, 'nginx answered, without asking the host');
    const otherCase = await get(`${base}/api/jobs`, {
      headers: { 'x-functions-key': stack.functionKey.toUpperCase() },
    });
    assert.equal(otherCase.status, 401, 'keys are compared exactly');
    assert.equal((await get(`${base}/api/jobs`, { headers: { 'x-functions-key': stack.functionKey } })).status, 200);
    assert.equal((await get(`${base}/api/rules`, { headers: { 'x-functions-key': stack.masterKey } })).status, 200);
  });

  it('names the logged-in user in the destinations audit, whatever X-Remote-User a client sends', async () => {
    const json = { 'Content-Type': 'application/json', 'X-Remote-User': 'mallory' };
    const added = await get(`${base}/api/destinations`, {
      method: 'POST',
      headers: { ...basic(login.username, login.password), ...json },
      body: JSON.stringify({ name: 'VIA_NGINX', aet: 'VIANGINX', host: '127.0.0.1', port: 9 }),
    });
    assert.equal(added.status, 201, added.body);
    // A key of its own skips the login, so a Basic header beside it is unchecked and names nobody.
    const deleted = await get(`${base}/api/destinations/VIA_NGINX`, {
      method: 'DELETE',
      // Node sends no Content-Length for a DELETE by itself; nginx would read the body as the next request.
      headers: {
        'x-functions-key': stack.functionKey,
        ...basic('mallory', 'unchecked'),
        ...json,
        'Content-Length': '2',
      },
      body: '{}',
    });
    assert.equal(deleted.status, 200, deleted.body);
    const audit = await get(`${base}/api/destinations/audit`, { headers: basic(login.username, login.password) });
    assert.equal(audit.status, 200, audit.body);
    const changes = (audit.json() as { audit: Array<{ action: string; name: string; who: string }> }).audit;
    assert.deepEqual(
      changes.filter((c) => c.name === 'VIA_NGINX').map((c) => [c.action, c.who]),
      [
        ['delete', 'function-key'],
        ['add', login.username],
      ],
    );
  });

  it('refuses an oversized API body, and a wrong key, as soon as the headers arrive (no body sent)', async () => {
    const head = (length: number, key: string) =>
      `POST /api/studies/x/run HTTP/1.1\r\nHost: 127.0.0.1:${httpsPort}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\nx-functions-key: ${key}\r\n\r\n`;
    const cases: [string, number, string, RegExp][] = [
      ['200 MB, wrong key', 200 * 1024 * 1024, 'wrong-key-0123456789', /^HTTP\/1\.1 413 /],
      ['200 MB, right key', 200 * 1024 * 1024, stack.functionKey, /^HTTP\/1\.1 413 /],
      ['32 KiB, wrong key', 32 * 1024, 'wrong-key-0123456789', /^HTTP\/1\.1 401 /],
    ];
    for (const [what, length, key, expected] of cases) {
      const { statusLine, ms } = await headOnly(httpsPort, certificate, head(length, key));
      console.log(
        `nginx answered "${statusLine}" to ${what} in ${ms.toFixed(1)} ms, with 0 of ${length} body bytes sent`,
      );
      assert.match(statusLine, expected, what);
    }
    // Orthanc keeps unbounded uploads (DICOM through Orthanc Explorer): a large declared body is not refused by size.
    const { statusLine } = await headOnly(
      httpsPort,
      certificate,
      `POST /orthanc/instances HTTP/1.1\r\nHost: x\r\nContent-Length: ${200 * 1024 * 1024}\r\n\r\n`,
    );
    assert.match(statusLine, /^HTTP\/1\.1 401 /, "Orthanc's own login answers, not a 413");
  });

  describe('in Chromium', () => {
    let browser: Browser;
    let spki: string;
    before(async () => {
      await mkdir(ARTIFACTS, { recursive: true });
      // Trusting exactly this certificate's key (a pin), not ignoring certificate errors in general.
      spki = createHash('sha256')
        .update(new X509Certificate(certificate).publicKey.export({ type: 'spki', format: 'der' }))
        .digest('base64');
      browser = await launchChromium([`--ignore-certificate-errors-spki-list=${spki}`]);
    });
    after(async () => {
      await browser?.close();
    });

    /** Content-Security-Policy violations the page reports, collected from its start. */
    async function watchCsp(page: Page): Promise<() => Promise<string[]>> {
      const messages: string[] = [];
      page.on('console', (message) => {
        if (/Content Security Policy/i.test(message.text())) messages.push(message.text());
      });
      // Browser code as text: the tests are compiled without the DOM's types.
      await page.addInitScript({
        content:
          "window.cspViolations = []; document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
      });
      return async () => [...messages, ...(await page.evaluate<string[]>('window.cspViolations || []'))];
    }

    it('does not trust the self-signed certificate without the pin (so the pin is what trusts it)', async () => {
      const plain = await launchChromium();
      try {
        const page = await plain.newPage();
        await assert.rejects(page.goto(`${base}/api/health`), /ERR_CERT_AUTHORITY_INVALID/);
      } finally {
        await plain.close();
      }
    });

    it('opens the dashboard with the login alone (nginx supplies the key to the page and its API calls)', async () => {
      const context = await browser.newContext({ httpCredentials: login, viewport: { width: 1300, height: 900 } });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      const violations = await watchCsp(page);
      // Typed as plain HTTP: the browser ends up on HTTPS.
      await page.goto(`${httpBase}/api/dashboard`);
      await page.waitForSelector('body[data-loaded]', { timeout: 20_000 });
      assert.equal(page.url(), `${base}/api/dashboard`, 'redirected to HTTPS');
      // The version of the Orthanc this run started (ORTHANC_FLAVOUR: 1.10.1 or 1.12.7).
      assert.ok(((await page.textContent('#health')) ?? '').includes(`Orthanc ${stack.orthanc.version}`));
      assert.equal(await page.locator('#message.error').count(), 0, 'no API call failed');
      assert.deepEqual(errors, []);
      assert.deepEqual(await violations(), [], 'no Content-Security-Policy violation');
      await page.screenshot({ path: path.join(ARTIFACTS, 'dashboard-https.png') });
      await context.close();
    });

    it('adds "Run automation" to the Orthanc Explorer study page, and the button starts a forced job', async () => {
      await stack.writeRule('explorer_button', {
        CheckOn: 'Study',
        IsActive: true,
        Action: 'DOWNLOAD',
        Tags: [{ TagName: 'StudyDescription', Value: 'explorer' }],
      });
      const study = await generateStudy({
        patientID: 'EXP-1',
        patientName: 'Ødegård^Ása',
        studyDescription: 'explorer button',
        series: [{ seriesNumber: 1, modality: 'MR', instances: 1 }],
      });
      await stack.sendStudy(study);
      const id = await stack.studyId(study.studyInstanceUID);
      await stack.waitForJobs(1, (j) => j.resourceId === id && j.ruleId === 'explorer_button');

      const context = await browser.newContext({ httpCredentials: login, viewport: { width: 1300, height: 900 } });
      const page = await context.newPage();
      const violations = await watchCsp(page);
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
      // The study list and the patient page run under the same policy.
      await page.goto(`${base}/orthanc/app/explorer.html#find-patients`);
      await page.locator('#find-patients').waitFor({ state: 'visible', timeout: 20_000 });
      assert.deepEqual(await violations(), [], 'Orthanc Explorer runs under its Content-Security-Policy');
      await context.close();
    });

    it("uploads DICOM through Orthanc Explorer's upload page (its file picker works under the policy)", async () => {
      const study = await generateStudy({
        patientID: 'UPL-1',
        patientName: 'Upload^Test',
        studyDescription: 'uploaded',
        series: [{ seriesNumber: 1, modality: 'CT', instances: 2 }],
      });
      const context = await browser.newContext({ httpCredentials: login, viewport: { width: 1300, height: 900 } });
      const page = await context.newPage();
      const violations = await watchCsp(page);
      await page.goto(`${base}/orthanc/app/explorer.html#upload`);
      await page.locator('#fileupload-proxy').waitFor({ state: 'visible', timeout: 20_000 });
      // The inline onclick forwards the click to the hidden file input: a file chooser opens only if it ran.
      const [chooser] = await Promise.all([
        page.waitForEvent('filechooser', { timeout: 10_000 }),
        page.click('#fileupload-proxy'),
      ]);
      await chooser.setFiles(study.files);
      await page.click('#upload-button');
      const instances = async () => {
        const id = await stack.studyId(study.studyInstanceUID);
        const reply = await fetch(`${stack.orthanc.url}/studies/${id}/instances`, {
          headers: basic(login.username, login.password),
        });
        return ((await reply.json()) as unknown[]).length;
      };
      await waitFor(async () => (await instances()) === study.files.length, {
        timeoutMs: 20_000,
        description: 'both uploaded instances in Orthanc',
      });
      assert.deepEqual(await violations(), [], 'no Content-Security-Policy violation on the upload page');
      await context.close();
    });
  });

  // Last: it spends this client's request budget.
  it('cuts off a burst of wrong logins with 429, on the API and on Orthanc', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 4 });
    try {
      for (const [route, attempts] of [
        ['/api/jobs', 100],
        ['/orthanc/system', 600],
      ] as const) {
        const statuses = new Map<number, number>();
        const started = Date.now();
        await Promise.all(
          Array.from({ length: 4 }, async (_, worker) => {
            for (let i = worker; i < attempts; i += 4) {
              const { status } = await get(`${base}${route}`, { headers: basic(login.username, `wrong-${i}`), agent });
              statuses.set(status, (statuses.get(status) ?? 0) + 1);
            }
          }),
        );
        console.log(
          `${attempts} wrong logins on ${route} in ${Date.now() - started} ms: ${JSON.stringify(Object.fromEntries(statuses))}`,
        );
        assert.deepEqual([...statuses.keys()].sort(), [401, 429], `${route}: refused, then cut off`);
        assert.ok((statuses.get(429) ?? 0) > attempts / 4, `${route}: most of the burst is cut off`);
      }
    } finally {
      agent.destroy();
    }
  });
});
