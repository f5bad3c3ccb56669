/**
 * The whole stack for end-to-end tests: real Azurite, real Orthanc (Debian binary with the project's
 * config and Lua hook) and the function app (compiled, in dist/) running under the devhost as a
 * child process that tests may stop, restart or SIGKILL. Every test file gets its own stack on free
 * loopback ports, its own rules folder and storage folder.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createOrthancClient, type OrthancClient } from '../../shared/orthanc/client';
import type { JobStore } from '../../shared/pipeline/ports';
import type { Job } from '../../shared/pipeline/job';
import { createQueueSender, type QueueSender } from '../../shared/storage/queues';
import { openTableStorage } from '../../shared/storage/tableStorage';
import { startAzurite, type AzuriteServer } from '../support/azurite';
import { storescu } from '../support/dcmtk';
import type { GeneratedStudy } from '../support/dicom';
import { startOrthanc, type OrthancOptions, type OrthancServer } from '../support/orthanc';
import { startPostgres, type PostgresServer } from '../support/postgres';
import { startRoundRobin } from '../support/round-robin';
import { FatalWaitError, freePort, makeTempDir, spawnManaged, waitFor, type ManagedProcess } from '../support/process';

export const REPO_ROOT = path.resolve(__dirname, '../..');

export interface StackOptions {
  stableAgeSeconds?: number;
  enforceAuth?: boolean;
  /** Orthanc's index in a real PostgreSQL (as compose runs it) instead of SQLite. */
  postgres?: boolean;
  /** Azurite keeps its data on disk, so `azurite.stop()` + `azurite.start()` is a storage restart. */
  persistentStorage?: boolean;
  env?: Record<string, string>;
  /** Function app instances on the one storage account, Orthanc and folders (scale-out); default 1. */
  instances?: number;
  /** More of Orthanc's options (the worklist SCP's folder, a sender list, where its Lua hook posts). */
  orthanc?: Pick<OrthancOptions, 'worklistFolder' | 'allowedSenders' | 'eventsUrl'>;
}

export interface FunctionHost {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
  running(): boolean;
  logs(): string;
  /** The host's process id (for memory measurements). */
  pid(): number | undefined;
}

export interface Stack {
  orthanc: OrthancServer;
  azurite: AzuriteServer;
  postgres?: PostgresServer;
  host: FunctionHost;
  /** Every instance (`host` is the first), with `instances` > 1. */
  hosts: FunctionHost[];
  client: OrthancClient;
  /** The job ledger the function app writes, read (and sometimes changed) by the tests. */
  jobStore: JobStore;
  queues: QueueSender;
  rulesDir: string;
  storageDir: string;
  /** AUTOMATION_STAGING_PATH: the private staging of anonymising pipelines. */
  stagingDir: string;
  masterKey: string;
  functionKey: string;
  writeRule(id: string, rule: unknown): Promise<void>;
  removeRule(id: string): Promise<void>;
  sendStudy(study: GeneratedStudy, files?: string[]): Promise<void>;
  /** Orthanc id of a study from its StudyInstanceUID. */
  studyId(studyInstanceUid: string): Promise<string>;
  jobs(filter?: (job: Job) => boolean): Promise<Job[]>;
  waitForJobs(
    count: number,
    filter: (job: Job) => boolean,
    options?: { timeoutMs?: number; terminal?: boolean },
  ): Promise<Job[]>;
  /** POST to the function app (with the function key). */
  post(route: string, body: unknown, options?: { key?: string | null }): Promise<Response>;
  stop(): Promise<void>;
}

const TEST_SECRETS = { masterKey: 'e2e-master-key-0123456789abcdef', functionKey: 'e2e-function-key-0123456789abcdef' };
/** The stack's AUTOMATION_ANONYMISATION_SECRET (the app refuses one under 32 bytes). */
export const E2E_ANONYMISATION_SECRET = 'e2e-anonymisation-secret-0123456789abcdef';

