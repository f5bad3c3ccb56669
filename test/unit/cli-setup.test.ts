/**
 * The parts of `setup`, `backup` and `restore` that need no server: .env editing that keeps comments and
 * order, destination specs checked by the app's own schema, the wizard answered through a stream (bad
 * answers re-asked, secrets kept unless confirmed), table rows kept with their EDM types, and the exit
 * codes of what cannot run.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { parseEnv } from 'node:util';
import { create as createTar } from 'tar';
import { fromStoredEntity, toStoredEntity } from '../../shared/cli/automationState';
import { EnvFile, quote } from '../../shared/cli/envFile';
import type { Io } from '../../shared/cli/io';
import { runCli } from '../../shared/cli/program';
import { parseDestination, SETUP_SECRETS } from '../../shared/cli/setup';
import { checkSetting, ConfigError, loadConfig } from '../../shared/config';

const temp = (prefix: string) => mkdtempSync(join(tmpdir(), prefix));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  const io: Io = { out: (l) => out.push(l), err: (l) => err.push(l) };
  return { out, err, io };
}

/** `setup` answered line by line through a stream, as a terminal would deliver the lines. */
async function wizard(args: string[], answers: string[]) {
  const input = new PassThrough();
  const output = new PassThrough();
  let screen = '';
  output.on('data', (d: Buffer) => (screen += d.toString()));
  input.end(answers.map((a) => `${a}\n`).join(''));
  const { out, err, io } = capture();
  const code = await runCli(['setup', ...args], { io, env: {}, prompts: { input, output } });
  return { code, screen, out, err };
}

describe('.env editing', () => {
  it('changes a value on its own line, appends new ones, keeps comments, blanks and order', () => {
    const text = '# header\n\nA=1\n# about B\nB=two words\nA=dup\n';
    const file = EnvFile.parse(text);
    assert.equal(file.get('A'), 'dup', 'the last assignment wins, as Node reads it');
    assert.equal(file.get('B'), 'two words');
    file.set('A', '3');
    file.set('C', '{"PACS":["PACSAET","10.0.0.5",104]}');
    assert.equal(file.toString(), '# header\n\nA=3\n# about B\nB=two words\nC={"PACS":["PACSAET","10.0.0.5",104]}\n');
    assert.deepEqual(parseEnv(file.toString()), { A: '3', B: 'two words', C: '{"PACS":["PACSAET","10.0.0.5",104]}' });
  });

  it('quotes what Node or compose would otherwise cut or expand, refuses a line break', () => {
    for (const value of ['a#b', ' lead', 'x$HOME', "it's", 'say "hi"', '']) {
      const file = EnvFile.parse('');
      file.set('V', value);
      assert.equal(parseEnv(file.toString()).V, value, `${value} reads back`);
    }
    assert.equal(quote('/srv/automation/storage'), '/srv/automation/storage');
    assert.throws(() => quote('a\nb'), /line break/);
  });
});

describe('setup answers are checked by the app settings schema', () => {
  it('checkSetting gives the message loadConfig gives', () => {
    const alone = checkSetting('ORTHANC_AET_PORT', '70000');
    assert.equal(alone.ok, false);
    assert.throws(
      () => loadConfig({ ORTHANC_AET_PORT: '70000' }),
      (e: unknown) => e instanceof ConfigError && e.problems.some((p) => !alone.ok && p.includes(alone.problem)),
    );
    assert.deepEqual(checkSetting('ORTHANC_AET_PORT', '104'), { ok: true, value: 104 });
    assert.throws(() => checkSetting('NOT_A_SETTING', 'x'), /not a setting/);
  });

  it('parses NAME=AET@host:port, with the reason when it cannot', () => {
    assert.deepEqual(parseDestination('PACS=PACSAET@10.0.0.5:104'), {
      name: 'PACS',
      definition: { AET: 'PACSAET', Host: '10.0.0.5', Port: 104 },
    });
    assert.deepEqual(parseDestination('V6=AE@[fd00::5]:11112'), {
      name: 'V6',
      definition: { AET: 'AE', Host: 'fd00::5', Port: 11112 },
    });
    assert.match((parseDestination('PACS') as { problem: string }).problem, /expected NAME=AET@host:port/);
    assert.match((parseDestination('a b=AE@h:1') as { problem: string }).problem, /letters, digits, _ or -/);
    assert.match((parseDestination('P=WAY_TOO_LONG_AE_TITLE@h:1') as { problem: string }).problem, /AE title/);
    assert.match((parseDestination('P=AE@h:99999') as { problem: string }).problem, /modality 'P'/);
  });
});

