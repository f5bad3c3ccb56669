/**
 * npm run rules -- check <dir> [--json]
 * npm run rules -- test <dir> (--file <x.dcm> [--remote-aet <AET>] | --study <orthancId> | --series <orthancId>) [--json]
 *
 * `check` validates every rule file (exit 1 when any has errors, naming each bad file); `test` is a
 * dry run: which rules match a DICOM file or a study/series in Orthanc and why, acting on nothing.
 * Orthanc is reached as the app reaches it: ORTHANC_URL (or ORTHANC_HTTP_PORT), ORTHANC_USERNAME,
 * ORTHANC_PASSWORD.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import dcmjs from 'dcmjs';
import { loadConfig } from '../shared/config';
import { createOrthancClient } from '../shared/orthanc/client';
import { verdictOf, type DryRunVerdict } from '../shared/operator/rules';
import {
  collectResourceTags,
  createRuleLoader,
  valueText,
  type ResourceTags,
  type RuleSetSnapshot,
} from '../shared/rules';
import type { ResourceLevel } from '../shared/vocabulary';

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

function printProblems(snapshot: RuleSetSnapshot): void {
  for (const p of snapshot.problems)
    console.log(
      `  ${p.severity === 'error' ? 'ERROR  ' : 'warning'} ${p.file}${p.path ? ` ${p.path}` : ''}: ${p.message}`,
    );
  for (const name of snapshot.ignored) console.log(`  ignored ${name} (not a rule: master*, *template* or not .json)`);
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

type Result = DryRunVerdict & { file: string };

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
  const snapshot = await createRuleLoader(path.resolve(dir)).load();
  const errors = snapshot.problems.filter((p) => p.severity === 'error');
  const badFiles = [...new Set(errors.map((e) => e.file))];

  if (command === 'check') {
    if (values.json) {
      console.log(
        JSON.stringify(
          {
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
          },
          null,
          2,
        ),
      );
    } else {
      console.log(`${snapshot.rules.length} valid rule(s) in ${dir}`);
      for (const r of snapshot.rules)
        console.log(
          `  ok      ${r.file}: ${r.active ? 'active' : 'inactive'}, on ${r.checkOn}, steps ${r.steps.join(' > ')}${r.destinations.length ? ` to ${r.destinations.join(', ')}` : ''}`,
        );
      printProblems(snapshot);
      console.log(
        `Daily sweep: ${snapshot.master.DailySweepEnabled ? `at ${String(snapshot.master.DailyCheckHour).padStart(2, '0')}:00` : 'off'}`,
      );
      if (badFiles.length > 0)
        console.log(
          `\n${badFiles.length} file(s) with errors (ignored until fixed; other rules keep working): ${badFiles.join(', ')}`,
        );
    }
    process.exit(errors.length > 0 ? 1 : 0);
  }

  const sources = [values.file, values.study, values.series].filter((v) => v !== undefined);
  if (sources.length !== 1) usage('test needs exactly one of --file, --study or --series');
  if (values['remote-aet'] && !values.file)
    usage('--remote-aet only applies to --file (Orthanc knows the sending AE of a stored study)');
  let tags: ResourceTags;
  let level: ResourceLevel = 'Study';
  if (values.file) {
    tags = tagsFromFile(values.file, values['remote-aet']);
  } else {
    const config = loadConfig();
    const orthanc = createOrthancClient({
      url: config.orthanc.url,
      username: config.orthanc.username,
      password: config.orthanc.password,
      timeoutMs: config.orthanc.timeoutMs,
    });
    level = values.study ? 'Study' : 'Series';
    const id = (values.study ?? values.series) as string;
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
    ...verdictOf(rule, tags, values.file ? undefined : level),
    file: rule.file,
  }));
  if (values.json) {
    console.log(
      JSON.stringify(
        {
          level,
          resource: tags.orthancId,
          derivedFrom: tags.derivedFrom,
          results,
          problems: snapshot.problems,
          ignored: snapshot.ignored,
        },
        null,
        2,
      ),
    );
    return;
  }
  console.log(
    `Dry run against ${values.file ? `file ${values.file}` : `${level.toLowerCase()} ${tags.orthancId}`} (${tags.series.length} series); nothing is acted on.`,
  );
  for (const r of results) {
    console.log(
      `${r.matched ? 'MATCH   ' : 'no match'} ${r.ruleId}${r.matched ? ` → ${r.steps.join(' > ')}` : ''}${r.note ? ` (${r.note})` : ''}`,
    );
    if (r.skipped) console.log(`    ✗ ${r.skipped}`);
    for (const reason of r.reasons) console.log(`    ${reason.passed ? '✓' : '✗'} ${reason.explanation}`);
    if (r.anyOf)
      console.log(
        `    ${r.anyOf.passed ? '✓' : '✗'} AnyOf: ${r.anyOf.groups.map((g, i) => `group ${i} ${g ? 'passed' : 'failed'}`).join(', ')}`,
      );
    if (r.reasons.length === 0 && !r.anyOf) console.log('    ✓ no Tags: matches everything');
  }
  printProblems(snapshot);
}

main().catch((error: Error) => {
  console.error(`rules: ${error.message}`);
  process.exit(1);
});
