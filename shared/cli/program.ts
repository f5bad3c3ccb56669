/**
 * `autorthanc`: the operator's command line over the app's keyed API (docs/operations.md, "CLI").
 * commander parses the arguments; each command is a few lines calling the API and the formatters, and
 * returns its exit code: 0 ok, 1 problems found, 2 could not run. Parse errors exit 2 as well.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { DoctorReport } from '../operator/doctor';
import type { EchoAnswer } from '../operator/echo';
import { createApi, defaultUrl, errorOf, type Api } from './api';
import { readStatus, runDoctorChecks } from './doctor';
import {
  destinationRows,
  formatDestinations,
  formatEcho,
  formatFindings,
  formatJob,
  formatJobs,
  formatStatus,
  type ListedJob,
} from './format';
import { CliError, EXIT, printJson, type ExitCode, type Io } from './io';
import type { PromptStreams } from './prompter';
import { rulesCheck, rulesTest } from './rules';
import { registerStateCommands } from './stateCommands';

export interface CliContext {
  io: Io;
  env: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  /** Where `setup` asks its questions (default: the process's stdin and stdout). */
  prompts?: PromptStreams;
}

interface GlobalOptions {
  url?: string;
  key?: string;
  json?: boolean;
}

const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed'];

function integerIn(min: number, max: number) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max)
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return value;
  };
}

/** Job ids and destination names go into a URL path: encode them, whatever was typed. */
const segment = (value: string) => encodeURIComponent(value);

interface JobsPage {
  jobs: ListedJob[];
  next?: string;
}

