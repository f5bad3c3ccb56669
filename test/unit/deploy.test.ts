/**
 * The deployment files, validated statically (no Docker engine runs here): Debian's docker-compose
 * resolves docker-compose.yml with .env.example, every variable is documented, the Dockerfile matches
 * package.json, Orthanc's config is valid JSON under compose's environment, and the small scripts the
 * containers run at start (key sync, placeholder checks) and deploy/generate-keys.sh behave.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { parse } from 'yaml';
import { MAX_JSON_BODY_BYTES } from '../../shared/azure-functions/http';
import { ENVIRONMENT_VARIABLES } from '../../shared/config';
import { makeTempDir, requireBinary } from '../support/process';
import { orthancDicomAccessEnv } from '../../shared/orthanc/peers';
import { postgresIndexEnv } from '../support/orthanc';

const REPO = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');
/** Where settings are documented: the README names the main ones, the guides under docs/ all of them. */
const GUIDES = ['README.md', 'docs/deployment.md', 'docs/operations.md'];

interface ComposeService {
  environment?: Record<string, string>;
  volumes?: string[];
  build?: { context: string; dockerfile: string };
  entrypoint?: string[];
}

function composeConfig(envFileText: string): { status: number | null; stdout: string; stderr: string } {
  const binary = requireBinary('docker-compose', 'docker-compose');
  const dir = makeTempDir('compose-env-');
  const envFile = path.join(dir, 'env');
  writeFileSync(envFile, envFileText);
  const result = spawnSync(
    binary,
    ['-f', path.join(REPO, 'docker-compose.yml'), '--project-directory', REPO, '--env-file', envFile, 'config'],
    { encoding: 'utf8', env: { PATH: process.env.PATH } },
  );
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function envExample(): string {
  return read('.env.example');
}

/** Orthanc's `${VAR}` / `${VAR:-default}` substitution, as it applies it to the raw file. */
function orthancSubstitute(text: string, env: Record<string, string | undefined>): string {
  // Defaults may hold one level of braces, e.g. ${ORTHANC_DICOM_MODALITIES:-{}} (verified on Orthanc 1.10.1).
  return text.replace(
    /\$\{([A-Za-z0-9_]+)(?::-((?:[^{}]|\{[^{}]*\})*))?\}/g,
    (_m, name: string, fallback?: string) => env[name] ?? fallback ?? '',
  );
}

describe('docker-compose.yml', () => {
  it('resolves with .env.example under Debian docker-compose, without errors or warnings', () => {
    const { status, stdout, stderr } = composeConfig(envExample());
    assert.equal(status, 0, stderr);
    assert.doesNotMatch(stderr, /WARN|not set/i, stderr);
    const services = Object.keys((parse(stdout) as { services: object }).services).sort();
    assert.deepEqual(services, ['azurite', 'functions', 'nginx', 'orthanc', 'postgres', 'viewer']);
  });

  it('lets the function app scale out (docker compose up --scale functions=N): nothing per replica', () => {
    const functions = services().functions as ComposeService & { ports?: unknown; container_name?: string };
    assert.equal(functions.ports, undefined, 'no published port: replicas would clash on it');
    assert.equal(functions.container_name, undefined, 'no container_name: replicas need their own names');
    // One host id for all replicas: they share the timers' singleton leases and schedule status.
    assert.equal(functions.environment?.AzureFunctionsWebHost__hostid, 'autorthanc-functions');
    // Host folders (bind mounts) that every replica writes: a step may run on another replica than
    // the one before it (the download's staging read by the anonymise step, the .WORKING folder).
    const mounts = new Map((functions.volumes ?? []).map((v) => [String(v).split(':')[1], String(v)]));
    for (const shared of ['/automation/storage', '/automation/staging', '/azure-functions-host/Secrets'])
      assert.match(mounts.get(shared) ?? '', new RegExp(`^/[^:]*:${shared}:rw$`), `${shared} is a shared host folder`);
  });

  it('refuses to start without the function key, naming the variable and the fix', () => {
    const { status, stderr } = composeConfig(envExample().replace(/^AUTOMATION_FUNCTION_KEY=.*$/m, ''));
    assert.notEqual(status, 0);
    assert.match(stderr, /deploy\/generate-keys\.sh or set AUTOMATION_FUNCTION_KEY/);
  });

  it('documents every variable it uses in .env.example and the guides (README, deployment, operations)', () => {
    // Uses only: comments are not uses, and $${...} is expanded inside the container, not by compose.
    const compose = read('docker-compose.yml')
      .split('\n')
      .filter((line) => !line.trim().startsWith('#'))
      .join('\n')
      .replace(/\$\$\{[^}]*\}/g, '');
    const used = [...new Set([...compose.matchAll(/\$\{([A-Za-z0-9_]+)/g)].map((m) => m[1]))].sort();
    assert.ok(used.length > 15, `found ${used.length} variables`);
    const example = envExample();
    const guide = GUIDES.map(read).join('\n');
    for (const variable of used) {
      assert.match(example, new RegExp(`^#? ?${variable}=`, 'm'), `${variable} is in .env.example`);
      assert.ok(guide.includes(`\`${variable}\``), `${variable} is documented in ${GUIDES.join(', ')}`);
    }
  });

  it('documents every setting the function app reads in the Settings table of docs/operations.md', () => {
    const operations = read('docs/operations.md');
    const settings = operations.slice(operations.indexOf('\n## Settings'));
    assert.ok(settings.length > 1000, 'docs/operations.md has a Settings section');
    const undocumented = ENVIRONMENT_VARIABLES.filter((v) => !settings.includes(`\`${v}\``));
    assert.deepEqual(undocumented, [], 'settings missing from docs/operations.md, Settings');
  });

  it('passes every setting the function app reads to its container (so .env can set it)', () => {
    const functions = (parse(composeConfig(envExample()).stdout) as { services: Record<string, ComposeService> })
      .services.functions;
    // The local stack's ports (compose sets ORTHANC_URL) and Orthanc-side settings the app only defaults.
    const notForTheApp = new Set([
      'ORTHANC_HTTP_PORT',
      'FUNCTIONS_HTTP_PORT',
      'ORTHANC_WEB_PORT',
      'ORTHANC_DISPLAY_NAME',
      'ORTHANC_AUTHENTICATION_ENABLED',
    ]);
    const missing = ENVIRONMENT_VARIABLES.filter((v) => !notForTheApp.has(v) && !(v in (functions.environment ?? {})));
    assert.deepEqual(missing, []);
  });

  it('accepts both spellings of the DICOM storage path, the corrected one winning', () => {
    const orthancOf = (text: string) =>
      (parse(composeConfig(text).stdout) as { services: Record<string, ComposeService> }).services.orthanc;
    const legacy = orthancOf(`${envExample()}\nORTAHNC_DB_STORAGE_PATH=/data/legacy\n`);
    assert.ok(legacy.volumes?.some((v) => v.startsWith('/data/legacy:/storage/legacy')));
    assert.equal(legacy.environment?.ORTHANC_DB_STORAGE_PATH ?? '', '');
    const both = orthancOf(
      `${envExample()}\nORTAHNC_DB_STORAGE_PATH=/data/legacy\nORTHANC_DB_STORAGE_PATH=/data/new\n`,
    );
    assert.ok(both.volumes?.some((v) => v.startsWith('/data/new:/storage/new')));
    assert.equal(both.environment?.ORTHANC_DB_STORAGE_PATH, '/data/new');
    // The entrypoint picks /storage/new only when ORTHANC_DB_STORAGE_PATH is set.
    // `config` prints the compose-escaped form ($$); the container receives single dollars.
    const script = (both.entrypoint?.at(-1) ?? '').replace(/\$\$/g, '$');
    const secrets = {
      ORTHANC_PASSWORD: 'p4ssw0rd',
      ORTHANC_POSTGRESQL_PASSWORD: 'pg',
      AUTOMATION_FUNCTION_KEY: 'k'.repeat(20),
    };
    const pick = (value: string) =>
      execFileSync('sh', ['-c', `${script.replace(/exec Orthanc.*$/, 'echo $ORTHANC_STORAGE_DIR')}`], {
        env: { PATH: process.env.PATH, ...secrets, ORTHANC_DB_STORAGE_PATH: value },
        encoding: 'utf8',
      }).trim();
    assert.equal(pick(''), '/storage/legacy');
    assert.equal(pick('/data/new'), '/storage/new');
    // A sender list closes storing and echo to others, as orthancDicomAccessEnv does for npm start and the tests.
    const access = (value: string) =>
      execFileSync(
        'sh',
        [
          '-c',
          `${script.replace(/exec Orthanc.*$/, 'echo "$ORTHANC_DICOM_ALWAYS_ALLOW_STORE $ORTHANC_DICOM_ALWAYS_ALLOW_ECHO"')}`,
        ],
        { env: { PATH: process.env.PATH, ...secrets, ORTHANC_ALLOWED_SENDERS: value }, encoding: 'utf8' },
      ).trim();
    for (const value of ['', 'MRI|MRI_AET|10.0.0.7']) {
      const derived = orthancDicomAccessEnv({ ORTHANC_ALLOWED_SENDERS: value });
      assert.equal(
        access(value),
        value === '' ? '' : `${derived.ORTHANC_DICOM_ALWAYS_ALLOW_STORE} ${derived.ORTHANC_DICOM_ALWAYS_ALLOW_ECHO}`,
        `ORTHANC_ALLOWED_SENDERS='${value}'`,
      );
    }
  });

  it('gives Orthanc a config that is valid JSON, with the PostgreSQL index the tests also use', () => {
    const { stdout } = composeConfig(envExample());
    const orthanc = (parse(stdout) as { services: Record<string, ComposeService> }).services.orthanc;
    const env = orthanc.environment ?? {};
    const config = JSON.parse(
      orthancSubstitute(read('deploy/orthanc/orthanc.json'), { ...env, ORTHANC_STORAGE_DIR: '/storage/legacy' }),
    ) as Record<string, unknown>;
    assert.equal(config.StableAge, 300);
    assert.equal(config.DicomAet, 'AUTORTHANCAET');
    assert.equal(config.DicomPort, 4006);
    assert.deepEqual(config.Plugins, [
      '/usr/share/orthanc/plugins-available/libOrthancPostgreSQLIndex.so',
      '/usr/share/orthanc/plugins-available/libOrthancDicomWeb.so',
      '/usr/share/orthanc/plugins-available/libModalityWorklists.so',
    ]);
    assert.deepEqual(config.Worklists, {
      Enable: true,
      Database: '/worklists',
      FilterIssuerAet: true,
      LimitAnswers: 0,
    });
    const postgres = config.PostgreSQL as Record<string, unknown>;
    assert.equal(postgres.Host, 'postgres');
    assert.equal(postgres.Database, 'orthanc');
    assert.equal(postgres.Username, 'orthanc');
    assert.equal(postgres.Password, 'replace-me', 'the PostgreSQL password reaches Orthanc from .env');
    assert.equal(config.LuaScripts && (config.LuaScripts as string[])[0], '/etc/autorthanc/automation.lua');
    assert.deepEqual(config.RegisteredUsers, { orthanc: 'replace-me' });
    assert.equal((config.PostgreSQL as { EnableIndex: boolean }).EnableIndex, true);
    // Destinations reach Orthanc through the app with explicit permissions (the legacy array form allows everything).
    assert.deepEqual(config.DicomModalities, {});
    assert.equal(config.DicomCheckModalityHost, true);
    assert.deepEqual(
      [
        config.DicomAlwaysAllowFind,
        config.DicomAlwaysAllowFindWorklist,
        config.DicomAlwaysAllowGet,
        config.DicomAlwaysAllowMove,
      ],
      [false, false, false, false],
    );
    assert.deepEqual(
      [config.DicomAlwaysAllowStore, config.DicomAlwaysAllowEcho],
      [true, true],
      'without ORTHANC_ALLOWED_SENDERS any node may store',
    );
    const testKeys = Object.keys(
      postgresIndexEnv({ host: 'h', port: 1, database: 'd', username: 'u', password: 'p' }, '/x.so'),
    ).sort();
    const composeKeys = Object.keys(env)
      .filter((k) => k === 'ORTHANC_PLUGINS' || k.startsWith('ORTHANC_POSTGRESQL_'))
      .sort();
    assert.deepEqual(composeKeys, testKeys, 'compose and the test harness set the same PostgreSQL settings');
  });
});

describe('function app image', () => {
  const dockerfile = read('deploy/functions/Dockerfile');
  const pkg = JSON.parse(read('package.json')) as { main: string; scripts: Record<string, string> };

  it('runs on the official host image from /home/site/wwwroot with production dependencies only', () => {
    assert.match(dockerfile, /^FROM mcr\.microsoft\.com\/azure-functions\/node:4-node22$/m);
    assert.match(dockerfile, /^WORKDIR \/home\/site\/wwwroot$/m);
    assert.match(dockerfile, /^RUN npm ci --omit=dev/m);
    assert.match(dockerfile, /^COPY package\.json package-lock\.json host\.json \.\/$/m);
  });

  it('copies the compiled files package.json main points at', () => {
    const outDir = (JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { outDir: string } }).compilerOptions
      .outDir;
    assert.equal(pkg.main, `${outDir}/functions/*.js`);
    assert.match(dockerfile, new RegExp(`^COPY --from=build /src/${outDir} \\./${outDir}$`, 'm'));
    assert.match(dockerfile, /^RUN npm run build$/m);
    for (const folder of (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include) {
      assert.match(dockerfile, new RegExp(`^COPY ${folder} \\./${folder}$`, 'm'), `the build stage copies ${folder}/`);
    }
  });

  it('is built by compose from that Dockerfile with a fixed host id', () => {
    const functions = (parse(composeConfig(envExample()).stdout) as { services: Record<string, ComposeService> })
      .services.functions;
    assert.equal(functions.build?.dockerfile, 'deploy/functions/Dockerfile');
    assert.equal(functions.environment?.AzureFunctionsWebHost__hostid, 'autorthanc-functions');
    assert.equal(functions.environment?.AzureWebJobsSecretStorageType, 'files');
  });

  it('compiles and ships only functions/ and shared/: no devhost, scripts or tests', () => {
    const files = buildFiles();
    assert.ok(
      files.some((f) => f.startsWith('functions/')) && files.some((f) => f.startsWith('shared/')),
      'the build has the app',
    );
    assert.deepEqual(
      files.filter((f) => !/^(functions|shared)\//.test(f)),
      [],
      'tsconfig.build.json compiles nothing else',
    );
    for (const folder of ['devhost', 'scripts', 'test', 'bench']) {
      assert.doesNotMatch(
        dockerfile,
        new RegExp(`^(COPY|ADD)\\b.*\\s${folder}\\b`, 'm'),
        `the image copies no ${folder}/`,
      );
      assert.ok(
        read('.dockerignore').split('\n').includes(folder),
        `.dockerignore keeps ${folder}/ out of the build context`,
      );
    }
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    assert.match(runtime, /^FROM mcr\.microsoft\.com\/azure-functions\//m, 'the last stage is the runtime image');
    for (const install of runtime.match(/\bnpm (ci|install|i)\b[^\n&]*/g) ?? [])
      assert.match(install, /--omit=dev/, `runtime installs without dev dependencies: ${install}`);
    assert.deepEqual(
      runtime.match(/^COPY --from=\S+ .*$/gm),
      ['COPY --from=build /src/dist ./dist'],
      'only the compiled output comes from the build stage',
    );
  });

  it('needs at run time only what production dependencies provide', () => {
    const pkgDeps = JSON.parse(read('package.json')) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    const builtins = new Set(builtinModules);
    const packages = new Set<string>();
    const compilerOptions = buildConfig().options;
    for (const file of buildFiles().filter((f) => !f.endsWith('.d.ts') && f.endsWith('.ts'))) {
      // The emitted CommonJS, as dist/ gets it: imports used only as types are gone.
      const js = ts.transpileModule(read(file), { compilerOptions, fileName: path.join(REPO, file) }).outputText;
      for (const [, specifier] of js.matchAll(/\b(?:require|import)\(\s*["'`]([^"'`]+)["'`]\s*\)/g)) {
        if (specifier.startsWith('.')) {
          const target = path.relative(REPO, path.resolve(REPO, path.dirname(file), specifier));
          assert.match(target, /^(functions|shared)\//, `${file} imports ${specifier}, outside what the image ships`);
        } else if (!builtins.has(specifier.replace(/^node:/, ''))) {
          packages.add(
            specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0],
          );
        }
      }
    }
    assert.ok(
      packages.has('@azure/functions') && packages.has('zod'),
      `the scan sees the app's imports: ${[...packages].join(', ')}`,
    );
    for (const name of packages)
      assert.ok(
        name in pkgDeps.dependencies,
        `${name} is needed at run time, so it belongs in dependencies${name in pkgDeps.devDependencies ? ', not devDependencies' : ''}`,
      );
  });
});

/** tsconfig.build.json as tsc reads it (extends resolved). */
function buildConfig(): ts.ParsedCommandLine {
  const { config, error } = ts.readConfigFile(path.join(REPO, 'tsconfig.build.json'), (file) =>
    ts.sys.readFile(file),
  ) as { config: unknown; error?: unknown };
  assert.equal(error, undefined, 'tsconfig.build.json parses');
  return ts.parseJsonConfigFileContent(config, ts.sys, REPO);
}

/** The files `npm run build` compiles, relative to the repository. */
function buildFiles(): string[] {
  return buildConfig()
    .fileNames.map((f) => path.relative(REPO, f))
    .sort();
}

/** The compose file as `docker-compose config` resolves it with the given .env text. */
function services(
  envText = envExample(),
): Record<string, ComposeService & { image?: string; ports?: string[]; command?: string[] }> {
  const { status, stdout, stderr } = composeConfig(envText);
  assert.equal(status, 0, stderr);
  return (parse(stdout) as { services: Record<string, ComposeService> }).services;
}

describe('secrets and start-up checks', () => {
  it('Orthanc refuses to start with a placeholder secret, and starts with real ones', () => {
    const script = (services().orthanc.entrypoint?.at(-1) ?? '')
      .replace(/\$\$/g, '$')
      .replace(/exec Orthanc.*$/, 'echo started');
    const runWith = (env: Record<string, string>) =>
      spawnSync('sh', ['-c', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    const good = {
      ORTHANC_PASSWORD: 'a-real-password',
      ORTHANC_POSTGRESQL_PASSWORD: 'another-one',
      AUTOMATION_FUNCTION_KEY: 'k'.repeat(40),
    };
    assert.equal(runWith(good).stdout.trim(), 'started');
    for (const name of Object.keys(good)) {
      const refused = runWith({ ...good, [name]: 'replace-me' });
      assert.equal(refused.status, 1, `${name}=replace-me is refused`);
      assert.match(refused.stderr, /deploy\/generate-keys\.sh/);
      assert.equal(runWith({ ...good, [name]: '' }).status, 1, `an empty ${name} is refused`);
    }
  });

  it('nginx refuses placeholders, values that would break its config, an unhashed login and missing TLS files', () => {
    const check = path.join(REPO, 'deploy/nginx/check-env.sh');
    const dir = makeTempDir('nginx-check-');
    const htpasswd = path.join(dir, 'htpasswd');
    const tlsDir = path.join(dir, 'tls');
    mkdirSync(tlsDir);
    writeFileSync(path.join(tlsDir, 'certificate.pem'), 'CERT');
    writeFileSync(path.join(tlsDir, 'key.pem'), 'KEY');
    const files = { AUTORTHANC_HTPASSWD: htpasswd, AUTORTHANC_TLS_DIR: tlsDir };
    const good = {
      AUTOMATION_FUNCTION_KEY: 'k'.repeat(40),
      DASHBOARD_USER: 'operator',
      ORTHANC_HTTPS_PORT: '443',
      OHIF_PORT: '3000',
    };
    const runWith = (env: Record<string, string>, file = 'operator:$6$salt$hash\n') => {
      writeFileSync(htpasswd, file);
      return spawnSync('sh', [check], { env: { PATH: process.env.PATH, ...files, ...env }, encoding: 'utf8' });
    };
    assert.equal(runWith(good).status, 0, runWith(good).stderr);
    assert.equal(
      runWith({ ...good, AUTOMATION_MASTER_KEY: 'M'.repeat(43) + '=' }).status,
      0,
      'a base64 master key is fine',
    );
    const refused: [string, Record<string, string>, string?][] = [
      ['placeholder key', { ...good, AUTOMATION_FUNCTION_KEY: 'replace-me' }],
      ['empty key', { ...good, AUTOMATION_FUNCTION_KEY: '' }],
      ['a key that would break the nginx map', { ...good, AUTOMATION_FUNCTION_KEY: 'k'.repeat(20) + '"; x' }],
      ['a master key with a nginx variable in it', { ...good, AUTOMATION_MASTER_KEY: '$http_host' + 'x'.repeat(20) }],
      ['a placeholder master key', { ...good, AUTOMATION_MASTER_KEY: 'replace-me-please-0123' }],
      ['a colon in the user', { ...good, DASHBOARD_USER: 'a:b' }],
      ['a port that is not a number', { ...good, ORTHANC_HTTPS_PORT: '443; include x' }],
      ['a plain-text password', good, 'operator:{PLAIN}secret\n'],
      ['an MD5 password', good, 'operator:$apr1$abc$def\n'],
      ['a password file for another user', good, 'admin:$6$salt$hash\n'],
      ['an empty password file', good, ''],
    ];
    for (const [what, env, file] of refused) {
      const result = runWith(env, file);
      assert.equal(result.status, 1, `${what} is refused`);
      assert.match(result.stderr, /autorthanc-functions: /, what);
    }
    assert.match(
      runWith(good, 'operator:{PLAIN}secret\n').stderr,
      /deploy\/generate-keys\.sh/,
      'the message names the fix',
    );
    rmSync(path.join(tlsDir, 'key.pem'));
    mkdirSync(path.join(tlsDir, 'key.pem'));
    const noKey = runWith(good);
    assert.equal(noKey.status, 1, 'a folder Docker made in place of a missing key is refused');
    assert.match(noKey.stderr, /TLS_CERTIFICATE_KEY_PATH/);
    // The mounted name must sort before the image's own 20-envsubst script and be executable in git.
    const mount = services().nginx.volumes?.find((v) => v.includes('check-env.sh')) ?? '';
    assert.match(mount, /:\/docker-entrypoint\.d\/0\d-[^/]+\.sh:ro$/);
    const mode = execFileSync(
      'git',
      ['ls-files', '-s', 'deploy/nginx/check-env.sh', 'deploy/functions/start.sh', 'deploy/generate-keys.sh'],
      { cwd: REPO, encoding: 'utf8' },
    );
    for (const line of mode.trim().split('\n')) assert.match(line, /^100755 /, `executable in git: ${line}`);
  });

  it('the function app writes the key from .env into the host secrets file, keeping other keys', () => {
    const dir = makeTempDir('secrets-');
    const sync = (env: Record<string, string>) =>
      spawnSync(process.execPath, [path.join(REPO, 'deploy/functions/sync-keys.js')], {
        env: { PATH: process.env.PATH, FUNCTIONS_SECRETS_PATH: dir, ...env },
        encoding: 'utf8',
      });
    const hostJson = () =>
      JSON.parse(readFileSync(path.join(dir, 'host.json'), 'utf8')) as {
        masterKey: { value: string };
        functionKeys: { name: string; value: string }[];
      };
    const first = sync({ AUTOMATION_FUNCTION_KEY: 'A'.repeat(40) });
    assert.equal(first.status, 0, first.stderr);
    const created = hostJson();
    assert.deepEqual(created.functionKeys, [{ name: 'default', value: 'A'.repeat(40), encrypted: false }]);
    assert.ok(created.masterKey.value.length >= 32, 'a random master key is made for a new file');
    // An operator (or the host) added a key; the function key changes in .env: both survive correctly.
    writeFileSync(
      path.join(dir, 'host.json'),
      JSON.stringify({
        ...created,
        functionKeys: [...created.functionKeys, { name: 'ci', value: 'C'.repeat(30), encrypted: false }],
      }),
    );
    assert.equal(sync({ AUTOMATION_FUNCTION_KEY: 'B'.repeat(40) }).status, 0);
    const updated = hostJson();
    assert.deepEqual(
      updated.functionKeys.map((k) => [k.name, k.value]),
      [
        ['default', 'B'.repeat(40)],
        ['ci', 'C'.repeat(30)],
      ],
    );
    assert.equal(updated.masterKey.value, created.masterKey.value, 'the master key is kept');
    assert.equal(sync({ AUTOMATION_FUNCTION_KEY: 'B'.repeat(40), AUTOMATION_MASTER_KEY: 'M'.repeat(40) }).status, 0);
    assert.equal(hostJson().masterKey.value, 'M'.repeat(40));
    for (const bad of ['', 'replace-me', 'short', 'has spaces in it 1234567']) {
      const refused = sync({ AUTOMATION_FUNCTION_KEY: bad });
      assert.equal(refused.status, 1, `'${bad}' is refused`);
      assert.match(refused.stderr, /AUTOMATION_FUNCTION_KEY/);
    }
    assert.equal(hostJson().functionKeys[0].value, 'B'.repeat(40), 'a refused key leaves the file alone');
  });

  it('deploy/generate-keys.sh fills every placeholder once, keeps the rest of .env, and the result passes compose', () => {
    const root = makeTempDir('generate-keys-');
    copyFileSync(path.join(REPO, '.env.example'), path.join(root, '.env.example'));
    const generate = (...args: string[]) =>
      spawnSync('bash', [path.join(REPO, 'deploy/generate-keys.sh'), ...args], {
        env: {
          PATH: process.env.PATH,
          AUTORTHANC_ROOT: root,
          AUTORTHANC_TLS_NAMES: 'localhost 127.0.0.1 pacs.example.org',
        },
        encoding: 'utf8',
      });
    const first = generate();
    assert.equal(first.status, 0, first.stderr);
    const envText = readFileSync(path.join(root, '.env'), 'utf8');
    const value = (text: string, name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(text)?.[1] ?? '';
    const secretNames = ['AUTOMATION_FUNCTION_KEY', 'DASHBOARD_PASSWORD', 'ORTHANC_PASSWORD', 'POSTGRES_PASSWORD'];
    for (const name of secretNames) assert.match(value(envText, name), /^[A-Za-z0-9]{40}$/, `${name} generated`);
    assert.equal(new Set(secretNames.map((n) => value(envText, n))).size, 4, 'four different values');
    assert.match(
      value(envText, 'AUTOMATION_ANONYMISATION_SECRET'),
      /^[0-9a-f]{64}$/,
      'the anonymisation secret: 32 random bytes',
    );
    assert.match(first.stdout, /BACK UP AUTOMATION_ANONYMISATION_SECRET/);
    assert.equal(envText.split('\n').length, envExample().split('\n').length, 'no line added or lost');
    assert.equal(value(envText, 'ORTHANC_AET_NAME'), 'AUTORTHANCAET');
    assert.equal(execFileSync('stat', ['-c', '%a', path.join(root, '.env')], { encoding: 'utf8' }).trim(), '600');
    // What nginx reads: the login hashed (it verifies with the .env password), a self-signed pair, said so.
    const generated = path.join(root, 'deploy/generated');
    const htpasswd = () => readFileSync(path.join(generated, 'htpasswd'), 'utf8');
    const verifies = (password: string) => {
      const [user, hash] = htpasswd().trim().split(':');
      const again = execFileSync('openssl', ['passwd', '-6', '-salt', hash.split('$')[2], '-stdin'], {
        input: `${password}\n`,
        encoding: 'utf8',
      }).trim();
      return user === 'operator' && hash.startsWith('$6$') && again === hash;
    };
    assert.ok(verifies(value(envText, 'DASHBOARD_PASSWORD')), 'sha512-crypt of DASHBOARD_PASSWORD');
    assert.ok(!htpasswd().includes(value(envText, 'DASHBOARD_PASSWORD')));
    assert.match(first.stdout, /made a SELF-SIGNED TLS certificate/);
    const certificate = execFileSync(
      'openssl',
      ['x509', '-in', path.join(generated, 'self-signed.crt'), '-noout', '-ext', 'subjectAltName'],
      { encoding: 'utf8' },
    );
    assert.match(certificate, /DNS:localhost, IP Address:127\.0\.0\.1, DNS:pacs\.example\.org/);
    const modes = execFileSync(
      'stat',
      ['-c', '%a %n', generated, path.join(generated, 'self-signed.key'), path.join(generated, 'htpasswd')],
      { encoding: 'utf8' },
    );
    assert.deepEqual(
      modes
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[0]),
      ['700', '600', '644'],
      'private folder, private key; the htpasswd is read by nginx workers',
    );
    // nginx's start-up check accepts what the script wrote, mounted where compose mounts it.
    const tlsDir = makeTempDir('generated-tls-');
    symlinkSync(path.join(generated, 'self-signed.crt'), path.join(tlsDir, 'certificate.pem'));
    symlinkSync(path.join(generated, 'self-signed.key'), path.join(tlsDir, 'key.pem'));
    const nginxEnv = {
      AUTOMATION_FUNCTION_KEY: value(envText, 'AUTOMATION_FUNCTION_KEY'),
      DASHBOARD_USER: 'operator',
      ORTHANC_HTTPS_PORT: '443',
      OHIF_PORT: '3000',
    };
    const check = spawnSync('sh', [path.join(REPO, 'deploy/nginx/check-env.sh')], {
      env: {
        PATH: process.env.PATH,
        ...nginxEnv,
        AUTORTHANC_HTPASSWD: path.join(generated, 'htpasswd'),
        AUTORTHANC_TLS_DIR: tlsDir,
      },
      encoding: 'utf8',
    });
    assert.equal(check.status, 0, check.stderr);
    const files = () =>
      ['htpasswd', 'self-signed.crt', 'self-signed.key'].map((f) => readFileSync(path.join(generated, f), 'utf8'));
    const before = files();
    // Re-running changes nothing; --rotate renews only the key and the dashboard password (and its hash).
    const again = generate();
    assert.equal(again.status, 0);
    assert.doesNotMatch(again.stdout, /SELF-SIGNED|BACK UP|htpasswd/);
    assert.equal(readFileSync(path.join(root, '.env'), 'utf8'), envText);
    assert.deepEqual(files(), before);
    assert.equal(generate('--rotate').status, 0);
    const rotated = readFileSync(path.join(root, '.env'), 'utf8');
    assert.notEqual(value(rotated, 'AUTOMATION_FUNCTION_KEY'), value(envText, 'AUTOMATION_FUNCTION_KEY'));
    assert.notEqual(value(rotated, 'DASHBOARD_PASSWORD'), value(envText, 'DASHBOARD_PASSWORD'));
    assert.ok(verifies(value(rotated, 'DASHBOARD_PASSWORD')), 'the htpasswd follows the new password');
    assert.equal(
      value(rotated, 'POSTGRES_PASSWORD'),
      value(envText, 'POSTGRES_PASSWORD'),
      'PostgreSQL keeps its password',
    );
    assert.equal(
      value(rotated, 'AUTOMATION_ANONYMISATION_SECRET'),
      value(envText, 'AUTOMATION_ANONYMISATION_SECRET'),
      'pseudonyms depend on it: never rotated',
    );
    assert.equal(files()[1], before[1], 'the certificate is kept');
    // The generated .env is accepted by compose and the start-up checks above.
    const resolved = services(rotated);
    assert.equal(resolved.functions.environment?.AUTOMATION_FUNCTION_KEY, value(rotated, 'AUTOMATION_FUNCTION_KEY'));
    assert.equal(
      resolved.functions.environment?.AUTOMATION_ANONYMISATION_SECRET,
      value(rotated, 'AUTOMATION_ANONYMISATION_SECRET'),
    );
    assert.equal(
      resolved.orthanc.environment?.AUTOMATION_FUNCTION_KEY,
      value(rotated, 'AUTOMATION_FUNCTION_KEY'),
      'Lua and the host share one key',
    );
    assert.equal(
      resolved.nginx.environment?.AUTOMATION_FUNCTION_KEY,
      value(rotated, 'AUTOMATION_FUNCTION_KEY'),
      'nginx and the host share one key',
    );
    assert.ok(!('DASHBOARD_PASSWORD' in (resolved.nginx.environment ?? {})), 'nginx gets only the hash');
    const mounts = resolved.nginx.volumes ?? [];
    for (const [file, target] of [
      ['htpasswd', '/etc/nginx/autorthanc/htpasswd'],
      ['self-signed.crt', '/etc/nginx/tls/certificate.pem'],
      ['self-signed.key', '/etc/nginx/tls/key.pem'],
    ]) {
      assert.ok(
        mounts.includes(`${path.join(REPO, 'deploy/generated', file)}:${target}:ro`),
        `nginx mounts the generated ${file}`,
      );
    }
  });

  it('deploy/generate-keys.sh keeps an existing anonymisation secret, replaces only placeholders, and checks a site certificate', () => {
    const root = makeTempDir('generate-keys-site-');
    const generate = () =>
      spawnSync('bash', [path.join(REPO, 'deploy/generate-keys.sh')], {
        env: { PATH: process.env.PATH, AUTORTHANC_ROOT: root },
        encoding: 'utf8',
      });
    const value = (name: string) =>
      new RegExp(`^${name}=(.*)$`, 'm').exec(readFileSync(path.join(root, '.env'), 'utf8'))?.[1] ?? '';
    const keep = 'a-site-secret-that-must-never-change-0123456789';
    writeFileSync(
      path.join(root, '.env'),
      envExample().replace(/^AUTOMATION_ANONYMISATION_SECRET=.*$/m, `AUTOMATION_ANONYMISATION_SECRET=${keep}`),
    );
    assert.equal(generate().status, 0);
    assert.equal(value('AUTOMATION_ANONYMISATION_SECRET'), keep);
    writeFileSync(
      path.join(root, '.env'),
      envExample().replace(
        /^AUTOMATION_ANONYMISATION_SECRET=.*$/m,
        'AUTOMATION_ANONYMISATION_SECRET=replace-me-with-a-secret',
      ),
    );
    assert.equal(generate().status, 0);
    assert.match(value('AUTOMATION_ANONYMISATION_SECRET'), /^[0-9a-f]{64}$/, 'a placeholder counts as missing');

    // The site's own pair: used as it is, never replaced by a self-signed one; a wrong pair is refused.
    const site = path.join(root, 'site');
    mkdirSync(site);
    const makePair = (name: string) =>
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=pacs',
          '-keyout',
          path.join(site, `${name}.key`),
          '-out',
          path.join(site, `${name}.crt`),
        ],
        { stdio: 'ignore' },
      );
    makePair('a');
    makePair('b');
    const withCertificate = (certificate: string, key: string) => {
      writeFileSync(
        path.join(root, '.env'),
        readFileSync(path.join(root, '.env'), 'utf8')
          .replace(/^TLS_CERTIFICATE_PATH=.*$/m, `TLS_CERTIFICATE_PATH=${certificate}`)
          .replace(/^TLS_CERTIFICATE_KEY_PATH=.*$/m, `TLS_CERTIFICATE_KEY_PATH=${key}`),
      );
      return generate();
    };
    rmSync(path.join(root, 'deploy/generated'), { recursive: true });
    const ok = withCertificate('./site/a.crt', path.join(site, 'a.key'));
    assert.equal(ok.status, 0, ok.stderr);
    assert.doesNotMatch(ok.stdout, /SELF-SIGNED/);
    assert.ok(
      !existsSync(path.join(root, 'deploy/generated/self-signed.crt')),
      'no self-signed certificate beside a site certificate',
    );
    const mismatch = withCertificate('./site/a.crt', './site/b.key');
    assert.equal(mismatch.status, 1);
    assert.match(mismatch.stderr, /does not belong to the certificate/);
    const missing = withCertificate('./site/none.crt', './site/a.key');
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /TLS_CERTIFICATE_PATH: .*none\.crt does not exist/);
    const half = withCertificate('./site/a.crt', '');
    assert.equal(half.status, 1);
    assert.match(half.stderr, /both TLS_CERTIFICATE_PATH and TLS_CERTIFICATE_KEY_PATH, or neither/);
  });
});

describe('nginx, Orthanc Explorer extension and viewer files', () => {
  const template = read('deploy/nginx/default.conf.template');

  it('fills only variables that compose gives the nginx container, and keeps the password out of it', () => {
    const env = services().nginx.environment ?? {};
    const names = [...read('deploy/nginx/default.conf.template').matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
    assert.deepEqual([...new Set(names)].sort(), [
      'AUTOMATION_FUNCTION_KEY',
      'AUTOMATION_MASTER_KEY',
      'OHIF_PORT',
      'ORTHANC_HTTPS_PORT',
    ]);
    for (const name of names) assert.ok(name in env, `\${${name}} is set in the nginx service`);
    // The image's envsubst replaces $NAME too, for every variable of the container: nginx's own variables are lower case.
    for (const match of template.matchAll(/\$([A-Za-z_][A-Za-z0-9_]*)/g))
      assert.ok(match[1] === match[1].toLowerCase() || names.includes(match[1]), `$${match[1]} is nginx's`);
    assert.ok(!existsSync(path.join(REPO, 'deploy/nginx/htpasswd.template')), 'no plain-text password template');
    assert.ok(!('DASHBOARD_PASSWORD' in env));
  });

  /** The text of `location <location> {` up to its closing brace (locations here nest at most one `if`). */
  const block = (location: string) => {
    const start = template.indexOf(`location ${location} {`);
    assert.ok(start >= 0, `location ${location} exists`);
    let depth = 0;
    for (let i = template.indexOf('{', start); i < template.length; i++) {
      if (template[i] === '{') depth++;
      if (template[i] === '}' && --depth === 0) return template.slice(start, i + 1);
    }
    throw new Error(`location ${location} is not closed`);
  };
  /** The text of the server block that listens on `listen`. */
  const server = (listen: string) => {
    const start = template.lastIndexOf('server {', template.indexOf(`listen ${listen}`));
    const next = template.indexOf('\nserver {', start + 1);
    return template.slice(start, next < 0 ? undefined : next);
  };

  it('routes Orthanc, the open health check, the protected API with the injected key, and the explorer extension', () => {
    assert.match(block('/orthanc/'), /proxy_pass http:\/\/orthanc:8042\/;/);
    assert.doesNotMatch(block('= /api/health'), /auth_basic/);
    const api = block('/api/');
    assert.match(api, /auth_basic \$autorthanc_api_realm;/);
    const mounted = (target: string) => services().nginx.volumes?.some((v) => v.split(':')[1] === target);
    assert.match(api, /auth_basic_user_file \/etc\/nginx\/autorthanc\/htpasswd;/);
    assert.ok(mounted('/etc/nginx/autorthanc/htpasswd'), 'the generated htpasswd is mounted there');
    assert.match(api, /proxy_set_header x-functions-key \$autorthanc_function_key;/);
    assert.match(api, /proxy_set_header Authorization "";/);
    assert.match(api, /auth_request \/_autorthanc_key;/);
    assert.match(
      block('= /_autorthanc_key'),
      /internal;\s*if \(\$autorthanc_key_state = refused\) \{\s*return 401;\s*\}\s*return 204;/,
    );
    assert.match(
      template,
      /map \$autorthanc_key_state \$autorthanc_function_key \{\s*login\s+"\$\{AUTOMATION_FUNCTION_KEY\}";\s*default \$http_x_functions_key;/,
    );
    assert.match(
      template,
      /map \$autorthanc_key_state \$autorthanc_api_realm \{\s*login\s+"autorthanc-functions";\s*default off;/,
    );
    const explorer = block('= /orthanc/plugins/explorer.js');
    const mount = services().nginx.volumes?.find((v) => v.includes('explorer.js')) ?? '';
    assert.ok(mount.startsWith(`${path.join(REPO, 'deploy/orthanc/explorer.js')}:`), mount);
    assert.ok(explorer.includes(`alias ${mount.split(':')[1]};`), 'nginx serves the mounted file');
  });

  it("classifies x-functions-key exactly, with or without a master key (the map's regular expressions)", () => {
    const map =
      /map "\$http_x_functions_key \$\{AUTOMATION_FUNCTION_KEY\} \$\{AUTOMATION_MASTER_KEY\}" \$autorthanc_key_state \{([^}]*)\}/.exec(
        template,
      );
    assert.ok(map, 'the key map compares the header with both keys');
    const entries = [...map[1].matchAll(/^\s*"~(.*)"\s+(\w+);$/gm)].map((m) => ({
      pattern: new RegExp(m[1].replace(/\\S/g, '[^\\s]')),
      state: m[2],
    }));
    assert.equal(entries.length, 3);
    // nginx tries the regular expressions in order; PCRE and JavaScript agree on these.
    const state = (header: string, functionKey: string, masterKey: string) =>
      entries.find((e) => e.pattern.test(`${header} ${functionKey} ${masterKey}`))?.state ?? 'refused';
    const f = 'F'.repeat(40);
    const m = 'M'.repeat(40);
    for (const master of [m, '']) {
      assert.equal(state('', f, master), 'login');
      assert.equal(state(f, f, master), 'key');
      assert.equal(state(f.toLowerCase(), f, master), 'refused');
      assert.equal(state(f.slice(1), f, master), 'refused');
      assert.equal(state(`${f}x`, f, master), 'refused');
      assert.equal(state(`${f} ${f}`, f, master), 'refused');
      assert.equal(state(`${f} x`, f, master), 'refused');
      assert.equal(state('wrong', f, master), 'refused');
    }
    assert.equal(state(m, f, m), 'key');
    assert.equal(state(`${m} ${f}`, f, m), 'refused');
  });

  it('serves HTTPS only: HTTP redirects, TLS 1.2+, no version in answers, bounded API bodies, rate-limited logins', () => {
    assert.match(template, /^server_tokens off;$/m);
    assert.match(template, /^ssl_protocols TLSv1\.2 TLSv1\.3;$/m);
    assert.match(
      server('80 ssl;'),
      /location \/ \{\s*return 308 https:\/\/\$host:\$\{ORTHANC_HTTPS_PORT\}\$request_uri;\s*\}/,
    );
    assert.doesNotMatch(server('80 ssl;'), /proxy_pass/, 'nothing is served over plain HTTP');
    for (const listen of ['80 ssl;', '443 ssl;', '3000 ssl;'])
      assert.match(server(listen), /error_page 497 =308 https:/, `${listen} redirects plain HTTP`);
    for (const target of ['/etc/nginx/tls/certificate.pem', '/etc/nginx/tls/key.pem'])
      assert.ok(
        services().nginx.volumes?.some((v) => v.split(':')[1] === target),
        `${target} is mounted`,
      );
    const site =
      services(
        `${envExample()}\nTLS_CERTIFICATE_PATH=/etc/ssl/pacs.crt\nTLS_CERTIFICATE_KEY_PATH=/etc/ssl/private/pacs.key\n`,
      ).nginx.volumes ?? [];
    assert.ok(
      site.includes('/etc/ssl/pacs.crt:/etc/nginx/tls/certificate.pem:ro') &&
        site.includes('/etc/ssl/private/pacs.key:/etc/nginx/tls/key.pem:ro'),
      "the site's own pair is mounted instead",
    );
    const ports = services().nginx.ports ?? [];
    assert.equal(ports.length, 3, JSON.stringify(ports));
    // The API's bound is the app's own (shared/azure-functions/http.ts); Orthanc keeps unbounded DICOM uploads.
    assert.equal(MAX_JSON_BODY_BYTES, 64 * 1024);
    assert.match(block('/api/'), /client_max_body_size 64k;/);
    assert.match(server('443 ssl;'), /^ {4}client_max_body_size 0;$/m);
    assert.doesNotMatch(block('/orthanc/'), /client_max_body_size/);
    assert.match(block('/api/'), /limit_req zone=autorthanc_api burst=\d+ nodelay;/);
    assert.match(block('/orthanc/'), /limit_req zone=autorthanc_orthanc burst=\d+ nodelay;/);
    assert.match(block('/dicom-web/'), /limit_req zone=autorthanc_orthanc burst=\d+ nodelay;/);
    // The Lua hook reaches the function app directly, so its events never meet the API's bound or limit.
    assert.equal(services().orthanc.environment?.AUTOMATION_EVENTS_URL, 'http://functions:80/api/orthanc/events');
  });

  it("puts the security headers on every location of the HTTPS server, and allows only Explorer's one inline handler", () => {
    const https = server('443 ssl;');
    assert.match(https, /^ {4}include \/etc\/nginx\/autorthanc\/security-headers\.conf;$/m);
    assert.ok(
      services().nginx.volumes?.some((v) =>
        v.includes('deploy/nginx/security-headers.conf:/etc/nginx/autorthanc/security-headers.conf:ro'),
      ),
    );
    // A location with its own add_header or proxy_hide_header would silently drop the included ones.
    for (const location of https.matchAll(/location ([^{]+) \{/g)) {
      const text = block(location[1]);
      if (/add_header|proxy_hide_header/.test(text))
        assert.match(text, /include \/etc\/nginx\/autorthanc\/security-headers\.conf;/, `location ${location[1]}`);
    }
    const headers = read('deploy/nginx/security-headers.conf');
    for (const name of [
      'Strict-Transport-Security',
      'Content-Security-Policy',
      'X-Frame-Options',
      'X-Content-Type-Options',
      'Referrer-Policy',
    ]) {
      assert.match(headers, new RegExp(`^add_header ${name} .+ always;$`, 'm'), name);
    }
    const handler = "$('#fileupload').click()";
    const hash = createHash('sha256').update(handler).digest('base64');
    assert.ok(template.includes(`'unsafe-hashes' 'sha256-${hash}'`), "Orthanc Explorer's upload button, by hash");
    assert.ok(template.includes(handler), 'the comment names the handler the hash allows');
    assert.doesNotMatch(
      template,
      /'unsafe-inline'[^;]*script|script-src[^;]*'unsafe-inline'|'unsafe-eval'/,
      'no inline script or eval allowed',
    );
  });

  it('ships browser scripts that parse, and an explorer button that calls the manual-run routes', () => {
    for (const file of ['deploy/orthanc/explorer.js', 'deploy/viewer/app-config.js']) {
      const check = spawnSync(process.execPath, ['--check', path.join(REPO, file)], { encoding: 'utf8' });
      assert.equal(check.status, 0, `${file}: ${check.stderr}`);
    }
    const explorer = read('deploy/orthanc/explorer.js');
    assert.match(explorer, /API_ROOT \+ '\/' \+ level \+ '\/' \+ encodeURIComponent\(uuid\) \+ '\/run'/);
    assert.match(explorer, /addButton\('#study', '#study-delete', 'studies'\)/);
    assert.match(explorer, /addButton\('#series', '#series-delete', 'series'\)/);
    const routes = read('functions/runResource.ts');
    assert.match(routes, /route: 'studies\/\{id\}\/run'/);
    assert.match(routes, /route: 'series\/\{id\}\/run'/);
    // The page is /orthanc/app/explorer.html, so ../../api is nginx's /api/.
    assert.equal(
      new URL('../../api/studies/x/run', 'http://h/orthanc/app/explorer.html').pathname,
      '/api/studies/x/run',
    );
    assert.match(read('deploy/viewer/app-config.js'), /window\.location\.origin \+ '\/dicom-web'/);
    assert.match(block('/dicom-web/'), /proxy_pass http:\/\/orthanc:8042\/dicom-web\/;/);
  });

  it('mounts only files that exist in the repository, or generated ones that git and the image never see', () => {
    assert.ok(read('.gitignore').split('\n').includes('deploy/generated/'));
    const resolved = services();
    for (const [name, service] of Object.entries(resolved)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0];
        // deploy/secrets and deploy/generated are written at deployment (sync-keys.js, generate-keys.sh).
        if (
          !source.startsWith(path.join(REPO, 'deploy/')) ||
          source.endsWith('deploy/secrets') ||
          source.startsWith(path.join(REPO, 'deploy/generated/'))
        )
          continue;
        assert.ok(existsSync(source), `${name} mounts ${source}, which exists`);
      }
    }
  });
});

describe('function app entry point', () => {
  it('syncs the keys, then starts the host the way the base image does', () => {
    const dockerfile = read('deploy/functions/Dockerfile');
    assert.match(
      dockerfile,
      /^COPY deploy\/functions\/sync-keys\.js deploy\/functions\/start\.sh \/opt\/autorthanc\/$/m,
    );
    assert.match(dockerfile, /^CMD \["\/opt\/autorthanc\/start\.sh"\]$/m);
    const start = read('deploy/functions/start.sh');
    assert.match(start, /^node \/opt\/autorthanc\/sync-keys\.js$/m);
    assert.match(
      start,
      /^exec \/opt\/startup\/start_nonappservice\.sh "\$@"$/m,
      "the base image's CMD (azure-functions-docker node22.Dockerfile)",
    );
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['deploy/secrets', 'deploy/generated', '.env', 'node_modules', '.git'])
      assert.ok(ignored.includes(entry), `.dockerignore keeps ${entry} out of the build context`);
  });
});
