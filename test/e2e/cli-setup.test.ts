/**
 * `autorthanc setup` in a real terminal: the built CLI runs in a tmux session, each prompt is awaited on
 * the screen (capture-pane) and answered with send-keys, as a person would. The `.env` it writes is
 * then given to Debian's docker-compose 1.29 (`config` needs no engine), which must accept it and show
 * the answers. A re-run keeps every secret unless one is explicitly replaced; declining to write
 * leaves the file as it was; the non-interactive flags do the same without a terminal.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseEnv } from 'node:util';
import { makeTempDir, requireBinary, waitFor } from '../support/process';
import { REPO_ROOT } from './stack';
import { CLI_BIN as BIN, runCli } from '../support/cli';

const SECRETS = [
  'AUTOMATION_FUNCTION_KEY',
  'ORTHANC_PASSWORD',
  'DASHBOARD_PASSWORD',
  'POSTGRES_PASSWORD',
  'AUTOMATION_ANONYMISATION_SECRET',
];

let tmux: string;
let compose: string;
const socket = `autorthanc-setup-${process.pid}`;

/** One run of `setup` in its own tmux session, driven prompt by prompt. */
class Terminal {
  private seen = new Map<string, number>();
  private readonly exitFile: string;

  constructor(
    readonly name: string,
    readonly work: string,
  ) {
    this.exitFile = path.join(work, `${name}.exit`);
  }

