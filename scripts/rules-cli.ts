/**
 * npm run rules -- check <dir> [--json]
 * npm run rules -- test <dir> (--file <x.dcm> | --study <orthancId> | --series <orthancId>) [--json]
 *
 * `check` validates every rule file (exit 1 when any has errors); `test` is a dry run: which rules
 * match a DICOM file or a study in Orthanc and why, acting on nothing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import dcmjs from 'dcmjs';
import { loadConfig } from '../shared/config';
import { createOrthancClient } from '../shared/orthanc/client';
import { collectResourceTags, createRuleLoader, matchRule, valueText, type MatchResult, type ResourceTags, type RuleSetSnapshot } from '../shared/rules';

function usage(): never {
  console.error('Usage:\n  npm run rules -- check <dir> [--json]\n  npm run rules -- test <dir> (--file <x.dcm> | --study <orthancId> | --series <orthancId>) [--json]');
  process.exit(2);
}

function printProblems(snapshot: RuleSetSnapshot): void {
  for (const p of snapshot.problems) console.log(`  ${p.severity === 'error' ? 'ERROR  ' : 'warning'} ${p.file}${p.path ? ` ${p.path}` : ''}: ${p.message}`);
}

/** Tags of one DICOM file, as both the study and its only series see them. */
function tagsFromFile(file: string): ResourceTags {
  const buffer = readFileSync(file);
  const dict = dcmjs.data.DicomMessage.readFile(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer, { untilTag: '7FE00010' });
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
  return { level: 'Study', orthancId: path.basename(file), study: tags, series: [{ orthancId: path.basename(file), tags }] };
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { json: { type: 'boolean', default: false }, file: { type: 'string' }, study: { type: 'string' }, series: { type: 'string' } },
  });
  const [command, dir] = positionals;
  if (!command || !dir) usage();
  const snapshot = await createRuleLoader(path.resolve(dir)).load();
  const errors = snapshot.problems.filter((p) => p.severity === 'error');

  if (command === 'check') {
    if (values.json) console.log(JSON.stringify({ rules: snapshot.rules.map((r) => ({ id: r.id, file: r.file, active: r.active, checkOn: r.checkOn, steps: r.steps })), problems: snapshot.problems, ignored: snapshot.ignored, master: snapshot.master }, null, 2));
    else {
      console.log(`${snapshot.rules.length} valid rule(s) in ${dir}`);
      for (const r of snapshot.rules) console.log(`  ok      ${r.file}: ${r.active ? 'active' : 'inactive'}, on ${r.checkOn}, steps ${r.steps.join(' > ')}`);
      printProblems(snapshot);
      for (const name of snapshot.ignored) console.log(`  ignored ${name} (not a rule)`);
      console.log(`Daily sweep: ${snapshot.master.DailySweepEnabled ? `at ${snapshot.master.DailyCheckHour}:00` : 'off'}`);
      if (errors.length > 0) console.log(`\n${new Set(errors.map((e) => e.file)).size} file(s) with errors: ${[...new Set(errors.map((e) => e.file))].join(', ')}`);
    }
    process.exit(errors.length > 0 ? 1 : 0);
  }

  if (command !== 'test') usage();
  let tags: ResourceTags;
  let level: 'Study' | 'Series' = 'Study';
  if (values.file) tags = tagsFromFile(values.file);
  else if (values.study || values.series) {
    const config = loadConfig();
    const orthanc = createOrthancClient({ url: config.orthanc.url, username: config.orthanc.username, password: config.orthanc.password, timeoutMs: config.orthanc.timeoutMs });
    level = values.study ? 'Study' : 'Series';
    tags = await collectResourceTags(orthanc, level, (values.study ?? values.series)!, snapshot.rules);
  } else usage();
  const results: Array<MatchResult & { active: boolean; checkOn: string; note?: string }> = snapshot.rules.map((rule) => ({
    ...matchRule(rule, { ...tags, level }),
    active: rule.active,
    checkOn: rule.checkOn,
    note: !rule.active ? 'inactive: would not run' : rule.checkOn !== level && !values.file ? `checks on ${rule.checkOn}, not ${level}` : undefined,
  }));
  if (values.json) {
    console.log(JSON.stringify({ results, problems: snapshot.problems, ignored: snapshot.ignored }, null, 2));
  } else {
    for (const r of results) {
      console.log(`${r.matched ? 'MATCH   ' : 'no match'} ${r.ruleId}${r.note ? ` (${r.note})` : ''}`);
      for (const reason of r.reasons) console.log(`    ${reason.passed ? '✓' : '✗'} ${reason.explanation}`);
    }
    printProblems(snapshot);
    for (const name of snapshot.ignored) console.log(`  ignored ${name} (not a rule)`);
  }
}

main().catch((error: Error) => {
  console.error(`rules: ${error.message}`);
  process.exit(1);
});
