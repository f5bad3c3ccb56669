/**
 * The deployment files, validated statically (no Docker engine runs here): Debian's docker-compose
 * resolves docker-compose.yml with .env.example, every variable is documented, the Dockerfile matches
 * package.json, Orthanc's config is valid JSON under compose's environment, and the small scripts the
 * containers run at start (key sync, placeholder checks) and deploy/generate-keys.sh behave.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { ENVIRONMENT_VARIABLES } from '../../shared/config';
import { makeTempDir, requireBinary } from '../support/process';
import { postgresIndexEnv } from '../support/orthanc';

const REPO = path.resolve(__dirname, '../..');
const read = (file: string) => readFileSync(path.join(REPO, file), 'utf8');

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
  const result = spawnSync(binary, ['-f', path.join(REPO, 'docker-compose.yml'), '--project-directory', REPO, '--env-file', envFile, 'config'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function envExample(): string {
  return read('.env.example');
}

/** Orthanc's `${VAR}` / `${VAR:-default}` substitution, as it applies it to the raw file. */
function orthancSubstitute(text: string, env: Record<string, string | undefined>): string {
  // Defaults may hold one level of braces, e.g. ${ORTHANC_DICOM_MODALITIES:-{}} (verified on Orthanc 1.10.1).
  return text.replace(/\$\{([A-Za-z0-9_]+)(?::-((?:[^{}]|\{[^{}]*\})*))?\}/g, (_m, name: string, fallback?: string) => env[name] ?? fallback ?? '');
}