export async function startStack(options: StackOptions = {}): Promise<Stack> {
  if (!existsSync(path.join(REPO_ROOT, 'dist/functions'))) {
    throw new Error('dist/functions is missing: run `npm run build` before the end-to-end tests (npm test does)');
  }
  const work = makeTempDir('e2e-stack-');
  const rulesDir = path.join(work, 'rules');
  const storageDir = path.join(work, 'storage');
  const stagingDir = path.join(work, 'staging');
  await mkdir(rulesDir, { recursive: true });
  await mkdir(storageDir, { recursive: true });

  const azurite = await startAzurite(options.persistentStorage ? { persistentDir: path.join(work, 'azurite') } : {});
  const postgres = options.postgres ? await startPostgres() : undefined;
  const hostPort = await freePort();
  const hostUrl = `http://127.0.0.1:${hostPort}`;
  const extraPorts: number[] = [];
  for (let i = 1; i < (options.instances ?? 1); i += 1) extraPorts.push(await freePort());
  // Several instances: Orthanc's events reach them in turn, as a load balancer would spread them.
  const front = extraPorts.length > 0 ? await startRoundRobin([hostPort, ...extraPorts]) : undefined;
  const orthanc = await startOrthanc({
    stableAgeSeconds: options.stableAgeSeconds ?? 2,
    eventsUrl: `${front?.url ?? hostUrl}/api/orthanc/events`,
    functionKey: TEST_SECRETS.functionKey,
    postgres,
    ...options.orthanc,
  });

  const secretsFile = path.join(work, 'secrets.json');
  await writeFile(
    secretsFile,
    JSON.stringify({ masterKey: TEST_SECRETS.masterKey, functionKeys: { default: TEST_SECRETS.functionKey } }),
  );

  const env: Record<string, string> = {
    ...orthanc.env,
    AzureWebJobsStorage: azurite.connectionString,
    AZURE_FUNCTIONS_ENVIRONMENT: 'Development',
    AzureFunctionsWebHost__hostid: `e2e-${hostPort}`,
    ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: rulesDir,
    ORTHANC_AUTOMATION_STORAGE_PATH: storageDir,
    AUTOMATION_ANONYMISATION_SECRET: E2E_ANONYMISATION_SECRET,
    AUTOMATION_STAGING_PATH: stagingDir,
    DEVHOST_SECRETS_FILE: secretsFile,
    // Replacing a result waits until it has been left alone this long (120 s in production, for watchers);
    // tests that replace results would otherwise wait two minutes. late-arrivals.test.ts sets its own.
    AUTOMATION_REPLACE_QUIET_SECONDS: '1',
    // The shortest timer lease the host allows (60 s by default): a restarted or crashed instance's
    // timers (change feed, sweep) come back within 30 s rather than two minutes.
    AzureFunctionsJobHost__singleton__listenerLockPeriod: '00:00:15',
    AzureFunctionsJobHost__singleton__listenerLockRecoveryPollingInterval: '00:00:15',
    ...(options.env ?? {}),
  };

  // Every instance runs the same app with the same settings and host id on the same storage, as
  // `docker compose up --scale functions=N` runs them; only the port differs.
  const devhostOn = (port: number, name: string): FunctionHost => {
    let child: ManagedProcess | undefined;
    return {
      url: `http://127.0.0.1:${port}`,
      port,
      async start() {
        if (child?.running()) return;
        const args = [
          '--import',
          'tsx',
          path.join(REPO_ROOT, 'devhost/cli.ts'),
          '--app',
          REPO_ROOT,
          '--port',
          String(port),
          '--secrets',
          secretsFile,
        ];
        if (options.enforceAuth) args.push('--enforce-auth');
        child = spawnManaged(process.execPath, args, {
          cwd: REPO_ROOT,
          env: { ...process.env, ...env },
          name,
        });
        await waitFor(
          () => {
            if (child!.output().includes('Host started')) return true;
            if (!child!.running())
              throw new FatalWaitError(`the devhost exited during start-up:\n${child!.output().slice(-3000)}`);
            return false;
          },
          { timeoutMs: 60_000, description: `${name} to start`, onTimeout: () => child!.output() },
        );
      },
      async stop() {
        await child?.stop('SIGTERM');
      },
      async kill() {
        await child?.stop('SIGKILL');
      },
      running: () => child?.running() ?? false,
      logs: () => child?.output() ?? '',
      pid: () => child?.pid,
    };
  };
  const hosts = [devhostOn(hostPort, 'devhost'), ...extraPorts.map((port, i) => devhostOn(port, `devhost-${i + 2}`))];
  const host = hosts[0];
  await Promise.all(hosts.map((h) => h.start()));

  const client = createOrthancClient({ url: orthanc.url, username: orthanc.username, password: orthanc.password });
  const { jobs: jobStore } = await openTableStorage(azurite.connectionString);

  const stack: Stack = {
    orthanc,
    azurite,
    postgres,
    host,
    hosts,
    client,
    jobStore,
    queues: createQueueSender(azurite.connectionString),
    rulesDir,
    storageDir,
    stagingDir,
    ...TEST_SECRETS,
    async writeRule(id, rule) {
      // Write then rename, as an editor saving a file would: the loader never sees half a file.
      const target = path.join(rulesDir, `${id}.json`);
      await writeFile(`${target}.tmp`, typeof rule === 'string' ? rule : JSON.stringify(rule, null, 2));
      const { rename } = await import('node:fs/promises');
      await rename(`${target}.tmp`, target);
    },
    async removeRule(id) {
      await rm(path.join(rulesDir, `${id}.json`), { force: true });
    },
    async sendStudy(study, files) {
      await storescu(files ?? study.files, { host: '127.0.0.1', port: orthanc.dicomPort, calledAet: orthanc.aet });
    },
    async studyId(uid) {
      const found = (await client.lookup(uid)).find((r) => r.Type === 'Study');
      if (!found) throw new Error(`Orthanc has no study ${uid}`);
      return found.ID;
    },
    async jobs(filter = () => true) {
      const { jobs } = await jobStore.listRecent({ limit: 500, days: 2 });
      return jobs.filter(filter);
    },
    async waitForJobs(count, filter, { timeoutMs = 90_000, terminal = true } = {}) {
      let found: Job[] = [];
      await waitFor(
        async () => {
          found = (await stack.jobs(filter)).filter(
            (j) => !terminal || j.status === 'succeeded' || j.status === 'failed',
          );
          return found.length >= count;
        },
        {
          timeoutMs,
          intervalMs: 250,
          description: `${count} job(s) to finish`,
          onTimeout: () =>
            `jobs: ${JSON.stringify(found.map((j) => ({ id: j.id, rule: j.ruleId, status: j.status, step: j.currentStep, error: j.error })))}\n--- devhost log tail ---\n${host.logs().slice(-4000)}`,
        },
      );
      return found;
    },
    async post(route, body, { key } = {}) {
      const headers: Record<string, string> = { 'Content-Type': 'application/json' };
      const useKey = key === undefined ? TEST_SECRETS.functionKey : key;
      if (useKey !== null) headers['x-functions-key'] = useKey;
      return fetch(`${hostUrl}/api/${route}`, {
        method: 'POST',
        headers,
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    },
    async stop() {
      await Promise.all(hosts.map((h) => h.stop().catch(() => undefined)));
      await front?.close();
      await orthanc.stop().catch(() => undefined);
      await azurite.stop().catch(() => undefined);
      await postgres?.stop().catch(() => undefined);
      await rm(work, { recursive: true, force: true });
    },
  };
  return stack;
}
