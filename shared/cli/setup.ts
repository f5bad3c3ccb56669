/**
 * `autorthanc setup`: the first-run wizard (the seed PACS's `make setup`). It asks for the folders, the
 * AE title and ports, the DICOM destinations, and generates every secret docker-compose.yml needs, then
 * writes `.env` in place (comments and order kept). Re-running it shows the current values as defaults
 * and never replaces a secret without an explicit yes (or `--replace-secret NAME` with `--yes`).
 * Every answer is checked by the app's own settings schema (checkSetting), so nothing the wizard
 * accepts is refused at start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { checkSetting, ConfigError, loadConfig, secretProblem, type ModalityDefinition } from '../config';
import { PEER_NAME } from '../orthanc/peers';
import { EnvFile } from './envFile';
import { CliError, EXIT, printJson, type ExitCode, type Io } from './io';
import type { Prompter } from './prompter';

export interface SetupOptions {
  envFile: string;
  yes: boolean;
  json: boolean;
  storagePath?: string;
  rulesPath?: string;
  dicomPath?: string;
  aet?: string;
  dicomPort?: string;
  webPort?: string;
  httpsPort?: string;
  stableAge?: string;
  destination: string[];
  removeDestination: string[];
  replaceSecret: string[];
}

interface Question {
  /** The variable written. */
  name: string;
  option: keyof SetupOptions;
  label: string;
  fallback: string;
  /** The app setting whose validator checks the answer (the variable itself when the app reads it). */
  checkedAs?: string;
}

/** Both spellings of the DICOM store are honoured by compose; the one the file already uses is kept. */
const dicomPathName = (file: EnvFile) =>
  file.has('ORTHANC_DB_STORAGE_PATH') || !file.has('ORTAHNC_DB_STORAGE_PATH')
    ? 'ORTHANC_DB_STORAGE_PATH'
    : 'ORTAHNC_DB_STORAGE_PATH';

function questions(file: EnvFile): Question[] {
  return [
    {
      name: 'ORTHANC_AUTOMATION_STORAGE_PATH',
      option: 'storagePath',
      label: 'Folder of the results (rules write <folder>/<rule>/...)',
      fallback: './automation/storage',
    },
    {
      name: 'ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH',
      option: 'rulesPath',
      label: 'Folder of the rule files (and master.json)',
      fallback: './automation/rules',
    },
    {
      name: dicomPathName(file),
      option: 'dicomPath',
      label: "Folder of Orthanc's DICOM files (a fast disk)",
      fallback: './orthanc_db',
      checkedAs: 'ORTHANC_AUTOMATION_STORAGE_PATH',
    },
    { name: 'ORTHANC_AET_NAME', option: 'aet', label: "Orthanc's DICOM AE title", fallback: 'AUTORTHANCAET' },
    { name: 'ORTHANC_AET_PORT', option: 'dicomPort', label: "Orthanc's DICOM port", fallback: '4242' },
    { name: 'ORTHANC_WEB_PORT', option: 'webPort', label: 'HTTP port (redirects to HTTPS)', fallback: '80' },
    {
      name: 'ORTHANC_HTTPS_PORT',
      option: 'httpsPort',
      label: 'HTTPS port (Orthanc, dashboard and API)',
      fallback: '443',
      checkedAs: 'ORTHANC_WEB_PORT',
    },
    {
      name: 'ORTHANC_STABLE_AGE',
      option: 'stableAge',
      label: 'Seconds without new images before a study is stable',
      fallback: '300',
    },
  ];
}

interface SecretSpec {
  name: string;
  what: string;
  /** What replacing an existing one breaks, said before asking. */
  caution?: string;
}

/** The secrets of .env.example and deploy/generate-keys.sh, which docker-compose.yml refuses to start without. */
export const SETUP_SECRETS: readonly SecretSpec[] = [
  { name: 'AUTOMATION_FUNCTION_KEY', what: 'function key (Orthanc hook and nginx to the function app)' },
  {
    name: 'ORTHANC_PASSWORD',
    what: "Orthanc's login (people and the function app)",
    caution: 'everyone who logs in to Orthanc needs the new one',
  },
  {
    name: 'DASHBOARD_PASSWORD',
    what: 'dashboard and API login (nginx)',
    caution: 'run deploy/generate-keys.sh afterwards to hash the new one for nginx',
  },
  {
    name: 'POSTGRES_PASSWORD',
    what: "PostgreSQL password (Orthanc's index)",
    caution:
      'PostgreSQL keeps the password its data volume was created with: an existing database must be changed too (ALTER USER), or Orthanc cannot connect',
  },
  {
    name: 'AUTOMATION_ANONYMISATION_SECRET',
    what: 'key of pseudonyms and replacement UIDs',
    caution: 'every pseudonym and replacement UID made from now on differs from those made before',
  },
];