describe('docker-compose.yml', () => {
  it('resolves with .env.example under Debian docker-compose, without errors or warnings', () => {
    const { status, stdout, stderr } = composeConfig(envExample());
    assert.equal(status, 0, stderr);
    assert.doesNotMatch(stderr, /WARN|not set/i, stderr);
    const services = Object.keys((parse(stdout) as { services: object }).services).sort();
    assert.deepEqual(services, ['azurite', 'functions', 'nginx', 'orthanc', 'postgres', 'viewer']);
  });

  it('refuses to start without the function key, naming the variable and the fix', () => {
    const { status, stderr } = composeConfig(envExample().replace(/^AUTOMATION_FUNCTION_KEY=.*$/m, ''));
    assert.notEqual(status, 0);
    assert.match(stderr, /deploy\/generate-keys\.sh or set AUTOMATION_FUNCTION_KEY/);
  });

  it('documents every variable it uses in .env.example and the README', () => {
    // Uses only: comments are not uses, and $${...} is expanded inside the container, not by compose.
    const compose = read('docker-compose.yml').split('\n').filter((line) => !line.trim().startsWith('#')).join('\n').replace(/\$\$\{[^}]*\}/g, '');
    const used = [...new Set([...compose.matchAll(/\$\{([A-Za-z0-9_]+)/g)].map((m) => m[1]))].sort();
    assert.ok(used.length > 15, `found ${used.length} variables`);
    const example = envExample();
    const guide = read('README.md');
    for (const variable of used) {
      assert.match(example, new RegExp(`^#? ?${variable}=`, 'm'), `${variable} is in .env.example`);
      assert.ok(guide.includes(`\`${variable}\``), `${variable} is in the README`);
    }
  });

  it('passes every setting the function app reads to its container (so .env can set it)', () => {
    const functions = (parse(composeConfig(envExample()).stdout) as { services: Record<string, ComposeService> }).services.functions;
    // The local stack's ports (compose sets ORTHANC_URL) and Orthanc-side settings the app only defaults.
    const notForTheApp = new Set(['ORTHANC_HTTP_PORT', 'FUNCTIONS_HTTP_PORT', 'ORTHANC_WEB_PORT', 'ORTHANC_DISPLAY_NAME', 'ORTHANC_AUTHENTICATION_ENABLED']);
    const missing = ENVIRONMENT_VARIABLES.filter((v) => !notForTheApp.has(v) && !(v in (functions.environment ?? {})));
    assert.deepEqual(missing, []);
  });

  it('accepts both spellings of the DICOM storage path, the corrected one winning', () => {
    const orthancOf = (text: string) => (parse(composeConfig(text).stdout) as { services: Record<string, ComposeService> }).services.orthanc;
    const legacy = orthancOf(`${envExample()}\nORTAHNC_DB_STORAGE_PATH=/data/legacy\n`);
    assert.ok(legacy.volumes?.some((v) => v.startsWith('/data/legacy:/storage/legacy')));
    assert.equal(legacy.environment?.ORTHANC_DB_STORAGE_PATH ?? '', '');
    const both = orthancOf(`${envExample()}\nORTAHNC_DB_STORAGE_PATH=/data/legacy\nORTHANC_DB_STORAGE_PATH=/data/new\n`);
    assert.ok(both.volumes?.some((v) => v.startsWith('/data/new:/storage/new')));
    assert.equal(both.environment?.ORTHANC_DB_STORAGE_PATH, '/data/new');
    // The entrypoint picks /storage/new only when ORTHANC_DB_STORAGE_PATH is set.
    // `config` prints the compose-escaped form ($$); the container receives single dollars.
    const script = (both.entrypoint?.at(-1) ?? '').replace(/\$\$/g, '$');
    const secrets = { ORTHANC_PASSWORD: 'p4ssw0rd', ORTHANC_POSTGRESQL_PASSWORD: 'pg', AUTOMATION_FUNCTION_KEY: 'k'.repeat(20) };
    const pick = (value: string) => execFileSync('sh', ['-c', `${script.replace(/exec Orthanc.*$/, 'echo $ORTHANC_STORAGE_DIR')}`], { env: { PATH: process.env.PATH, ...secrets, ORTHANC_DB_STORAGE_PATH: value }, encoding: 'utf8' }).trim();
    assert.equal(pick(''), '/storage/legacy');
    assert.equal(pick('/data/new'), '/storage/new');
    const modalities = (value: string) => execFileSync('sh', ['-c', `${script.replace(/exec Orthanc.*$/, 'echo $ORTHANC_DICOM_MODALITIES')}`], { env: { PATH: process.env.PATH, ...secrets, ORTHANC_DICOM_MODALITIES: value }, encoding: 'utf8' }).trim();
    assert.equal(modalities(''), '{}', 'no modalities still gives Orthanc valid JSON');
    assert.equal(modalities('{"A": ["B", "h", 1]}'), '{"A": ["B", "h", 1]}');
  });

  it('gives Orthanc a config that is valid JSON, with the PostgreSQL index the tests also use', () => {
    const { stdout } = composeConfig(envExample());
    const orthanc = (parse(stdout) as { services: Record<string, ComposeService> }).services.orthanc;
    const env = orthanc.environment ?? {};
    const config = JSON.parse(orthancSubstitute(read('deploy/orthanc/orthanc.json'), { ...env, ORTHANC_STORAGE_DIR: '/storage/legacy' })) as Record<string, unknown>;
    assert.equal(config.StableAge, 300);
    assert.equal(config.DicomAet, 'AUTORTHANCAET');
    assert.equal(config.DicomPort, 4006);
    assert.deepEqual(config.Plugins, ['/usr/share/orthanc/plugins-available/libOrthancPostgreSQLIndex.so', '/usr/share/orthanc/plugins-available/libOrthancDicomWeb.so']);
    const postgres = config.PostgreSQL as Record<string, unknown>;
    assert.equal(postgres.Host, 'postgres');
    assert.equal(postgres.Database, 'orthanc');
    assert.equal(postgres.Username, 'orthanc');
    assert.equal(postgres.Password, 'replace-me', 'the PostgreSQL password reaches Orthanc from .env');
    assert.equal(config.LuaScripts && (config.LuaScripts as string[])[0], '/etc/autorthanc/automation.lua');
    assert.deepEqual(config.RegisteredUsers, { orthanc: 'replace-me' });
    assert.equal((config.PostgreSQL as { EnableIndex: boolean }).EnableIndex, true);
    assert.deepEqual(config.DicomModalities, { PACS: ['PACSAET', '192.168.1.50', 104] }, "autorthanc's ORTHANC_DICOM_MODALITIES reaches Orthanc");
    const testKeys = Object.keys(postgresIndexEnv({ host: 'h', port: 1, database: 'd', username: 'u', password: 'p' }, '/x.so')).sort();
    const composeKeys = Object.keys(env).filter((k) => k === 'ORTHANC_PLUGINS' || k.startsWith('ORTHANC_POSTGRESQL_')).sort();
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
    const outDir = (JSON.parse(read('tsconfig.build.json')) as { compilerOptions: { outDir: string } }).compilerOptions.outDir;
    assert.equal(pkg.main, `${outDir}/functions/*.js`);
    assert.match(dockerfile, new RegExp(`^COPY --from=build /src/${outDir} \\./${outDir}$`, 'm'));
    assert.match(dockerfile, /^RUN npm run build$/m);
    for (const folder of (JSON.parse(read('tsconfig.build.json')) as { include: string[] }).include) {
      assert.match(dockerfile, new RegExp(`^COPY ${folder} \\./${folder}$`, 'm'), `the build stage copies ${folder}/`);
    }
  });

  it('is built by compose from that Dockerfile with a fixed host id', () => {
    const functions = (parse(composeConfig(envExample()).stdout) as { services: Record<string, ComposeService> }).services.functions;
    assert.equal(functions.build?.dockerfile, 'deploy/functions/Dockerfile');
    assert.equal(functions.environment?.AzureFunctionsWebHost__hostid, 'autorthanc-functions');
    assert.equal(functions.environment?.AzureWebJobsSecretStorageType, 'files');
  });
});

