/**
 * A real Orthanc (Debian's binary) for tests, run with the project's own deploy/orthanc/orthanc.json
 * and Lua hook: the same files compose mounts. Differences are environment variables only.
 */
import path from 'node:path';
import { freePort, makeTempDir, requireBinary, spawnManaged, waitFor, type ManagedProcess } from './process';
import type { PostgresServer } from './postgres';

const REPO = path.resolve(__dirname, '../..');
export const POSTGRES_INDEX_PLUGIN = '/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so';

/** The settings that put Orthanc's index in PostgreSQL: the same variables docker-compose.yml sets. */
export function postgresIndexEnv(postgres: Pick<PostgresServer, 'host' | 'port' | 'database' | 'username' | 'password'>, plugin: string): Record<string, string> {
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
}

export interface OrthancServer {
  url: string;
  httpPort: number;
  dicomPort: number;
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

export async function startOrthanc(options: OrthancOptions = {}): Promise<OrthancServer> {
  const binary = requireBinary('Orthanc', 'orthanc');
  const httpPort = await freePort();
  const dicomPort = await freePort();
  const storageDir = makeTempDir('orthanc-');
  const aet = options.aet ?? 'ORTHANCTEST';
  const username = 'orthanc';
  const password = 'orthanc-test-password';
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
    ORTHANC_LUA_SCRIPT: path.join(REPO, 'deploy/orthanc/automation.lua'),
    AUTOMATION_EVENTS_URL: options.eventsUrl ?? 'http://127.0.0.1:9/unused',
    AUTOMATION_FUNCTION_KEY: options.functionKey ?? '',
    ORTHANC_HTTP_TIMEOUT: '10',
  };
  if (options.postgres) Object.assign(env, postgresIndexEnv(options.postgres, POSTGRES_INDEX_PLUGIN));
  const auth = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  let proc: ManagedProcess | undefined;

  const server: OrthancServer = {
    url,
    httpPort,
    dicomPort,
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
    },
    async start() {
      if (proc?.running()) return;
      proc = spawnManaged(binary, [path.join(REPO, 'deploy/orthanc/orthanc.json')], { cwd: storageDir, env, name: 'orthanc' });
      await waitFor(
        async () => {
          if (!proc!.running()) throw new Error(`Orthanc exited:\n${proc!.output().slice(-3000)}`);
          const answer = await fetch(`${url}/system`, { headers: { Authorization: auth } });
          return answer.ok;
        },
        { timeoutMs: 60_000, intervalMs: 100, description: 'Orthanc to answer /system', onTimeout: () => proc!.output().slice(-3000) },
      );
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
