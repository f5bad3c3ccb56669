/**
 * The commands that work on the host itself rather than through the app's API: `setup` (writes .env),
 * `backup FILE` and `restore FILE` (the automation state, read and written directly). Their folders and
 * storage come from flags, else the environment, else the .env file (--env-path, default ./.env;
 * not --env-file, which Node 20 takes as its own option wherever it stands on the command line), as
 * `npm start` reads them (the environment wins over the file).
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { runBackup, type StateLocation } from './backup';
import { EnvFile } from './envFile';
import type { ExitCode } from './io';
import type { CliContext } from './program';
import { createPrompter } from './prompter';
import { runRestore } from './restore';
import { runSetup, SETUP_SECRETS } from './setup';

interface Wiring {
  context: CliContext;
  json: () => boolean;
  action: <A extends unknown[]>(run: (...args: A) => Promise<ExitCode>) => (...args: A) => Promise<void>;
}

const collect = (value: string, previous: string[]) => [...previous, value];

interface LocationFlags {
  envPath: string;
  env: boolean;
  rules?: string;
  storageConnection?: string;
}

/** Where the state is: a flag, else the environment, else .env (relative paths from the file's folder). */
function locate(flags: LocationFlags, env: NodeJS.ProcessEnv): StateLocation {
  const envFile = path.resolve(flags.envPath);
  const file = existsSync(envFile) ? EnvFile.parse(readFileSync(envFile, 'utf8')) : undefined;
  const fromEnv = (name: string) => env[name]?.trim() || undefined;
  const fromFile = (name: string) => file?.get(name)?.trim() || undefined;
  const rulesDir =
    flags.rules !== undefined
      ? path.resolve(flags.rules)
      : fromEnv('ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH') !== undefined
        ? path.resolve(fromEnv('ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH')!)
        : path.resolve(path.dirname(envFile), fromFile('ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH') ?? 'automation/rules');
  return {
    rulesDir,
    envFile,
    includeEnv: flags.env,
    // npm start's Azurite on loopback when nothing says otherwise (compose: docs/operations.md, Backup).
    storageConnection:
      flags.storageConnection ??
      fromEnv('AzureWebJobsStorage') ??
      fromFile('AzureWebJobsStorage') ??
      'UseDevelopmentStorage=true',
  };
}

export function registerStateCommands(program: Command, { context, json, action }: Wiring): void {
  program
    .command('setup')
    .description(
      'first-run wizard: folders, AE title, ports, destinations, generated secrets; writes .env (safe to re-run)',
    )
    .option('--env-path <file>', 'the .env file to write', '.env')
    .option('-y, --yes', 'ask nothing: current values, or the flags below (for scripts)')
    .option('--storage-path <dir>', 'ORTHANC_AUTOMATION_STORAGE_PATH: folder of the results')
    .option('--rules-path <dir>', 'ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH: folder of the rules')
    .option('--dicom-path <dir>', "ORTHANC_DB_STORAGE_PATH: Orthanc's DICOM files")
    .option('--aet <title>', "ORTHANC_AET_NAME: Orthanc's AE title")
    .option('--dicom-port <port>', 'ORTHANC_AET_PORT')
    .option('--web-port <port>', 'ORTHANC_WEB_PORT (HTTP, redirects to HTTPS)')
    .option('--https-port <port>', 'ORTHANC_HTTPS_PORT')
    .option('--stable-age <seconds>', 'ORTHANC_STABLE_AGE')
    .option('--destination <NAME=AET@host:port>', 'add or change a DICOM destination (repeatable)', collect, [])
    .option('--remove-destination <NAME>', 'remove a destination (repeatable)', collect, [])
    .option(
      '--replace-secret <NAME>',
      `replace an existing secret with a new one (repeatable; ${SETUP_SECRETS.map((s) => s.name).join(', ')})`,
      collect,
      [],
    )
    .addHelpText(
      'after',
      '\nExit codes: 0 written, 1 written with problems (listed) or not written when declined, 2 bad flags.',
    )
    .action(
      action(async (options: Record<string, unknown>) => {
        const streams = context.prompts ?? { input: process.stdin, output: json() ? process.stderr : process.stdout };
        const prompter = options.yes ? undefined : createPrompter(streams);
        try {
          return await runSetup(
            {
              ...(options as Partial<Parameters<typeof runSetup>[0]>),
              envFile: options.envPath as string,
              yes: options.yes === true,
              json: json(),
              destination: options.destination as string[],
              removeDestination: options.removeDestination as string[],
              replaceSecret: options.replaceSecret as string[],
            },
            context.io,
            prompter,
          );
        } finally {
          prompter?.close();
        }
      }),
    );

  const locationOptions = (command: Command) =>
    command
      .option('--env-path <file>', 'the .env whose keys and folders are used', '.env')
      .option('--no-env', 'leave .env (keys and secrets) out')
      .option('--rules <dir>', 'the rules folder (default ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH)')
      .option(
        '--storage-connection <string>',
        'the storage account (default AzureWebJobsStorage, else Azurite on 127.0.0.1; prefer the variable, argv is visible)',
      );

  locationOptions(
    program
      .command('backup')
      .description(
        'save the automation state (rules, master.json, .env keys, every app table and blob) into FILE (.tar.gz)',
      )
      .argument('<file>', 'the archive to write (mode 600: it holds the secrets of .env)'),
  )
    .addHelpText(
      'after',
      "\nNot the DICOM store (Orthanc's own backup covers it). Exit codes: 0 ok, 1 saved with problems, 2 could not run.",
    )
    .action(
      action(async (file: string, flags: LocationFlags) =>
        runBackup({ ...locate(flags, context.env), file, json: json() }, context.io),
      ),
    );

  locationOptions(
    program
      .command('restore')
      .description('put back a backup: checks its manifest first, refuses a ledger that holds jobs without --force')
      .argument('<file>', 'an archive written by backup')
      .option('--force', 'write over a ledger with jobs, and over rule files and a .env that differ'),
  )
    .addHelpText(
      'after',
      '\nExit codes: 0 restored, 1 refused (something in the way, listed), 2 could not run (bad file, storage unreachable).',
    )
    .action(
      action(async (file: string, flags: LocationFlags & { force?: boolean }) =>
        runRestore({ ...locate(flags, context.env), file, force: flags.force === true, json: json() }, context.io),
      ),
    );
}