const generateSecret = () => randomBytes(32).toString('hex');
const isPlaceholder = (value: string) => secretProblem(value)?.startsWith('is a placeholder') === true;

export interface SetupResult {
  envFile: string;
  created: boolean;
  changed: string[];
  generatedSecrets: string[];
  keptSecrets: string[];
  destinations: Record<string, { AET: string; Host: string; Port: number }>;
  folders: string[];
  problems: string[];
}

/** `NAME=AET@host:port`, checked as ORTHANC_DICOM_MODALITIES would check it. */
export function parseDestination(spec: string): { name: string; definition: ModalityDefinition } | { problem: string } {
  const match = /^([^=]+)=(.+)@(\[[^\]]+\]|[^@:]+):([^:]+)$/.exec(spec.trim());
  if (!match) return { problem: `expected NAME=AET@host:port (e.g. PACS=PACSAET@10.0.0.5:104), got '${spec}'` };
  const [, name, aet, rawHost, port] = match;
  if (!PEER_NAME.test(name)) return { problem: `destination name '${name}': use 1-64 letters, digits, _ or -` };
  const host = rawHost.replace(/^\[(.*)\]$/, '$1');
  // The same rule as Orthanc's own AE title, for a reason more precise than the modality's.
  const title = checkSetting('ORTHANC_AET_NAME', aet);
  if (!title.ok) return { problem: `destination ${name}: ${title.problem}` };
  const checked = checkSetting(
    'ORTHANC_DICOM_MODALITIES',
    JSON.stringify({ [name]: [aet, host, /^\d+$/.test(port) ? Number(port) : port] }),
  );
  if (!checked.ok) return { problem: checked.problem };
  return { name, definition: (checked.value as Record<string, ModalityDefinition>)[name] };
}

/** The .env.example next to the package (the template of a first run), if it can be found. */
function templateText(envFile: string): string | undefined {
  const candidates = [path.join(path.dirname(envFile), '.env.example')];
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) {
      candidates.push(path.join(dir, '.env.example'));
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  const found = candidates.find((c) => existsSync(c));
  return found === undefined ? undefined : readFileSync(found, 'utf8');
}

