/**
 * `npm run devhost -- --app <dir> --port <n> [--enforce-auth] [--secrets <file>]`
 * Runs an Azure Functions v4 Node app folder locally, like `func start`.
 */
import { parseArgs } from 'node:util';
import { startHost } from './host';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      app: { type: 'string', default: '.' },
      port: { type: 'string', default: process.env.FUNCTIONS_HTTP_PORT ?? '7071' },
      'enforce-auth': { type: 'boolean', default: false },
      secrets: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log('Usage: npm run devhost -- --app <dir> [--port 7071] [--enforce-auth] [--secrets <keys.json>]');
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port must be a TCP port, got '${values.port}'`);
  const host = await startHost({ appDir: values.app, port, enforceAuth: values['enforce-auth'], secretsFile: values.secrets ?? process.env.DEVHOST_SECRETS_FILE });
  console.log('\nFunctions:\n');
  for (const line of host.listing) console.log(`        ${line}`);
  console.log(`\nKeys are ${values['enforce-auth'] ? 'required' : 'not checked (as with func start; --enforce-auth to check them)'}.`);
  console.log('Host started');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`${signal}: stopping (in-flight messages finish or are released)`);
    host.stop().then(() => process.exit(0), (error: Error) => {
      console.error(error.message);
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: Error) => {
  console.error(`devhost: ${error.message}`);
  process.exit(1);
});