export function buildProgram(context: CliContext, done: (code: ExitCode) => void): Command {
  const { io } = context;
  const program = new Command('autorthanc');
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const key = () => globals().key ?? (context.env.AUTOMATION_FUNCTION_KEY?.trim() || undefined);
  const api = (): Api => createApi({ url: globals().url ?? defaultUrl(context.env), key: key(), fetch: context.fetch });
  const json = () => globals().json === true;
  // Each action ends by handing its exit code over; commander itself only parses.
  const action =
    <A extends unknown[]>(run: (...args: A) => Promise<ExitCode>) =>
    async (...args: A) =>
      done(await run(...args));

  program
    .description(
      "Operate autorthanc-functions: jobs, destinations, rules and a health check over the app's keyed API;\n" +
        'setup, backup and restore on the host itself (see docs/operations.md).',
    )
    .option('--url <url>', 'the function app (default http://127.0.0.1:${FUNCTIONS_HTTP_PORT:-7071})')
    .option('--key <key>', 'its function key (default: AUTOMATION_FUNCTION_KEY; prefer the variable, argv is visible)')
    .option('--json', 'print JSON instead of text')
    .addHelpText(
      'after',
      '\nExit codes: 0 ok, 1 problems found, 2 could not run (unreachable, refused key, bad arguments).',
    )
    .configureOutput({
      writeOut: (text) => io.out(text.trimEnd()),
      writeErr: (text) => io.err(text.trimEnd()),
    })
    .exitOverride()
    .showHelpAfterError('(autorthanc --help lists the commands)');

  program
    .command('status')
    .description('Orthanc, storage, queues, change feed and destinations, as GET /api/status reports them')
    .action(
      action(async () => {
        const { body } = await readStatus(api());
        if (json()) printJson(io, body);
        else formatStatus(body).forEach((l) => io.out(l));
        return body.ok ? EXIT.ok : EXIT.problems;
      }),
    );

  program
    .command('jobs')
    .description('recent jobs, newest first')
    .addOption(new Option('--status <status>', 'only jobs in this state').choices(JOB_STATUSES))
    .option('--rule <id>', 'only jobs of this rule')
    .option('--limit <n>', 'at most this many (1-200)', integerIn(1, 200), 50)
    .option('--days <n>', 'this many days back (1-31)', integerIn(1, 31), 7)
    .action(
      action(async (options: { status?: string; rule?: string; limit: number; days: number }) => {
        const query = new URLSearchParams({ limit: String(options.limit), days: String(options.days) });
        if (options.status) query.set('status', options.status);
        if (options.rule) query.set('rule', options.rule);
        const answer = await api().get<JobsPage>(`jobs?${query.toString()}`);
        if (answer.status !== 200) throw new CliError(`cannot list jobs: ${errorOf(answer)}`);
        if (json()) printJson(io, answer.body);
        else formatJobs(answer.body.jobs, answer.body.next !== undefined).forEach((l) => io.out(l));
        return EXIT.ok;
      }),
    );

  program
    .command('job')
    .description('one job: its rule, steps, timings, counts, output and error')
    .argument('<id>', 'the job id')
    .action(
      action(async (id: string) => {
        const answer = await api().get<ListedJob>(`jobs/${segment(id)}`);
        if (answer.status === 404) return notFound(`no job ${id}`);
        if (answer.status !== 200) throw new CliError(errorOf(answer));
        if (json()) printJson(io, answer.body);
        else formatJob(answer.body).forEach((l) => io.out(l));
        return EXIT.ok;
      }),
    );

  program
    .command('retry')
    .description('run a failed job again under the same id, or every failed job of the last --days')
    .argument('[id]', 'the job id')
    .option('--failed', 'retry every failed job')
    .option('--days <n>', 'with --failed: this many days back (1-31)', integerIn(1, 31), 7)
    .action(
      action(async (id: string | undefined, options: { failed?: boolean; days: number }) => {
        if ((id === undefined) === (options.failed !== true))
          throw new CliError('retry needs a job id or --failed (not both)');
        const client = api();
        const ids = id !== undefined ? [id] : await failedJobIds(client, options.days);
        const results: Array<{ id: string; retried: boolean; step?: string; error?: string }> = [];
        for (const jobId of ids) {
          const answer = await client.post<{ step?: string }>(`jobs/${segment(jobId)}/retry`);
          const result =
            answer.status === 202
              ? { id: jobId, retried: true, step: answer.body.step }
              : { id: jobId, retried: false, error: errorOf(answer) };
          results.push(result);
          if (!json())
            io.out(
              result.retried
                ? `retried ${jobId} from step ${result.step ?? '?'} (${results.length}/${ids.length})`
                : `not retried ${jobId}: ${result.error}`,
            );
        }
        if (json()) printJson(io, { retried: results.filter((r) => r.retried).length, results });
        else if (ids.length === 0) io.out(`No failed jobs in the last ${options.days} day(s).`);
        return results.every((r) => r.retried) ? EXIT.ok : EXIT.problems;
      }),
    );

  program
    .command('destinations')
    .description('every DICOM and DICOMweb destination and how it last answered (exit 1 if one is down)')
    .action(
      action(async () => {
        const { body } = await readStatus(api());
        const rows = destinationRows(body);
        if (json()) printJson(io, { destinations: rows });
        else if (rows.length === 0)
          io.out(
            'No destinations configured (MODALITY_<NAME>, ORTHANC_DICOM_MODALITIES, DICOMWEB_<NAME>, or the dashboard).',
          );
        else formatDestinations(body).forEach((l) => io.out(l));
        return rows.every((r) => r.ok) ? EXIT.ok : EXIT.problems;
      }),
    );

  program
    .command('test')
    .description('C-ECHO one destination through Orthanc (a DICOMweb one: a QIDO probe), timed')
    .argument('<name>', 'the destination name')
    .action(
      action(async (name: string) => {
        const answer = await api().post<EchoAnswer>(`destinations/${segment(name)}/echo`);
        if (answer.status === 404) return notFound(`no destination ${name}`);
        if (answer.status !== 200) throw new CliError(errorOf(answer));
        if (json()) printJson(io, answer.body);
        else io.out(formatEcho(answer.body));
        return answer.body.ok ? EXIT.ok : EXIT.problems;
      }),
    );

  const rules = program
    .command('rules')
    .description('check the rule files, or dry-run them (reads the rules folder itself, not the app)');
  const rulesDir = (dir: string | undefined) =>
    dir ?? (context.env.ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH?.trim() || 'automation/rules');
  rules
    .command('check')
    .description('validate every rule file (exit 1 when any has errors)')
    .argument('[dir]', 'the rules folder (default ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH or automation/rules)')
    .action(action(async (dir: string | undefined) => rulesCheck(io, rulesDir(dir), { json: json() })));
  rules
    .command('test')
    .description('which rules match a DICOM file, or a study or series in Orthanc, and why; acts on nothing')
    .argument('[dir]', 'the rules folder (default as for check)')
    .option('--file <x.dcm>', 'a DICOM file')
    .option('--remote-aet <aet>', 'with --file: the sending AE title to assume')
    .option('--study <orthancId>', 'a study in Orthanc (ORTHANC_URL, ORTHANC_USERNAME, ORTHANC_PASSWORD)')
    .option('--series <orthancId>', 'a series in Orthanc')
    .action(
      action(
        async (
          dir: string | undefined,
          options: { file?: string; remoteAet?: string; study?: string; series?: string },
        ) => rulesTest(io, rulesDir(dir), { ...options, json: json() }),
      ),
    );

  program
    .command('doctor')
    .description(
      'is everything in place for jobs to flow: Orthanc with the credentials, storage writable with free space, ' +
        'secrets set and strong, clocks, queues draining, destinations answering',
    )
    .option('--drain-seconds <n>', 'how long to watch queues that hold messages', integerIn(1, 300), 5)
    .action(
      action(async (options: { drainSeconds: number }) => {
        const findings = await runDoctorChecks(api(), {
          key: key(),
          drainSeconds: options.drainSeconds,
          sleep: context.sleep,
        });
        const ok = findings.every((f) => f.ok);
        if (json()) printJson(io, { ok, checks: findings } satisfies { ok: boolean } & Pick<DoctorReport, 'checks'>);
        else formatFindings(findings).forEach((l) => io.out(l));
        return ok ? EXIT.ok : EXIT.problems;
      }),
    );

  registerStateCommands(program, { context, json, action });

  function notFound(message: string): ExitCode {
    if (json()) printJson(io, { error: message });
    else io.err(message);
    return EXIT.problems;
  }

  return program;
}

async function failedJobIds(api: Api, days: number): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const query = new URLSearchParams({ status: 'failed', limit: '200', days: String(days) });
    if (cursor) query.set('cursor', cursor);
    const answer = await api.get<JobsPage>(`jobs?${query.toString()}`);
    if (answer.status !== 200) throw new CliError(`cannot list failed jobs: ${errorOf(answer)}`);
    ids.push(...answer.body.jobs.map((j) => j.id));
    cursor = answer.body.next;
  } while (cursor);
  return ids;
}

/** Runs one command line (argv without node and the script) and resolves with its exit code. */
export async function runCli(argv: string[], context: CliContext): Promise<ExitCode> {
  let code: ExitCode = EXIT.ok;
  const program = buildProgram(context, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with code 0; every other parse error is a bad argument.
      return error.exitCode === 0 ? EXIT.ok : EXIT.couldNotRun;
    }
    if (error instanceof CliError) {
      if (program.opts<GlobalOptions>().json) printJson(context.io, { error: error.message });
      context.io.err(`autorthanc: ${error.message}`);
      return error.exitCode;
    }
    context.io.err(`autorthanc: ${(error as Error).message}`);
    return EXIT.couldNotRun;
  }
}
