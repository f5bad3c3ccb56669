/**
 * `npm run devhost -- --app <dir> [--port 7071] [--enforce-auth] [--secrets <keys.json>]`
 * Runs an Azure Functions v4 Node app folder locally, like `func start`: lists the functions, prints
 * "Host started" when every listener is up, and stops gracefully on SIGINT/SIGTERM (exit 0).
 * Also runs as `node --import tsx devhost/cli.ts ...` (how tests start it as a child process).
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startHost } from './host';

const USAGE = `Usage: npm run devhost -- --app <dir> [--port 7071] [--enforce-auth] [--secrets <keys.json>]

  --app <dir>       the function app folder (package.json "main" glob, host.json, local.settings.json)
  --port <n>        HTTP port on 127.0.0.1 (default: FUNCTIONS_HTTP_PORT or 7071)
  --enforce-auth    check keys on function/admin routes and the admin API (also DEVHOST_ENFORCE_AUTH=1);
                    without it keys are not checked, as with func start
  --secrets <file>  keys file {"masterKey": "...", "functionKeys": {"default": "..."}}
                    (default <app>/.devhost/secrets.json, created with random keys when missing)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      app: { type: 'string', default: '.' },
      port: { type: 'string', default: process.env.FUNCTIONS_HTTP_PORT ?? '7071' },
      'enforce-auth': { type: 'boolean' },
      secrets: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`--port must be a TCP port, got '${values.port}'`);
  const appDir = path.resolve(values.app);
  const secretsFile =
    values.secrets ?? process.env.DEVHOST_SECRETS_FILE ?? path.join(appDir, '.devhost', 'secrets.json');
  const host = await startHost({ appDir, port, enforceAuth: values['enforce-auth'], secretsFile });
  console.log('\nFunctions:\n');
  for (const line of host.listing) console.log(`        ${line}\n`);
  const enforced = values['enforce-auth'] ?? /^(1|true|yes)$/i.test(process.env.DEVHOST_ENFORCE_AUTH ?? '');
  console.log(
    `Keys (${secretsFile}) are ${enforced ? 'required' : 'not checked (as with func start; --enforce-auth to check them)'}.`,
  );
  console.log(`Host id: ${host.hostId}`);
  console.log('Host started');
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping (running handlers finish or their messages are released)`);
    host.stop().then(
      () => process.exit(0),
      (error: Error) => {
        console.error(`devhost: shutdown failed: ${error.message}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: Error) => {
  console.error(`devhost: ${error.message}`);
  process.exit(1);
});
