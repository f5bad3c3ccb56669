/**
 * A real Orthanc (Debian's binary) for tests, run with the project's own deploy/orthanc/orthanc.json
 * and Lua hook: the same files compose mounts. Differences are environment variables only.
 * ORTHANC_FLAVOUR picks Debian 12's Orthanc 1.10 (default) or Debian 13's 1.12 (orthancFlavour.ts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import axios, { type AxiosInstance } from 'axios';
import { FatalWaitError, freePort, makeTempDir, spawnManaged, waitFor, type ManagedProcess } from './process';
import type { PostgresServer } from './postgres';
import { orthancDicomAccessEnv } from '../../shared/orthanc/peers';
import { orthancFlavour, versionMatchesFlavour } from './orthancFlavour';

const REPO = path.resolve(__dirname, '../..');
export const POSTGRES_INDEX_PLUGIN = '/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so';
export const DICOMWEB_PLUGIN = '/usr/share/orthanc/plugins/libOrthancDicomWeb.so';
// Debian 12's orthanc package and Debian 13's (inside its root folder) put the worklist plugin here alike.
export const WORKLISTS_PLUGIN = '/usr/share/orthanc/plugins/libModalityWorklists.so';

/** The settings that put Orthanc's index in PostgreSQL: the same variables docker-compose.yml sets. */
export function postgresIndexEnv(
  postgres: Pick<PostgresServer, 'host' | 'port' | 'database' | 'username' | 'password'>,
  plugin: string,
): Record<string, string> {
  return {
    ORTHANC_PLUGINS: JSON.stringify(plugin),
    ORTHANC_POSTGRESQL_ENABLED: 'true',
    ORTHANC_POSTGRESQL_HOST: postgres.host,
    ORTHANC_POSTGRESQL_PORT: String(postgres.port),
    ORTHANC_POSTGRESQL_DATABASE: postgres.database,
    ORTHANC_POSTGRESQL_USERNAME: postgres.username,
    ORTHANC_POSTGRESQL_PASSWORD: postgres.password,
  };
}

export interface OrthancOptions {
  stableAgeSeconds?: number;
  eventsUrl?: string;
  functionKey?: string;
  postgres?: PostgresServer;
  aet?: string;
  /** Storage and SQLite index folder; a fresh temporary one by default. Reuse one to simulate a redeploy. */
  storageDir?: string;
  /** ORTHANC_ALLOWED_SENDERS: when set, Orthanc refuses every caller the app has not registered. */
  allowedSenders?: string;
  /** Loads Debian's orthanc-dicomweb plugin: DICOMweb (QIDO, WADO, STOW-RS) under `<url>/dicom-web`. */
  dicomWeb?: boolean;
  /** Serves the worklist files of this folder with Debian's ModalityWorklists plugin (a C-FIND worklist SCP). */
  worklistFolder?: string;
}

export interface OrthancServer {
  url: string;
  httpPort: number;
  dicomPort: number;
  /** Orthanc's version as GET /system reports it (e.g. 1.10.1, 1.12.7). */
  version: string;
  /** Orthanc's REST API version (/system ApiVersion): 16 on 1.10.1, 18 or more from 1.12.0 (labels). */
  apiVersion: number;
  aet: string;
  username: string;
  password: string;
  storageDir: string;
  /** Settings the function app needs to reach this Orthanc. */
  env: Record<string, string>;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Freezes the process (SIGSTOP): connections hang, as with a stalled server. */
  pause(): Promise<void>;
  resume(): Promise<void>;
  logs(): string;
}

const CONFIG = path.join(REPO, 'deploy/orthanc/orthanc.json');
const LUA = path.join(REPO, 'deploy/orthanc/automation.lua');

