/**
 * The deployment files, validated statically (no Docker engine runs here): Debian's docker-compose
 * resolves docker-compose.yml with .env.example, every variable is documented, the Dockerfile matches
 * package.json, and Orthanc's config is valid JSON under compose's environment.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
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
    assert.match(stderr, /generate-keys\.sh or set AUTOMATION_FUNCTION_KEY/);
  });

  it('documents every variable it uses in .env.example and the README', () => {
    // Uses only: comments are not uses, and $${...} is expanded inside the container, not by compose.
    const compose = read('docker-compose.yml').split('\n').filter((line) => !line.trim().startsWith('#')).join('\n').replace(/\$\$\{[^}]*\}/g, '');
    const used = [...new Set([...compose.matchAll(/\$\{([A-Za-z0-9_]+)/g)].map((m) => m[1]))].sort();
    assert.ok(used.length > 15, `found ${used.length} variables`);
    const example = envExample();
    const readme = read('README.md');
    for (const variable of used) {
      assert.match(example, new RegExp(`^#? ?${variable}=`, 'm'), `${variable} is in .env.example`);
      assert.ok(readme.includes(`\`${variable}\``), `${variable} is in the README`);
    }
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
    const pick = (value: string) => execFileSync('sh', ['-c', `${script.replace(/exec Orthanc.*$/, 'echo $ORTHANC_STORAGE_DIR')}`], { env: { PATH: process.env.PATH, ORTHANC_DB_STORAGE_PATH: value }, encoding: 'utf8' }).trim();
    assert.equal(pick(''), '/storage/legacy');
    assert.equal(pick('/data/new'), '/storage/new');
    const modalities = (value: string) => execFileSync('sh', ['-c', `${script.replace(/exec Orthanc.*$/, 'echo $ORTHANC_DICOM_MODALITIES')}`], { env: { PATH: process.env.PATH, ORTHANC_DICOM_MODALITIES: value }, encoding: 'utf8' }).trim();
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
    assert.deepEqual(config.Plugins, ['/usr/share/orthanc/plugins-available/libOrthancPostgreSQLIndex.so']);
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