describe('autorthanc setup through its prompts', () => {
  it('re-asks a bad answer with the reason, generates every secret, writes mode 600 (exit 0)', async () => {
    const dir = temp('setup-unit-');
    const envFile = join(dir, '.env');
    const r = await wizard(
      ['--env-path', envFile],
      [
        join(dir, 'out'),
        join(dir, 'rules'),
        join(dir, 'dicom'),
        'BAD\\AET',
        'GOODAET',
        'port',
        '104',
        '',
        '',
        '',
        '-PACS',
        'X=Y',
        'AI=AINODE@10.0.0.9:4242',
        '',
        '',
      ],
    );
    assert.equal(r.code, 0, `${r.screen}\n${r.err.join('\n')}`);
    assert.match(r.screen, /AE title must be 1-16 printable characters without backslash; try again/);
    assert.match(r.screen, /expected a TCP port between 1 and 65535, got 'port'; try again/);
    assert.match(r.screen, /✗ expected NAME=AET@host:port/);
    const env = parseEnv(readFileSync(envFile, 'utf8'));
    assert.equal(env.ORTHANC_AET_NAME, 'GOODAET');
    assert.equal(env.ORTHANC_AET_PORT, '104');
    assert.equal(env.ORTHANC_DICOM_MODALITIES, '{"AI":["AINODE","10.0.0.9",4242]}');
    for (const { name } of SETUP_SECRETS) {
      assert.match(env[name] ?? '', /^[0-9a-f]{64}$/, name);
      assert.ok(!r.screen.includes(env[name]!), `${name} never shown`);
    }
    assert.equal(statSync(envFile).mode & 0o777, 0o600);
    assert.ok(existsSync(join(dir, 'out')) && existsSync(join(dir, 'rules')) && existsSync(join(dir, 'dicom')));
  });

  it('keeps existing secrets unless a replacement is confirmed; a weak one is named', async () => {
    const dir = temp('setup-unit-');
    const envFile = join(dir, '.env');
    const strong = 'a'.repeat(10) + '0123456789abcdef0123456789abcdef';
    writeFileSync(
      envFile,
      [
        '# mine',
        `ORTHANC_AUTOMATION_STORAGE_PATH=${join(dir, 'out')}`,
        `ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH=${join(dir, 'rules')}`,
        `ORTHANC_DB_STORAGE_PATH=${join(dir, 'db')}`,
        ...SETUP_SECRETS.map(({ name }) => `${name}=${name === 'POSTGRES_PASSWORD' ? 'short' : strong}`),
        '',
      ].join('\n'),
    );
    // Eight Enters for the questions, one for the destinations, then: keep, replace (y), keep, keep, keep; write.
    const r = await wizard(
      ['--env-path', envFile, '--json'],
      ['', '', '', '', '', '', '', '', '', '', 'y', '', '', '', 'y'],
    );
    assert.equal(r.code, 0, r.screen);
    const env = parseEnv(readFileSync(envFile, 'utf8'));
    assert.notEqual(env.ORTHANC_PASSWORD, strong);
    for (const name of ['AUTOMATION_FUNCTION_KEY', 'DASHBOARD_PASSWORD', 'AUTOMATION_ANONYMISATION_SECRET'])
      assert.equal(env[name], strong, `${name} kept`);
    assert.equal(env.POSTGRES_PASSWORD, 'short', 'a weak one is still not replaced without a yes');
    assert.match(r.screen, /POSTGRES_PASSWORD, the PostgreSQL password .* is set but is 5 bytes/);
    const json = JSON.parse(r.out.join('\n')) as { generatedSecrets: string[]; keptSecrets: string[] };
    assert.deepEqual(json.generatedSecrets, ['ORTHANC_PASSWORD']);
    assert.ok(readFileSync(envFile, 'utf8').startsWith('# mine\n'));
  });

  it('--yes keeps a weak secret but reports it (exit 1); end of input cancels (exit 2)', async () => {
    const dir = temp('setup-unit-');
    const envFile = join(dir, '.env');
    writeFileSync(envFile, 'ORTHANC_PASSWORD=orthanc\n');
    const { io, out } = capture();
    const code = await runCli(
      [
        'setup',
        '--yes',
        '--env-path',
        envFile,
        '--storage-path',
        join(dir, 's'),
        '--rules-path',
        join(dir, 'r'),
        '--dicom-path',
        join(dir, 'd'),
      ],
      {
        io,
        env: {},
      },
    );
    assert.equal(code, 1);
    assert.match(
      out.join('\n'),
      /Problem: ORTHANC_PASSWORD is 7 bytes; .*kept \(replace it with --replace-secret ORTHANC_PASSWORD\)/,
    );
    assert.equal(parseEnv(readFileSync(envFile, 'utf8')).ORTHANC_PASSWORD, 'orthanc');

    const before = readFileSync(envFile, 'utf8');
    const cancelled = await wizard(['--env-path', envFile], ['']);
    assert.equal(cancelled.code, 2);
    assert.match(cancelled.err.join('\n'), /setup cancelled; nothing was written/);
    assert.equal(readFileSync(envFile, 'utf8'), before);
  });
});

