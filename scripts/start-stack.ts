/**
 * `npm start`: the local stack of DESIGN section 4 on loopback, in the foreground.
 *   Orthanc (Debian binary, deploy/orthanc config and Lua hook; SQLite index, or PostgreSQL with
 *   ORTHANC_POSTGRESQL_ENABLED=true and ORTHANC_POSTGRESQL_* pointing at a server), Azurite, and the
 *   function app under the devhost. Ctrl-C stops all three.
 * Settings come from the environment and, when present, `.env` (autorthanc's names); state lives in
 * `.devhost/` (Orthanc's storage, Azurite's data, the staging folder of anonymising pipelines, the
 * worklist folder Orthanc's worklist plugin serves, and the anonymisation secret) unless
 * ORTAHNC_DB_STORAGE_PATH/ORTHANC_DB_STORAGE_PATH, AUTOMATION_STAGING_PATH, WORKLIST_FOLDER or
 * AUTOMATION_ANONYMISATION_SECRET say otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { orthancDicomAccessEnv } from '../shared/orthanc/peers';

const root = path.resolve(__dirname, '..');
if (existsSync(path.join(root, '.env'))) process.loadEnvFile(path.join(root, '.env'));

const env = process.env;
const orthancHttpPort = env.ORTHANC_HTTP_PORT ?? '8042';
const functionsPort = env.FUNCTIONS_HTTP_PORT ?? '7071';
const stateDir = path.resolve(root, env.DEVHOST_STATE_DIR ?? '.devhost');
const orthancStorage = path.resolve(
  root,
  env.ORTHANC_DB_STORAGE_PATH ?? env.ORTAHNC_DB_STORAGE_PATH ?? path.join(stateDir, 'orthanc-db'),
);
const azuriteDir = path.join(stateDir, 'azurite');
const rulesDir = path.resolve(root, env.ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH ?? 'automation/rules');
const storageDir = path.resolve(root, env.ORTHANC_AUTOMATION_STORAGE_PATH ?? 'automation/storage');
// Beside Azurite's data, which is on the storage root's filesystem in the default layout (the app checks).
const stagingDir = path.resolve(root, env.AUTOMATION_STAGING_PATH?.trim() || path.join(stateDir, 'staging'));
// The worklist folder Orthanc's ModalityWorklists plugin serves and worklistSync writes (issue 19).
const worklistDir = path.resolve(root, env.WORKLIST_FOLDER?.trim() || path.join(stateDir, 'worklists'));
const WORKLISTS_PLUGIN = '/usr/share/orthanc/plugins/libModalityWorklists.so';
for (const dir of [orthancStorage, azuriteDir, rulesDir, storageDir, worklistDir]) mkdirSync(dir, { recursive: true });
mkdirSync(stagingDir, { recursive: true, mode: 0o700 });

/**
 * A secret from the environment (or `.env`) when set, else a file in the state folder, made on first
 * start from 32 random bytes and readable by its owner only. Never printed, only its place.
 */
function stateSecret(variable: string, fileName: string, firstUse: string[]): { value: string; note: string } {
  const given = env[variable]?.trim();
  if (given) return { value: given, note: `${variable} from the environment` };
  const file = path.join(stateDir, fileName);
  if (existsSync(file)) {
    if ((statSync(file).mode & 0o077) !== 0) console.warn(`[stack] ${file} is readable by others; chmod 600 it`);
    return { value: readFileSync(file, 'utf8').trim(), note: file };
  }
  mkdirSync(stateDir, { recursive: true });
  writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  for (const line of firstUse) console.log(`[stack] ${line.replace('{file}', file)}`);
  return { value: readFileSync(file, 'utf8').trim(), note: `${file} (created now)` };
}
const secret = stateSecret('AUTOMATION_ANONYMISATION_SECRET', 'anonymisation-secret', [
  'Created the anonymisation secret in {file}. Back it up: pseudonyms and UIDs of anonymised studies',
  '  derive from it, and without it the same patient gets a different pseudonym after a re-install.',
]);
// Orthanc's login is generated like every secret; Orthanc and the app read the same one.
const orthancUser = env.ORTHANC_USERNAME?.trim() || 'orthanc';
const orthancPassword = stateSecret('ORTHANC_PASSWORD', 'orthanc-password', [
  `Created Orthanc's password for user '${orthancUser}' in {file} (Orthanc Explorer asks for it).`,
]);

const children: Array<{ name: string; child: ChildProcess }> = [];
let stopping = false;

function start(name: string, command: string, args: string[], extraEnv: Record<string, string>): ChildProcess {
  const child = spawn(command, args, { cwd: root, env: { ...env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  const prefix = `[${name}] `;
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream?.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.trim() !== '') process.stdout.write(prefix + line + '\n');
    });
  }
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${prefix}exited (${signal ?? code}); stopping the stack`);
      void stopAll(1);
    }
  });
  children.push({ name, child });
  return child;
}

async function waitForPort(port: number, label: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${label} did not open port ${port} within ${timeoutMs / 1000} s`);
}