export async function runSetup(options: SetupOptions, io: Io, prompter?: Prompter): Promise<ExitCode> {
  const envFile = path.resolve(options.envFile);
  const created = !existsSync(envFile);
  const template = created ? templateText(envFile) : undefined;
  const file = EnvFile.parse(created ? (template ?? '') : readFileSync(envFile, 'utf8'));
  const interactive = !options.yes;
  if (interactive && !prompter) throw new CliError('setup needs a terminal for its questions, or --yes with flags');
  const say = (line: string) => {
    if (interactive) prompter!.say(line);
    else if (!options.json) io.err(line);
  };
  const problems: string[] = [];
  const changed = new Set<string>();
  const set = (name: string, value: string) => {
    if (file.get(name) !== value) {
      file.set(name, value);
      changed.add(name);
    }
  };

  say(
    created
      ? `autorthanc setup: a new ${envFile}${template === undefined ? '' : ' from .env.example'}. Press Enter to keep the value in [brackets].`
      : `autorthanc setup: updating ${envFile}. Press Enter to keep the value in [brackets].`,
  );

  // --- folders, AE title, ports --------------------------------------------------------------------
  for (const q of questions(file)) {
    const given = options[q.option] as string | undefined;
    const current = file.get(q.name)?.trim() || q.fallback;
    const check = (answer: string): string | undefined => {
      if (answer === '') return 'must not be empty';
      const result = checkSetting(q.checkedAs ?? q.name, answer);
      return result.ok ? undefined : result.problem;
    };
    if (!interactive) {
      const value = given ?? current;
      const problem = check(value);
      if (problem) problems.push(`--${kebab(q.option)} (${q.name}): ${problem}`);
      else set(q.name, value);
      continue;
    }
    const value = await askUntilValid(prompter!, `${q.label} [${given ?? current}]: `, given ?? current, check);
    set(q.name, value);
  }

  // --- destinations --------------------------------------------------------------------------------
  const rawModalities = file.get('ORTHANC_DICOM_MODALITIES') ?? '';
  const parsedModalities = checkSetting('ORTHANC_DICOM_MODALITIES', rawModalities);
  const destinations: Record<string, { AET: string; Host: string; Port: number }> = {};
  if (parsedModalities.ok)
    for (const [name, d] of Object.entries(parsedModalities.value as Record<string, ModalityDefinition>))
      destinations[name] = { AET: d.AET, Host: d.Host, Port: d.Port };
  else
    say(
      `ORTHANC_DICOM_MODALITIES in the file is not valid (${parsedModalities.problem}); it is kept unless you change the destinations.`,
    );
  let destinationsChanged = false;
  const addDestination = (spec: string): string | undefined => {
    const parsed = parseDestination(spec);
    if ('problem' in parsed) return parsed.problem;
    destinations[parsed.name] = {
      AET: parsed.definition.AET,
      Host: parsed.definition.Host,
      Port: parsed.definition.Port,
    };
    destinationsChanged = true;
    return undefined;
  };
  const removeDestination = (name: string): string | undefined => {
    if (!(name in destinations))
      return `there is no destination '${name}' (${Object.keys(destinations).join(', ') || 'none'})`;
    delete destinations[name];
    destinationsChanged = true;
    return undefined;
  };
  for (const spec of options.destination) {
    const problem = addDestination(spec);
    if (problem) problems.push(`--destination: ${problem}`);
  }
  for (const name of options.removeDestination) {
    const problem = removeDestination(name);
    if (problem) problems.push(`--remove-destination: ${problem}`);
  }
  if (interactive) {
    say('DICOM destinations (ORTHANC_DICOM_MODALITIES; MODALITY_<NAME> lines in the file stay as they are):');
    for (;;) {
      const names = Object.entries(destinations);
      say(names.length === 0 ? '  (none)' : names.map(([n, d]) => `  ${n} = ${d.AET}@${d.Host}:${d.Port}`).join('\n'));
      const answer = await prompter!.ask('Add NAME=AET@host:port, remove with -NAME, Enter when done: ');
      if (answer === '') break;
      const problem = answer.startsWith('-') ? removeDestination(answer.slice(1).trim()) : addDestination(answer);
      if (problem) say(`  ✗ ${problem}`);
    }
  }
  if (destinationsChanged || (parsedModalities.ok && !file.has('ORTHANC_DICOM_MODALITIES')))
    set(
      'ORTHANC_DICOM_MODALITIES',
      JSON.stringify(Object.fromEntries(Object.entries(destinations).map(([n, d]) => [n, [d.AET, d.Host, d.Port]]))),
    );

  // --- secrets -------------------------------------------------------------------------------------
  const unknownReplace = options.replaceSecret.filter((n) => !SETUP_SECRETS.some((s) => s.name === n));
  if (unknownReplace.length > 0)
    problems.push(
      `--replace-secret: ${unknownReplace.join(', ')} is not one of ${SETUP_SECRETS.map((s) => s.name).join(', ')}`,
    );
  if (!interactive && problems.length > 0) throw new CliError(`setup: nothing written:\n  ${problems.join('\n  ')}`);

  const generatedSecrets: string[] = [];
  const keptSecrets: string[] = [];
  for (const secret of SETUP_SECRETS) {
    const current = file.get(secret.name)?.trim() ?? '';
    let replace: boolean;
    if (current === '' || isPlaceholder(current)) replace = true;
    else if (options.replaceSecret.includes(secret.name)) replace = true;
    else if (!interactive) {
      replace = false;
      const weakness = secretProblem(current);
      if (weakness) problems.push(`${secret.name} ${weakness}; kept (replace it with --replace-secret ${secret.name})`);
    } else {
      const weakness = secretProblem(current);
      say(`${secret.name}, the ${secret.what}, is set${weakness ? ` but ${weakness}` : ''}.`);
      if (secret.caution) say(`  Replacing it: ${secret.caution}.`);
      replace = await confirm(prompter!, `Replace ${secret.name} with a new random one? [y/N]: `, false);
    }
    if (replace) {
      set(secret.name, generateSecret());
      generatedSecrets.push(secret.name);
      if (current !== '' && !isPlaceholder(current) && secret.caution)
        say(`${secret.name} replaced: ${secret.caution}.`);
    } else keptSecrets.push(secret.name);
  }

  // --- write -----------------------------------------------------------------------------------------
  if (interactive) {
    say(
      changed.size === 0
        ? 'Nothing to change.'
        : `To write: ${[...changed].join(', ')}${generatedSecrets.length ? ` (new secrets: ${generatedSecrets.join(', ')})` : ''}.`,
    );
    if (changed.size > 0 && !(await confirm(prompter!, `Write ${envFile}? [Y/n]: `, true))) {
      say('Nothing was written.');
      return EXIT.problems;
    }
  }
  if (changed.size > 0 || created) writeEnvFile(envFile, file.toString());

  const base = path.dirname(envFile);
  const folders: string[] = [];
  for (const name of ['ORTHANC_AUTOMATION_STORAGE_PATH', 'ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH', dicomPathName(file)]) {
    const folder = path.resolve(base, file.get(name) ?? '');
    if (existsSync(folder)) continue;
    try {
      // Made now by the operator's user: docker would otherwise create them owned by root.
      mkdirSync(folder, { recursive: true });
      folders.push(folder);
    } catch (error) {
      problems.push(
        `${name}: cannot create ${folder} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
      );
    }
  }
  problems.push(...configProblems(file, base));

  const result: SetupResult = {
    envFile,
    created,
    changed: [...changed],
    generatedSecrets,
    keptSecrets,
    destinations,
    folders,
    problems,
  };
  if (options.json) printJson(io, result);
  else {
    const report = (line: string) => (interactive ? prompter!.say(line) : io.out(line));
    report(changed.size > 0 || created ? `Wrote ${envFile} (mode 600).` : `${envFile} is up to date.`);
    if (generatedSecrets.length)
      report(`Generated: ${generatedSecrets.join(', ')} (the values are in the file; keep it private and backed up).`);
    for (const folder of folders) report(`Created ${folder}`);
    for (const problem of problems) report(`Problem: ${problem}`);
    report('Next: deploy/generate-keys.sh (nginx login hash, TLS certificate), then docker compose up -d.');
  }
  return problems.length === 0 ? EXIT.ok : EXIT.problems;
}

/** The app's whole-configuration check on the written values (folders relative to the file, as compose reads them). */
function configProblems(file: EnvFile, base: string): string[] {
  const env: NodeJS.ProcessEnv = { ...file.values() };
  for (const name of ['ORTHANC_AUTOMATION_STORAGE_PATH', 'ORTHANC_AUTOMATION_JSON_SCRIPTS_PATH'])
    if (env[name]) env[name] = path.resolve(base, env[name]);
  // compose's default staging folder (./automation-staging), not the app's own default.
  env.AUTOMATION_STAGING_PATH = path.resolve(base, env.AUTOMATION_STAGING_PATH || './automation-staging');
  try {
    loadConfig(env);
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
}

/** Written beside the target and renamed over it, private from the first byte (it holds secrets). */
function writeEnvFile(target: string, text: string): void {
  const temporary = `${target}.${process.pid}.tmp`;
  writeFileSync(temporary, text, { mode: 0o600 });
  renameSync(temporary, target);
}

async function askUntilValid(
  prompter: Prompter,
  question: string,
  fallback: string,
  check: (answer: string) => string | undefined,
): Promise<string> {
  for (;;) {
    const answer = (await prompter.ask(question)) || fallback;
    const problem = check(answer);
    if (!problem) return answer;
    prompter.say(`  ✗ ${problem}; try again`);
  }
}

async function confirm(prompter: Prompter, question: string, fallback: boolean): Promise<boolean> {
  for (;;) {
    const answer = (await prompter.ask(question)).toLowerCase();
    if (answer === '') return fallback;
    if (answer === 'y' || answer === 'yes') return true;
    if (answer === 'n' || answer === 'no') return false;
    prompter.say('  ✗ answer y or n');
  }
}

const kebab = (option: string) => option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