describe('backup and restore without storage', () => {
  it('keeps every property with its EDM type', () => {
    const read = {
      etag: 'W/"x"',
      partitionKey: 'job',
      rowKey: 'abc',
      timestamp: '2026-12-02T00:00:00Z',
      n: { value: '5', type: 'Int32' },
      big: { value: '123456789012', type: 'Int64' },
      d: { value: '2026-12-02T06:08:28.560Z', type: 'DateTime' },
      s: { value: 'x', type: 'String' },
      b: { value: 'true', type: 'Boolean' },
      f: { value: '2', type: 'Double' },
      bin: { value: 'AQI=', type: 'Binary' },
    };
    const stored = toStoredEntity(read);
    assert.deepEqual(Object.keys(stored.properties).sort(), ['b', 'big', 'bin', 'd', 'f', 'n', 's']);
    assert.deepEqual(fromStoredEntity(stored), {
      partitionKey: 'job',
      rowKey: 'abc',
      n: 5,
      big: { type: 'Int64', value: '123456789012' },
      d: { type: 'DateTime', value: '2026-12-02T06:08:28.560Z' },
      s: 'x',
      b: true,
      f: { type: 'Double', value: 2 },
      bin: { type: 'Binary', value: 'AQI=' },
    });
  });

  it('exit 2 when it cannot run: no such file, no rules folder, not an archive', async () => {
    const dir = temp('backup-unit-');
    const cases: Array<[string[], RegExp]> = [
      [['restore', join(dir, 'missing.tar.gz')], /does not exist/],
      [['backup', join(dir, 'b.tar.gz'), '--rules', join(dir, 'no-rules')], /the rules folder .* does not exist/],
      [['backup', join(dir, 'nowhere', 'b.tar.gz')], /the folder .* does not exist/],
    ];
    writeFileSync(join(dir, 'text.tar.gz'), 'not an archive');
    // Storage that is not there (a closed loopback port): could not run, no partial file.
    mkdirSync(join(dir, 'rules'));
    const closed =
      'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;TableEndpoint=http://127.0.0.1:1/devstoreaccount1';
    cases.push([
      ['backup', join(dir, 'never.tar.gz'), '--no-env', '--rules', join(dir, 'rules'), '--storage-connection', closed],
      /cannot use Table\/Blob storage at http:\/\/127\.0\.0\.1:1\/devstoreaccount1 \(ECONNREFUSED\)/,
    ]);
    // A well-formed manifest that names a rule file outside the rules folder, and a count that is wrong.
    const crafted = join(dir, 'crafted');
    mkdirSync(join(crafted, 'tables'), { recursive: true });
    writeFileSync(join(crafted, 'tables', 'automationjobs.jsonl'), '');
    writeFileSync(
      join(crafted, 'manifest.json'),
      JSON.stringify({
        format: 'autorthanc-functions-backup',
        formatVersion: 1,
        appVersion: '0.1.0',
        createdAt: new Date().toISOString(),
        rules: { files: ['../evil.json'], masterJson: false },
        env: { included: false, variables: 0, secrets: [] },
        tables: [{ name: 'automationjobs', rows: 3 }],
        containers: [],
      }),
    );
    await createTar({ gzip: true, cwd: crafted, file: join(dir, 'crafted.tar.gz') }, ['manifest.json', 'tables']);
    cases.push([
      ['restore', join(dir, 'crafted.tar.gz')],
      /does not match its manifest[\s\S]*0 rows, the manifest says 3[\s\S]*'\.\.\/evil\.json' leaves the rules folder/,
    ]);
    cases.push([['restore', join(dir, 'text.tar.gz')], /is not a readable \.tar\.gz/]);
    for (const [argv, message] of cases) {
      const { io, err, out } = capture();
      assert.equal(await runCli(['--json', ...argv], { io, env: {} }), 2, argv.join(' '));
      assert.match(err.join('\n'), message);
      assert.match((JSON.parse(out.join('\n')) as { error: string }).error, message, '--json: the error as JSON');
    }
    assert.ok(!existsSync(join(dir, 'never.tar.gz')), 'no partial backup left');
  });
});