async function stopAll(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // The function app first (it finishes or releases its messages), then what it depends on.
  for (const { name, child } of [...children].reverse()) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
    console.log(`[stack] ${name} stopped`);
  }
  process.exit(code);
}

process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

async function main(): Promise<void> {
  const orthancBinary = env.ORTHANC_BINARY ?? '/usr/sbin/Orthanc';
  if (!existsSync(orthancBinary))
    throw new Error(`Orthanc is not installed (${orthancBinary}); run: bash scripts/install-system-deps.sh`);
  if (!existsSync(path.join(root, 'dist/functions')))
    throw new Error('dist/ is missing: npm start builds first; run `npm run build`');

  start(
    'azurite',
    path.join(root, 'node_modules/.bin/azurite'),
    [
      '--silent',
      '--skipApiVersionCheck',
      '--loose',
      '--location',
      azuriteDir,
      '--blobHost',
      '127.0.0.1',
      '--blobPort',
      '10000',
      '--queueHost',
      '127.0.0.1',
      '--queuePort',
      '10001',
      '--tableHost',
      '127.0.0.1',
      '--tablePort',
      '10002',
    ],
    {},
  );
  const functionsUrl = `http://127.0.0.1:${functionsPort}`;
  start('orthanc', orthancBinary, [path.join(root, 'deploy/orthanc/orthanc.json')], {
    ORTHANC_STORAGE_DIR: orthancStorage,
    ORTHANC_HTTP_PORT: orthancHttpPort,
    ORTHANC_STABLE_AGE: env.ORTHANC_STABLE_AGE ?? '10',
    ORTHANC_LUA_SCRIPT: path.join(root, 'deploy/orthanc/automation.lua'),
    AUTOMATION_EVENTS_URL: `${functionsUrl}/api/orthanc/events`,
    ORTHANC_USERNAME: orthancUser,
    ORTHANC_PASSWORD: orthancPassword.value,
    ...orthancDicomAccessEnv(env),
    // Debian's orthanc package ships the plugin; without it the stack runs with no worklist SCP.
    ...(existsSync(WORKLISTS_PLUGIN)
      ? {
          ORTHANC_PLUGINS: [env.ORTHANC_PLUGINS, JSON.stringify(WORKLISTS_PLUGIN)].filter(Boolean).join(', '),
          ORTHANC_WORKLISTS_ENABLED: 'true',
          ORTHANC_WORKLISTS_FOLDER: worklistDir,
        }
      : {}),
  });
  await waitForPort(10001, 'Azurite');
  await waitForPort(Number(orthancHttpPort), 'Orthanc');
  start(
    'functions',
    process.execPath,
    ['--import', 'tsx', path.join(root, 'devhost/cli.ts'), '--app', root, '--port', functionsPort],
    {
      AzureWebJobsStorage: env.AzureWebJobsStorage ?? 'UseDevelopmentStorage=true',
      AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
      ORTHANC_URL: env.ORTHANC_URL ?? `http://127.0.0.1:${orthancHttpPort}`,
      ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: rulesDir,
      ORTHANC_AUTOMATION_STORAGE_PATH: storageDir,
      AUTOMATION_STAGING_PATH: stagingDir,
      AUTOMATION_ANONYMISATION_SECRET: secret.value,
      ORTHANC_USERNAME: orthancUser,
      ORTHANC_PASSWORD: orthancPassword.value,
      WORKLIST_FOLDER: worklistDir,
    },
  );
  console.log(
    `[stack] Orthanc     http://127.0.0.1:${orthancHttpPort}  (DICOM ${env.ORTHANC_AET_NAME ?? 'ORTHANC'}@${env.ORTHANC_AET_PORT ?? '4242'})`,
  );
  console.log(`[stack] Login       user '${orthancUser}', password in ${orthancPassword.note}`);
  // Orthanc 1.10 has no DICOM bind address: say so, and who may call it.
  console.log(
    `[stack] DICOM       on every interface; ${env.ORTHANC_ALLOWED_SENDERS ? 'only ORTHANC_ALLOWED_SENDERS and destinations may call' : 'any node may store, none unknown may query or retrieve'}`,
  );
  console.log(`[stack] Functions   ${functionsUrl}/api/health`);
  console.log(`[stack] Status      ${functionsUrl}/api/status  (details; a function key when keys are enforced)`);
  console.log(`[stack] Dashboard   ${functionsUrl}/api/dashboard`);
  console.log(`[stack] Rules       ${rulesDir}`);
  console.log(`[stack] Output      ${storageDir}`);
  console.log(`[stack] Staging     ${stagingDir}  (originals of anonymising rules; private)`);
  console.log(
    `[stack] Worklist    ${worklistDir}  (${env.WORKLIST_SOURCE ? 'synced from WORKLIST_SOURCE' : 'set WORKLIST_SOURCE to fill it'}; scanners in WORKLIST_CALLERS may query it)`,
  );
  console.log(`[stack] Secret      ${secret.note}`);
  console.log('[stack] Ctrl-C stops everything');
}

main().catch((error: Error) => {
  console.error(`[stack] ${error.message}`);
  void stopAll(1);
});
