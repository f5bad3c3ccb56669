/**
 * `rules check` and `rules test` (npm run rules, autorthanc rules): validate every rule file, or dry-run
 * the rules against a DICOM file or a study/series in Orthanc, acting on nothing. They read the rules
 * folder directly, so they work before the app runs; Orthanc is reached as the app reaches it
 * (ORTHANC_URL or ORTHANC_HTTP_PORT, ORTHANC_USERNAME, ORTHANC_PASSWORD).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { loadConfig } from '../config';
import { createOrthancClient } from '../orthanc/client';
import { verdictOf, type DryRunVerdict } from '../operator/rules';
import { collectResourceTags, createRuleLoader, valueText, type ResourceTags, type RuleSetSnapshot } from '../rules';
import type { ResourceLevel } from '../vocabulary';
import { CliError, EXIT, printJson, type ExitCode, type Io } from './io';

export interface RulesTestOptions {
  file?: string;
  study?: string;
  series?: string;
  remoteAet?: string;
  json?: boolean;
}

function printProblems(io: Io, snapshot: RuleSetSnapshot): void {
  for (const p of snapshot.problems)
    io.out(`  ${p.severity === 'error' ? 'ERROR  ' : 'warning'} ${p.file}${p.path ? ` ${p.path}` : ''}: ${p.message}`);
  for (const name of snapshot.ignored) io.out(`  ignored ${name} (not a rule: master*, *template* or not .json)`);
}

/** Tags of one DICOM file, as both the study and its only series see them. */
function tagsFromFile(file: string, remoteAet: string | undefined): ResourceTags {
  const buffer = readFileSync(file);
  let dict: ReturnType<typeof dcmjs.data.DicomMessage.readFile>;
  try {
    dict = dcmjs.data.DicomMessage.readFile(
      buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength),
      { untilTag: '7FE00010' },
    );
  } catch (error) {
    throw new Error(`${file} is not a readable DICOM file: ${(error as Error).message}`, { cause: error });
  }
  const natural = dcmjs.data.DicomMetaDictionary.naturalizeDataset(dict.dict);
  const tags: Record<string, string> = {};
  for (const [key, value] of Object.entries(natural)) {
    const text = valueText(Array.isArray(value) && value.length === 1 ? value[0] : value);
    if (text !== undefined) tags[key] = text;
  }
  for (const [hex, element] of Object.entries(dict.dict)) {
    const text = valueText(element.Value && element.Value.length === 1 ? element.Value[0] : element.Value);
    if (text !== undefined) tags[hex.toUpperCase()] = text;
  }
  const name = path.basename(file);
  return {
    level: 'Study',
    orthancId: name,
    patient: {},
    study: tags,
    series: [{ orthancId: name, tags, ...(remoteAet ? { remoteAet } : {}) }],
  };
}

/** Exit 1 when any rule file has errors, naming each bad file. */
export async function rulesCheck(io: Io, dir: string, options: { json?: boolean } = {}): Promise<ExitCode> {
  const snapshot = await createRuleLoader(path.resolve(dir)).load();
  const errors = snapshot.problems.filter((p) => p.severity === 'error');
  const badFiles = [...new Set(errors.map((e) => e.file))];
  if (options.json) {
    printJson(io, {
      ok: errors.length === 0,
      rules: snapshot.rules.map((r) => ({
        id: r.id,
        file: r.file,
        active: r.active,
        checkOn: r.checkOn,
        steps: r.steps,
        destinations: r.destinations,
      })),
      problems: snapshot.problems,
      badFiles,
      ignored: snapshot.ignored,
      master: snapshot.master,
    });
  } else {
    io.out(`${snapshot.rules.length} valid rule(s) in ${dir}`);
    for (const r of snapshot.rules)
      io.out(
        `  ok      ${r.file}: ${r.active ? 'active' : 'inactive'}, on ${r.checkOn}, steps ${r.steps.join(' > ')}${r.destinations.length ? ` to ${r.destinations.join(', ')}` : ''}`,
      );
    printProblems(io, snapshot);
    io.out(
      `Daily sweep: ${snapshot.master.DailySweepEnabled ? `at ${String(snapshot.master.DailyCheckHour).padStart(2, '0')}:00` : 'off'}`,
    );
    if (badFiles.length > 0)
      io.out(
        `\n${badFiles.length} file(s) with errors (ignored until fixed; other rules keep working): ${badFiles.join(', ')}`,
      );
  }
  return errors.length > 0 ? EXIT.problems : EXIT.ok;
}

type Result = DryRunVerdict & { file: string };

/** A dry run: which rules match and why. Exit 0 whatever matched; bad arguments are a CliError (2). */
export async function rulesTest(io: Io, dir: string, options: RulesTestOptions): Promise<ExitCode> {
  const sources = [options.file, options.study, options.series].filter((v) => v !== undefined);
  if (sources.length !== 1) throw new CliError('test needs exactly one of --file, --study or --series');
  if (options.remoteAet && !options.file)
    throw new CliError('--remote-aet only applies to --file (Orthanc knows the sending AE of a stored study)');
  const snapshot = await createRuleLoader(path.resolve(dir)).load();
  let tags: ResourceTags;
  let level: ResourceLevel = 'Study';
  if (options.file) {
    tags = tagsFromFile(options.file, options.remoteAet);
  } else {
    const config = loadConfig();
    const orthanc = createOrthancClient({
      url: config.orthanc.url,
      username: config.orthanc.username,
      password: config.orthanc.password,
      timeoutMs: config.orthanc.timeoutMs,
    });
    level = options.study ? 'Study' : 'Series';
    const id = (options.study ?? options.series) as string;
    try {
      tags = await collectResourceTags(orthanc, level, id, snapshot.rules);
    } catch (error) {
      throw new Error(
        `cannot read ${level.toLowerCase()} ${id} from Orthanc at ${config.orthanc.url}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  const results: Result[] = snapshot.rules.map((rule) => ({
    ...verdictOf(rule, tags, options.file ? undefined : level),
    file: rule.file,
  }));
  if (options.json) {
    printJson(io, {
      level,
      resource: tags.orthancId,
      derivedFrom: tags.derivedFrom,
      results,
      problems: snapshot.problems,
      ignored: snapshot.ignored,
    });
    return EXIT.ok;
  }
  io.out(
    `Dry run against ${options.file ? `file ${options.file}` : `${level.toLowerCase()} ${tags.orthancId}`} (${tags.series.length} series); nothing is acted on.`,
  );
  for (const r of results) {
    io.out(
      `${r.matched ? 'MATCH   ' : 'no match'} ${r.ruleId}${r.matched ? ` → ${r.steps.join(' > ')}` : ''}${r.note ? ` (${r.note})` : ''}`,
    );
    if (r.skipped) io.out(`    ✗ ${r.skipped}`);
    for (const reason of r.reasons) io.out(`    ${reason.passed ? '✓' : '✗'} ${reason.explanation}`);
    if (r.anyOf)
      io.out(
        `    ${r.anyOf.passed ? '✓' : '✗'} AnyOf: ${r.anyOf.groups.map((g, i) => `group ${i} ${g ? 'passed' : 'failed'}`).join(', ')}`,
      );
    if (r.reasons.length === 0 && !r.anyOf) io.out('    ✓ no Tags: matches everything');
  }
  printProblems(io, snapshot);
  return EXIT.ok;
}
