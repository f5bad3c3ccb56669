/**
 * npm run rules -- check <dir> [--json]
 * npm run rules -- test <dir> (--file <x.dcm> [--remote-aet <AET>] | --study <orthancId> | --series <orthancId>) [--json]
 *
 * `check` validates every rule file (exit 1 when any has errors, naming each bad file); `test` is a
 * dry run: which rules match a DICOM file or a study/series in Orthanc and why, acting on nothing.
 * The commands themselves live in shared/cli/rules.ts, shared with `autorthanc rules`.
 */
import { parseArgs } from 'node:util';
import { CliError, consoleIo } from '../shared/cli/io';
import { rulesCheck, rulesTest } from '../shared/cli/rules';

const USAGE = `Usage:
  npm run rules -- check <dir> [--json]
  npm run rules -- test <dir> --file <x.dcm> [--remote-aet <AET>] [--json]
  npm run rules -- test <dir> --study <orthancId> [--json]
  npm run rules -- test <dir> --series <orthancId> [--json]`;

function usage(message?: string): never {
  if (message) console.error(`rules: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

async function main(): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        file: { type: 'string' },
        study: { type: 'string' },
        series: { type: 'string' },
        'remote-aet': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    usage((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const [command, dir, ...extra] = positionals;
  if (!command || !dir) usage();
  if (extra.length > 0) usage(`unexpected argument '${extra[0]}'`);
  if (command !== 'check' && command !== 'test') usage(`unknown command '${command}'`);
  try {
    const code =
      command === 'check'
        ? await rulesCheck(consoleIo, dir, { json: values.json })
        : await rulesTest(consoleIo, dir, {
            file: values.file,
            study: values.study,
            series: values.series,
            remoteAet: values['remote-aet'],
            json: values.json,
          });
    process.exit(code);
  } catch (error) {
    if (error instanceof CliError) usage(error.message);
    throw error;
  }
}

main().catch((error: Error) => {
  console.error(`rules: ${error.message}`);
  process.exit(1);
});