  start(args: string[]) {
    const command = [process.execPath, BIN, 'setup', ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
    const r = spawnSync(tmux, [
      '-L',
      socket,
      'new-session',
      '-d',
      '-s',
      this.name,
      '-x',
      '220',
      '-y',
      '60',
      `cd '${REPO_ROOT}' && ${command}; echo $? > '${this.exitFile}'; sleep 600`,
    ]);
    assert.equal(r.status, 0, `tmux new-session: ${String(r.stderr)}`);
    spawnSync(tmux, ['-L', socket, 'set-option', '-t', this.name, 'history-limit', '10000']);
  }

  screen(): string {
    const r = spawnSync(tmux, ['-L', socket, 'capture-pane', '-p', '-J', '-S', '-', '-t', this.name], {
      encoding: 'utf8',
    });
    return r.stdout.trimEnd();
  }

  /** Waits until `text` is on the screen once more than it was already answered. */
  async expect(text: string): Promise<void> {
    const want = (this.seen.get(text) ?? 0) + 1;
    await waitFor(() => this.screen().split(text).length - 1 >= want, {
      timeoutMs: 60_000,
      description: `the prompt '${text}'`,
      onTimeout: () => this.screen(),
    });
    this.seen.set(text, want);
  }

  async answer(prompt: string, keys: string): Promise<void> {
    await this.expect(prompt);
    if (keys !== '') spawnSync(tmux, ['-L', socket, 'send-keys', '-t', this.name, '-l', '--', keys]);
    spawnSync(tmux, ['-L', socket, 'send-keys', '-t', this.name, 'Enter']);
  }

  async exitCode(): Promise<number> {
    await waitFor(() => existsSync(this.exitFile) && readFileSync(this.exitFile, 'utf8').trim() !== '', {
      timeoutMs: 60_000,
      description: `setup (${this.name}) to end`,
      onTimeout: () => this.screen(),
    });
    return Number(readFileSync(this.exitFile, 'utf8').trim());
  }
}

function composeConfig(envFile: string, ...overrides: string[]) {
  const files = ['docker-compose.yml', ...overrides].flatMap((f) => ['-f', f]);
  return spawnSync(compose, ['--env-file', envFile, ...files, 'config'], {
    cwd: REPO_ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp' },
  });
}

const run = (args: string[]) => runCli(args, { cwd: REPO_ROOT });

const read = (file: string) => parseEnv(readFileSync(file, 'utf8'));

describe('autorthanc setup in a terminal', { timeout: 400_000 }, () => {
  let work: string;
  let envFile: string;

  before(() => {
    tmux = requireBinary('tmux', 'tmux');
    compose = requireBinary('docker-compose', 'docker-compose');
    assert.ok(existsSync(BIN), 'dist/shared/cli/bin.js is built (npm run build)');
    work = makeTempDir('cli-setup-');
    envFile = path.join(work, '.env');
  });

  after(() => {
    spawnSync(tmux, ['-L', socket, 'kill-server']);
  });

  it('asks its questions, re-asks a bad answer with the reason, writes a .env that docker-compose accepts', async () => {
    const t = new Terminal('first', work);
    t.start(['--env-path', envFile]);
    await t.expect(`a new ${envFile} from .env.example`);
    await t.answer('Folder of the results', path.join(work, 'results'));
    await t.answer('Folder of the rule files', path.join(work, 'rules'));
    await t.answer("Folder of Orthanc's DICOM files", path.join(work, 'dicom'));
    await t.answer("Orthanc's DICOM AE title", 'THIS_AE_TITLE_IS_TOO_LONG');
    await t.expect('AE title must be 1-16 printable characters');
    await t.answer("Orthanc's DICOM AE title", 'WIZARDAET');
    await t.answer("Orthanc's DICOM port", '70000');
    await t.expect("expected a TCP port between 1 and 65535, got '70000'; try again");
    await t.answer("Orthanc's DICOM port", '11112');
    await t.answer('HTTP port', '');
    await t.answer('HTTPS port', '8443');
    await t.answer('Seconds without new images', '');
    await t.answer('Add NAME=AET@host:port', '-PACS');
    await t.answer('Add NAME=AET@host:port', 'AI=AI@NODE@300.1.1.1');
    await t.expect('expected NAME=AET@host:port');
    await t.answer('Add NAME=AET@host:port', 'AI=AINODE@10.9.8.7:4242');
    await t.expect('AI = AINODE@10.9.8.7:4242');
    await t.answer('Add NAME=AET@host:port', '');
    await t.answer(`Write ${envFile}? [Y/n]`, '');
    assert.equal(await t.exitCode(), 0, t.screen());
    assert.match(
      t.screen(),
      /Generated: AUTOMATION_FUNCTION_KEY, ORTHANC_PASSWORD, DASHBOARD_PASSWORD, POSTGRES_PASSWORD, AUTOMATION_ANONYMISATION_SECRET/,
    );

    assert.equal(statSync(envFile).mode & 0o777, 0o600, '.env holds secrets: mode 600');
    const env = read(envFile);
    assert.equal(env.ORTHANC_AET_NAME, 'WIZARDAET');
    assert.equal(env.ORTHANC_AET_PORT, '11112');
    assert.equal(env.ORTHANC_HTTPS_PORT, '8443');
    assert.deepEqual(JSON.parse(env.ORTHANC_DICOM_MODALITIES!), { AI: ['AINODE', '10.9.8.7', 4242] });
    for (const name of SECRETS) {
      assert.match(env[name] ?? '', /^[0-9a-f]{64}$/, `${name} generated (32 random bytes)`);
      assert.ok(!t.screen().includes(env[name]!), `${name} is not shown on the screen`);
    }
    assert.equal(new Set(SECRETS.map((n) => env[n])).size, SECRETS.length, 'every secret is its own');
    for (const folder of ['results', 'rules', 'dicom'])
      assert.ok(existsSync(path.join(work, folder)), `${folder} made`);
    // The template's comments are kept.
    assert.match(readFileSync(envFile, 'utf8'), /^# autorthanc-functions: copy to \.env/);

    const config = composeConfig(envFile);
    assert.equal(config.status, 0, `docker-compose config refused the .env:\n${config.stderr}`);
    assert.match(config.stdout, /ORTHANC_AET_NAME: WIZARDAET/);
    assert.match(config.stdout, /published: 11112\n\s+target: 11112/, 'the DICOM port published');
    assert.match(config.stdout, /published: 8443\n\s+target: 443/, 'the HTTPS port published');
    assert.ok(config.stdout.includes(`${path.join(work, 'results')}:/automation/storage`), 'storage folder mounted');
    assert.ok(config.stdout.includes(`${path.join(work, 'rules')}:/automation/rules`), 'rules folder mounted');
    assert.ok(config.stdout.includes(env.ORTHANC_PASSWORD!), 'the generated Orthanc password reaches compose');
    assert.match(config.stdout, /ORTHANC_DICOM_MODALITIES: '\{"AI":\["AINODE","10\.9\.8\.7",4242\]\}'/);
  });

  it('a re-run shows the current values and keeps every secret unless one is confirmed', async () => {
    const before = readFileSync(envFile, 'utf8');
    const old = read(envFile);
    const t = new Terminal('rerun', work);
    t.start(['--env-path', envFile]);
    await t.expect(`updating ${envFile}`);
    await t.answer(`Folder of the results (rules write <folder>/<rule>/...) [${path.join(work, 'results')}]`, '');
    await t.answer('Folder of the rule files', '');
    await t.answer("Folder of Orthanc's DICOM files", '');
    await t.answer("Orthanc's DICOM AE title [WIZARDAET]", '');
    await t.answer("Orthanc's DICOM port [11112]", '');
    await t.answer('HTTP port', '');
    await t.answer('HTTPS port (Orthanc, dashboard and API) [8443]', '');
    await t.answer('Seconds without new images', '');
    await t.expect('AI = AINODE@10.9.8.7:4242');
    await t.answer('Add NAME=AET@host:port', '');
    await t.answer('Replace AUTOMATION_FUNCTION_KEY with a new random one? [y/N]', '');
    await t.answer('Replace ORTHANC_PASSWORD with a new random one? [y/N]', 'maybe');
    await t.expect('answer y or n');
    await t.answer('Replace ORTHANC_PASSWORD with a new random one? [y/N]', 'y');
    await t.answer('Replace DASHBOARD_PASSWORD with a new random one? [y/N]', 'n');
    await t.expect('PostgreSQL keeps the password its data volume was created with');
    await t.answer('Replace POSTGRES_PASSWORD with a new random one? [y/N]', '');
    await t.answer('Replace AUTOMATION_ANONYMISATION_SECRET with a new random one? [y/N]', '');
    await t.answer(`Write ${envFile}? [Y/n]`, 'y');
    assert.equal(await t.exitCode(), 0, t.screen());

    const now = read(envFile);
    assert.notEqual(now.ORTHANC_PASSWORD, old.ORTHANC_PASSWORD, 'the confirmed secret is new');
    assert.match(now.ORTHANC_PASSWORD ?? '', /^[0-9a-f]{64}$/);
    for (const name of SECRETS.filter((n) => n !== 'ORTHANC_PASSWORD'))
      assert.equal(now[name], old[name], `${name} kept`);
    // Only that line changed: comments, order and every other line are as they were.
    const [a, b] = [before.split('\n'), readFileSync(envFile, 'utf8').split('\n')];
    assert.equal(a.length, b.length);
    assert.deepEqual(
      a.map((line, i) => (line === b[i] ? null : line.split('=')[0])).filter((x) => x !== null),
      ['ORTHANC_PASSWORD'],
    );
    assert.equal(composeConfig(envFile).status, 0);
  });

  it('declining to write leaves the file as it was (exit 1); Ctrl-D cancels (exit 2)', async () => {
    const before = readFileSync(envFile, 'utf8');
    const t = new Terminal('decline', work);
    t.start(['--env-path', envFile, '--aet', 'OTHERAET']);
    await t.answer('Folder of the results', '');
    await t.answer('Folder of the rule files', '');
    await t.answer("Folder of Orthanc's DICOM files", '');
    await t.answer("Orthanc's DICOM AE title [OTHERAET]", '');
    for (const prompt of ["Orthanc's DICOM port", 'HTTP port', 'HTTPS port', 'Seconds without new images'])
      await t.answer(prompt, '');
    await t.answer('Add NAME=AET@host:port', '');
    await t.answer('Replace AUTOMATION_FUNCTION_KEY with a new random one? [y/N]', 'y');
    for (const name of SECRETS.slice(1)) await t.answer(`Replace ${name} with a new random one? [y/N]`, '');
    await t.expect('To write: ORTHANC_AET_NAME, AUTOMATION_FUNCTION_KEY');
    await t.answer(`Write ${envFile}? [Y/n]`, 'n');
    assert.equal(await t.exitCode(), 1, t.screen());
    assert.match(t.screen(), /Nothing was written/);
    assert.equal(readFileSync(envFile, 'utf8'), before);

    const cancelled = new Terminal('cancel', work);
    cancelled.start(['--env-path', envFile]);
    await cancelled.expect('Folder of the results');
    spawnSync(tmux, ['-L', socket, 'send-keys', '-t', 'cancel', 'C-d']);
    assert.equal(await cancelled.exitCode(), 2, cancelled.screen());
    assert.match(cancelled.screen(), /setup cancelled; nothing was written/);
    assert.equal(readFileSync(envFile, 'utf8'), before);
  });

  it('--yes with flags: no questions, secrets kept unless --replace-secret, bad flags exit 2 and write nothing', async () => {
    const old = read(envFile);
    const flagged = await run([
      '--json',
      'setup',
      '--yes',
      '--env-path',
      envFile,
      '--aet',
      'FLAGAET',
      '--dicom-port',
      '104',
      '--destination',
      'PACS=PACSAET@192.168.7.7:104',
      '--remove-destination',
      'AI',
      '--replace-secret',
      'DASHBOARD_PASSWORD',
    ]);
    assert.equal(flagged.code, 0, `${flagged.stdout}\n${flagged.stderr}`);
    const result = JSON.parse(flagged.stdout) as {
      changed: string[];
      generatedSecrets: string[];
      keptSecrets: string[];
    };
    assert.deepEqual(result.generatedSecrets, ['DASHBOARD_PASSWORD']);
    assert.deepEqual(result.changed.sort(), [
      'DASHBOARD_PASSWORD',
      'ORTHANC_AET_NAME',
      'ORTHANC_AET_PORT',
      'ORTHANC_DICOM_MODALITIES',
    ]);
    const now = read(envFile);
    assert.equal(now.ORTHANC_AET_NAME, 'FLAGAET');
    assert.deepEqual(JSON.parse(now.ORTHANC_DICOM_MODALITIES!), { PACS: ['PACSAET', '192.168.7.7', 104] });
    assert.notEqual(now.DASHBOARD_PASSWORD, old.DASHBOARD_PASSWORD);
    for (const name of SECRETS.filter((n) => n !== 'DASHBOARD_PASSWORD'))
      assert.equal(now[name], old[name], `${name} kept`);
    for (const name of SECRETS) assert.ok(!flagged.stdout.includes(now[name]!), `${name} is not printed`);
    const config = composeConfig(envFile);
    assert.equal(config.status, 0, config.stderr);
    assert.match(config.stdout, /ORTHANC_AET_NAME: FLAGAET/);

    const before = readFileSync(envFile, 'utf8');
    const bad = await run([
      'setup',
      '--yes',
      '--env-path',
      envFile,
      '--aet',
      'A\\B',
      '--dicom-port',
      'http',
      '--destination',
      'X=Y',
      '--replace-secret',
      'NOT_A_SECRET',
    ]);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--aet \(ORTHANC_AET_NAME\): AE title must be/);
    assert.match(bad.stderr, /--dicom-port \(ORTHANC_AET_PORT\): expected a TCP port/);
    assert.match(bad.stderr, /--destination: expected NAME=AET@host:port/);
    assert.match(bad.stderr, /--replace-secret: NOT_A_SECRET is not one of/);
    assert.equal(readFileSync(envFile, 'utf8'), before, 'nothing written');

    // A fresh file from flags alone: every secret generated, and docker-compose accepts it.
    const fresh = path.join(makeTempDir('cli-setup-fresh-'), '.env');
    const first = await run(['setup', '--yes', '--env-path', fresh, '--aet', 'FRESHAET']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /Wrote .*\.env \(mode 600\)/);
    for (const name of SECRETS) assert.match(read(fresh)[name] ?? '', /^[0-9a-f]{64}$/);
    assert.equal(composeConfig(fresh).status, 0);
    // The override that publishes Azurite on loopback for backup and restore (docs/operations.md).
    const forBackup = composeConfig(fresh, 'deploy/backup.compose.yml');
    assert.equal(forBackup.status, 0, forBackup.stderr);
    assert.match(forBackup.stdout, /127\.0\.0\.1:10002:10002/);
    assert.doesNotMatch(composeConfig(fresh).stdout, /10002:10002/, 'unpublished without it');
  });
});