/** The compose file as `docker-compose config` resolves it with the given .env text. */
function services(envText = envExample()): Record<string, ComposeService & { image?: string; ports?: string[]; command?: string[] }> {
  const { status, stdout, stderr } = composeConfig(envText);
  assert.equal(status, 0, stderr);
  return (parse(stdout) as { services: Record<string, ComposeService> }).services;
}

describe('secrets and start-up checks', () => {
  it('Orthanc refuses to start with a placeholder secret, and starts with real ones', () => {
    const script = (services().orthanc.entrypoint?.at(-1) ?? '').replace(/\$\$/g, '$').replace(/exec Orthanc.*$/, 'echo started');
    const runWith = (env: Record<string, string>) => spawnSync('sh', ['-c', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    const good = { ORTHANC_PASSWORD: 'a-real-password', ORTHANC_POSTGRESQL_PASSWORD: 'another-one', AUTOMATION_FUNCTION_KEY: 'k'.repeat(40) };
    assert.equal(runWith(good).stdout.trim(), 'started');
    for (const name of Object.keys(good)) {
      const refused = runWith({ ...good, [name]: 'replace-me' });
      assert.equal(refused.status, 1, `${name}=replace-me is refused`);
      assert.match(refused.stderr, /deploy\/generate-keys\.sh/);
      assert.equal(runWith({ ...good, [name]: '' }).status, 1, `an empty ${name} is refused`);
    }
  });

  it('nginx refuses the placeholders before it starts', () => {
    const check = path.join(REPO, 'deploy/nginx/check-env.sh');
    const runWith = (env: Record<string, string>) => spawnSync('sh', [check], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    const good = { AUTOMATION_FUNCTION_KEY: 'k'.repeat(40), DASHBOARD_PASSWORD: 'secret', DASHBOARD_USER: 'operator' };
    assert.equal(runWith(good).status, 0, runWith(good).stderr);
    assert.equal(runWith({ ...good, DASHBOARD_PASSWORD: 'replace-me' }).status, 1);
    assert.equal(runWith({ ...good, AUTOMATION_FUNCTION_KEY: '' }).status, 1);
    assert.equal(runWith({ ...good, DASHBOARD_USER: 'a:b' }).status, 1, 'a colon would break the htpasswd line');
    // The mounted name must sort before the image's own 20-envsubst script and be executable in git.
    const mount = services().nginx.volumes?.find((v) => v.includes('check-env.sh')) ?? '';
    assert.match(mount, /:\/docker-entrypoint\.d\/0\d-[^/]+\.sh:ro$/);
    const mode = execFileSync('git', ['ls-files', '-s', 'deploy/nginx/check-env.sh', 'deploy/functions/start.sh', 'deploy/generate-keys.sh'], { cwd: REPO, encoding: 'utf8' });
    for (const line of mode.trim().split('\n')) assert.match(line, /^100755 /, `executable in git: ${line}`);
  });

  it('the function app writes the key from .env into the host secrets file, keeping other keys', () => {
    const dir = makeTempDir('secrets-');
    const sync = (env: Record<string, string>) => spawnSync(process.execPath, [path.join(REPO, 'deploy/functions/sync-keys.js')], { env: { PATH: process.env.PATH, FUNCTIONS_SECRETS_PATH: dir, ...env }, encoding: 'utf8' });
    const hostJson = () => JSON.parse(readFileSync(path.join(dir, 'host.json'), 'utf8')) as { masterKey: { value: string }; functionKeys: { name: string; value: string }[] };
    const first = sync({ AUTOMATION_FUNCTION_KEY: 'A'.repeat(40) });
    assert.equal(first.status, 0, first.stderr);
    const created = hostJson();
    assert.deepEqual(created.functionKeys, [{ name: 'default', value: 'A'.repeat(40), encrypted: false }]);
    assert.ok(created.masterKey.value.length >= 32, 'a random master key is made for a new file');
    // An operator (or the host) added a key; the function key changes in .env: both survive correctly.
    writeFileSync(path.join(dir, 'host.json'), JSON.stringify({ ...created, functionKeys: [...created.functionKeys, { name: 'ci', value: 'C'.repeat(30), encrypted: false }] }));
    assert.equal(sync({ AUTOMATION_FUNCTION_KEY: 'B'.repeat(40) }).status, 0);
    const updated = hostJson();
    assert.deepEqual(updated.functionKeys.map((k) => [k.name, k.value]), [['default', 'B'.repeat(40)], ['ci', 'C'.repeat(30)]]);
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
    const generate = (...args: string[]) => spawnSync('bash', [path.join(REPO, 'deploy/generate-keys.sh'), ...args], { env: { PATH: process.env.PATH, AUTORTHANC_ROOT: root }, encoding: 'utf8' });
    const first = generate();
    assert.equal(first.status, 0, first.stderr);
    const envText = readFileSync(path.join(root, '.env'), 'utf8');
    const value = (text: string, name: string) => new RegExp(`^${name}=(.*)$`, 'm').exec(text)?.[1] ?? '';
    const secretNames = ['AUTOMATION_FUNCTION_KEY', 'DASHBOARD_PASSWORD', 'ORTHANC_PASSWORD', 'POSTGRES_PASSWORD'];
    for (const name of secretNames) assert.match(value(envText, name), /^[A-Za-z0-9]{40}$/, `${name} generated`);
    assert.equal(new Set(secretNames.map((n) => value(envText, n))).size, 4, 'four different values');
    assert.equal(envText.split('\n').length, envExample().split('\n').length, 'no line added or lost');
    assert.equal(value(envText, 'ORTHANC_AET_NAME'), 'AUTORTHANCAET');
    assert.equal(execFileSync('stat', ['-c', '%a', path.join(root, '.env')], { encoding: 'utf8' }).trim(), '600');
    // Re-running changes nothing; --rotate renews only the key and the dashboard password.
    assert.equal(generate().status, 0);
    assert.equal(readFileSync(path.join(root, '.env'), 'utf8'), envText);
    assert.equal(generate('--rotate').status, 0);
    const rotated = readFileSync(path.join(root, '.env'), 'utf8');
    assert.notEqual(value(rotated, 'AUTOMATION_FUNCTION_KEY'), value(envText, 'AUTOMATION_FUNCTION_KEY'));
    assert.notEqual(value(rotated, 'DASHBOARD_PASSWORD'), value(envText, 'DASHBOARD_PASSWORD'));
    assert.equal(value(rotated, 'POSTGRES_PASSWORD'), value(envText, 'POSTGRES_PASSWORD'), 'PostgreSQL keeps its password');
    // The generated .env is accepted by compose and the start-up checks above.
    const resolved = services(rotated);
    assert.equal(resolved.functions.environment?.AUTOMATION_FUNCTION_KEY, value(rotated, 'AUTOMATION_FUNCTION_KEY'));
    assert.equal(resolved.orthanc.environment?.AUTOMATION_FUNCTION_KEY, value(rotated, 'AUTOMATION_FUNCTION_KEY'), 'Lua and the host share one key');
    assert.equal(resolved.nginx.environment?.AUTOMATION_FUNCTION_KEY, value(rotated, 'AUTOMATION_FUNCTION_KEY'), 'nginx and the host share one key');
  });
});

describe('nginx, Orthanc Explorer extension and viewer files', () => {
  const template = read('deploy/nginx/default.conf.template');

  it('fills only variables that compose gives the nginx container', () => {
    const env = services().nginx.environment ?? {};
    for (const file of ['deploy/nginx/default.conf.template', 'deploy/nginx/htpasswd.template']) {
      const names = [...read(file).matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]);
      assert.ok(names.length > 0, `${file} uses variables`);
      for (const name of names) assert.ok(name in env, `${file}: \${${name}} is set in the nginx service`);
    }
    assert.equal(read('deploy/nginx/htpasswd.template').trim(), '${DASHBOARD_USER}:{PLAIN}${DASHBOARD_PASSWORD}');
  });

  it('routes Orthanc, the open health check, the protected API with the injected key, and the explorer extension', () => {
    const block = (location: string) => {
      const start = template.indexOf(`location ${location} {`);
      assert.ok(start >= 0, `location ${location} exists`);
      return template.slice(start, template.indexOf('}', start));
    };
    assert.match(block('/orthanc/'), /proxy_pass http:\/\/orthanc:8042\/;/);
    assert.doesNotMatch(block('= /api/health'), /auth_basic/);
    const api = block('/api/');
    assert.match(api, /auth_basic \$autorthanc_api_realm;/);
    assert.match(api, /auth_basic_user_file \/etc\/nginx\/conf\.d\/htpasswd;/, 'the rendered htpasswd.template');
    assert.match(api, /proxy_set_header x-functions-key \$autorthanc_function_key;/);
    assert.match(api, /proxy_set_header Authorization "";/);
    assert.match(template, /map \$http_x_functions_key \$autorthanc_function_key \{\s*""\s+"\$\{AUTOMATION_FUNCTION_KEY\}";\s*default \$http_x_functions_key;/);
    assert.match(template, /map \$http_x_functions_key \$autorthanc_api_realm \{\s*""\s+"autorthanc-functions";\s*default off;/);
    const explorer = block('= /orthanc/plugins/explorer.js');
    const mount = services().nginx.volumes?.find((v) => v.includes('explorer.js')) ?? '';
    assert.ok(mount.startsWith(`${path.join(REPO, 'deploy/orthanc/explorer.js')}:`), mount);
    assert.ok(explorer.includes(`alias ${mount.split(':')[1]};`), 'nginx serves the mounted file');
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
    assert.equal(new URL('../../api/studies/x/run', 'http://h/orthanc/app/explorer.html').pathname, '/api/studies/x/run');
    assert.match(read('deploy/viewer/app-config.js'), /window\.location\.origin \+ '\/dicom-web'/);
    assert.match(template, /location \/dicom-web\/ \{\s*proxy_pass http:\/\/orthanc:8042\/dicom-web\/;/);
  });

  it('mounts only files that exist in the repository', () => {
    const resolved = services();
    for (const [name, service] of Object.entries(resolved)) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0];
        if (!source.startsWith(path.join(REPO, 'deploy/')) || source.endsWith('deploy/secrets')) continue;
        assert.ok(existsSync(source), `${name} mounts ${source}, which exists`);
      }
    }
  });
});

describe('function app entry point', () => {
  it('syncs the keys, then starts the host the way the base image does', () => {
    const dockerfile = read('deploy/functions/Dockerfile');
    assert.match(dockerfile, /^COPY deploy\/functions\/sync-keys\.js deploy\/functions\/start\.sh \/opt\/autorthanc\/$/m);
    assert.match(dockerfile, /^CMD \["\/opt\/autorthanc\/start\.sh"\]$/m);
    const start = read('deploy/functions/start.sh');
    assert.match(start, /^node \/opt\/autorthanc\/sync-keys\.js$/m);
    assert.match(start, /^exec \/opt\/startup\/start_nonappservice\.sh "\$@"$/m, "the base image's CMD (azure-functions-docker node22.Dockerfile)");
    const ignored = read('.dockerignore').split('\n');
    for (const entry of ['deploy/secrets', '.env', 'node_modules', '.git']) assert.ok(ignored.includes(entry), `.dockerignore keeps ${entry} out of the build context`);
  });
});