export async function startOrthanc(options: OrthancOptions = {}): Promise<OrthancServer> {
  const flavour = orthancFlavour();
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const storageDir = options.storageDir ?? makeTempDir('orthanc-');
  const aet = options.aet ?? 'ORTHANCTEST';
  const username = 'orthanc';
  // 32 bytes or more, as deploy/generate-keys.sh makes them, so `autorthanc doctor` finds it strong.
  const password = 'orthanc-test-password-0123456789abcdef';
  const url = `http://127.0.0.1:${httpPort}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ORTHANC_STORAGE_DIR: storageDir,
    ORTHANC_HTTP_PORT: String(httpPort),
    ORTHANC_AET_PORT: String(dicomPort),
    ORTHANC_AET_NAME: aet,
    ORTHANC_USERNAME: username,
    ORTHANC_PASSWORD: password,
    ORTHANC_STABLE_AGE: String(options.stableAgeSeconds ?? 2),
    ORTHANC_LUA_SCRIPT: LUA,
    AUTOMATION_EVENTS_URL: options.eventsUrl ?? 'http://127.0.0.1:9/unused',
    AUTOMATION_FUNCTION_KEY: options.functionKey ?? '',
    ORTHANC_HTTP_TIMEOUT: '10',
    ORTHANC_ALLOWED_SENDERS: options.allowedSenders ?? '',
    ...orthancDicomAccessEnv({ ORTHANC_ALLOWED_SENDERS: options.allowedSenders }),
  };
  if (options.postgres) {
    if (!existsSync(flavour.hostPath(POSTGRES_INDEX_PLUGIN))) {
      throw new Error(
        `Required Orthanc plugin ${flavour.hostPath(POSTGRES_INDEX_PLUGIN)} is missing (Debian package 'orthanc-postgresql'). Install the system dependencies with: bash scripts/install-system-deps.sh`,
      );
    }
    Object.assign(env, postgresIndexEnv(options.postgres, POSTGRES_INDEX_PLUGIN));
  }
  if (options.dicomWeb) {
    if (!existsSync(flavour.hostPath(DICOMWEB_PLUGIN))) {
      throw new Error(
        `Required Orthanc plugin ${flavour.hostPath(DICOMWEB_PLUGIN)} is missing (Debian package 'orthanc-dicomweb'). Install the system dependencies with: bash scripts/install-system-deps.sh`,
      );
    }
    // ORTHANC_PLUGINS is the inside of the config's "Plugins" list: JSON strings joined by commas.
    env.ORTHANC_PLUGINS = [env.ORTHANC_PLUGINS, JSON.stringify(DICOMWEB_PLUGIN)].filter(Boolean).join(', ');
  }
  if (options.worklistFolder) {
    if (!existsSync(flavour.hostPath(WORKLISTS_PLUGIN))) {
      throw new Error(
        `Required Orthanc plugin ${flavour.hostPath(WORKLISTS_PLUGIN)} is missing (Debian package 'orthanc'). Install the system dependencies with: bash scripts/install-system-deps.sh`,
      );
    }
    env.ORTHANC_PLUGINS = [env.ORTHANC_PLUGINS, JSON.stringify(WORKLISTS_PLUGIN)].filter(Boolean).join(', ');
    env.ORTHANC_WORKLISTS_ENABLED = 'true';
    env.ORTHANC_WORKLISTS_FOLDER = options.worklistFolder;
  }
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  let proc: ManagedProcess | undefined;

  const server: OrthancServer = {
    url,
    httpPort,
    dicomPort,
    version: '',
    apiVersion: 0,
    aet,
    username,
    password,
    storageDir,
    env: {
      ORTHANC_URL: url,
      ORTHANC_USERNAME: username,
      ORTHANC_PASSWORD: password,
      ORTHANC_HTTP_PORT: String(httpPort),
      ORTHANC_AET_NAME: aet,
      ORTHANC_AET_PORT: String(dicomPort),
      ORTHANC_STABLE_AGE: String(options.stableAgeSeconds ?? 2),
      ...(options.allowedSenders ? { ORTHANC_ALLOWED_SENDERS: options.allowedSenders } : {}),
    },
    async start() {
      if (proc?.running()) return;
      const command = flavour.command([CONFIG], {
        readWrite: [storageDir, ...(options.worklistFolder ? [options.worklistFolder] : [])],
        readOnly: [path.dirname(CONFIG), path.dirname(LUA)],
      });
      proc = spawnManaged(command.file, command.args, { cwd: storageDir, env, name: 'orthanc' });
      let system: { DatabaseBackendPlugin?: string | null; Version?: string; ApiVersion?: number } = {};
      await waitFor(
        async () => {
          if (!proc!.running())
            throw new FatalWaitError(
              `Orthanc exited during startup (config ${CONFIG}):\n${proc!.output().slice(-3000)}`,
            );
          const answer = await fetch(`${url}/system`, { headers: { Authorization: auth } });
          if (answer.ok) system = (await answer.json()) as typeof system;
          return answer.ok;
        },
        {
          timeoutMs: 60_000,
          intervalMs: 100,
          description: `Orthanc to answer ${url}/system`,
          onTimeout: () => proc!.output().slice(-3000),
        },
      );
      server.version = String(system.Version);
      server.apiVersion = Number(system.ApiVersion ?? 0);
      if (!versionMatchesFlavour(server.version, flavour.name)) {
        await proc.stop();
        throw new Error(`ORTHANC_FLAVOUR=${flavour.name} started Orthanc ${server.version} (${command.file})`);
      }
      // A misnamed plugin or setting would leave Orthanc on SQLite without complaint: check it took effect.
      if (options.postgres && !system.DatabaseBackendPlugin) {
        await proc.stop();
        throw new Error(
          `Orthanc started without its PostgreSQL index (DatabaseBackendPlugin is ${String(system.DatabaseBackendPlugin)}):\n${proc.output().slice(-3000)}`,
        );
      }
    },
    async stop() {
      await proc?.stop('SIGTERM', 20_000);
    },
    async pause() {
      if (proc?.running()) process.kill(proc.pid, 'SIGSTOP');
    },
    async resume() {
      if (proc?.running()) process.kill(proc.pid, 'SIGCONT');
    },
    logs: () => proc?.output() ?? '',
  };
  await server.start();
  return server;
}

function rest(orthanc: Pick<OrthancServer, 'url' | 'username' | 'password'>): AxiosInstance {
  return axios.create({
    baseURL: orthanc.url,
    auth: { username: orthanc.username, password: orthanc.password },
    timeout: 10_000,
  });
}

/** The Orthanc ID of a study given its StudyInstanceUID (POST /tools/lookup), or undefined when Orthanc does not hold it. */
export async function orthancIdOfStudy(
  orthanc: Pick<OrthancServer, 'url' | 'username' | 'password'>,
  studyInstanceUID: string,
): Promise<string | undefined> {
  const { data } = await rest(orthanc).post<{ ID: string; Type: string }[]>('/tools/lookup', studyInstanceUID, {
    headers: { 'Content-Type': 'text/plain' },
  });
  return data.find((r) => r.Type === 'Study')?.ID;
}

const ORTHANC_ID = /^[0-9a-f]{8}(-[0-9a-f]{8}){4}$/;

/**
 * Waits until Orthanc has logged StableStudy for the study in /changes (given as StudyInstanceUID or
 * Orthanc ID) and reports it IsStable. Returns the study's Orthanc ID.
 */
export async function waitForStableStudy(
  orthanc: Pick<OrthancServer, 'url' | 'username' | 'password'>,
  study: string,
  timeoutMs = 30_000,
): Promise<string> {
  const http = rest(orthanc);
  let id: string | undefined = ORTHANC_ID.test(study) ? study : undefined;
  let since = 0;
  let seen = false;
  await waitFor(
    async () => {
      id ??= await orthancIdOfStudy(orthanc, study);
      if (!id) return false;
      for (;;) {
        const { data } = await http.get<{
          Changes: { ChangeType: string; ID: string; Seq: number }[];
          Done: boolean;
          Last: number;
        }>('/changes', { params: { since, limit: 500 } });
        if (data.Changes.some((c) => c.ChangeType === 'StableStudy' && c.ID === id)) seen = true;
        since = data.Last;
        if (data.Done || data.Changes.length === 0) break;
      }
      if (!seen) return false;
      const { data } = await http.get<{ IsStable: boolean }>(`/studies/${id}`);
      return data.IsStable;
    },
    { timeoutMs, intervalMs: 250, description: `StableStudy for study ${study} in ${orthanc.url}/changes` },
  );
  return id!;
}
