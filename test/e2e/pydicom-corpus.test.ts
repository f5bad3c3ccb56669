/**
 * De-identification on real-world files: pydicom's whole test corpus (Debian's python3-pydicom) goes
 * through the real stack (Orthanc, Azurite, the function app) with download + anonymise rules, and
 * every output is checked against its original: nothing identifying survives in any value, byte or
 * path, pixel data is untouched, every output parses with dcmdump and pydicom, and a study that
 * cannot be anonymised fails with the file and the reason and leaves nothing under the storage root.
 *
 * Two rules run over every study: `{}` (the defaults, whose BurnedInAnnotation policy refuses the
 * corpus' ultrasound and secondary-capture files, so its failed jobs exercise the failure path) and
 * `{BurnedInAnnotation: "warn"}`, which must anonymise every study Orthanc accepted.
 *
 * The corpus is synthetic test data, so the report (test/artifacts/pydicom-corpus.json) and the
 * assertion messages quote values freely; the function app's own logs are checked elsewhere.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { anonymisationProject, anonymiseSettingsSchema, type AnonymiseSettings } from '../../shared/dicom/options';
import { anonymisedUid, opaqueToken, projectKey } from '../../shared/dicom/pseudonyms';
import { createDecider, type Decider } from '../../shared/dicom/decisions';
import { isPrivate, profileActionFor, profileRow, type Action } from '../../shared/dicom/profile';
import type { Job } from '../../shared/pipeline/job';
import { dcmdump } from '../support/dcmtk';
import { forEachLimit } from '../../shared/util/concurrency';
import { makeTempDir, requireBinary } from '../support/process';
import { E2E_ANONYMISATION_SECRET, REPO_ROOT, startStack, type Stack } from './stack';

const PYTHON = '/usr/bin/python3';
const CORPUS = '/usr/lib/python3/dist-packages/pydicom/data';
const DUMPER = path.join(REPO_ROOT, 'test/support/dicom_values.py');
const REPORT = path.join(REPO_ROOT, 'test/artifacts/pydicom-corpus.json');

const RULES: Record<string, Record<string, unknown>> = {
  'corpus-defaults': {},
  'corpus-warn': { BurnedInAnnotation: 'warn' },
};
/** The rule that must anonymise every accepted study (the defaults may refuse burned-in files). */
const ALL_STUDIES_RULE = 'corpus-warn';

/** A rule's keyed replacements, as the app derives them (its project key from the stack's secret). */
function keyOf(rule: string): string {
  return projectKey(E2E_ANONYMISATION_SECRET, anonymisationProject(anonymiseSettingsSchema.parse(RULES[rule]), rule));
}
function newUid(rule: string, uid: string): string {
  return anonymisedUid(keyOf(rule), uid);
}

// ---------------------------------------------------------------------------------------------
// pydicom's view of a file (test/support/dicom_values.py)

interface DumpValue {
  text: string;
  components?: string[];
  binary?: boolean;
}
interface DumpElement {
  path: string;
  tag: string;
  vr: string;
  keyword: string;
  private: boolean;
  creator?: string;
  values?: DumpValue[];
  raw?: string;
  items?: number;
}
interface DumpPixels {
  tag: string;
  length: number;
  offset?: number;
  kind: 'native' | 'encapsulated';
  sha256?: string;
  le_sha256?: string;
  frames?: string[];
  frames_error?: string;
  fragments?: string[];
  fragments_error?: string;
}
interface Dump {
  file: string;
  ok: boolean;
  error?: string;
  errors?: string[];
  warnings: string[];
  transferSyntax?: string;
  elements?: DumpElement[];
  pixels?: DumpPixels[];
}

async function pydicomDump(files: string[], strict: boolean): Promise<Map<string, Dump>> {
  const child = spawn(PYTHON, [DUMPER, ...(strict ? ['--strict'] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(JSON.stringify(files));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`${DUMPER} exited with ${code}: ${Buffer.concat(err).toString().slice(-3000)}`);
  const dumps = new Map<string, Dump>();
  for (const line of Buffer.concat(out).toString('utf8').split('\n')) {
    if (line.trim() === '') continue;
    const dump = JSON.parse(line) as Dump;
    dumps.set(dump.file, dump);
  }
  return dumps;
}

// ---------------------------------------------------------------------------------------------
// Which original values identify: what the table or the allow-list does not keep, every PN, every instance UID

const REGISTERED_UID_PREFIX = '1.2.840.10008.';
/** UI elements that name a class, a syntax or a coding scheme, never an instance. */
const NON_INSTANCE_UID =
  /(ClassUID|TransferSyntaxUID|CodingSchemeUID|ContextGroupExtensionCreatorUID|ContextUID|MappingResourceUID)$/;
const NUMERIC_VRS = new Set(['DS', 'IS', 'US', 'SS', 'UL', 'SL', 'FL', 'FD', 'UV', 'SV', 'AT', 'TM']);
/** A UID of at least three components ('0' or '1.2' in a broken file identifies nothing). */
const UID_SYNTAX = /^[0-9]+(\.[0-9]+){2,}$/;
const PURE_NUMBER = /^[-+]?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$/;
/** File meta elements that name the sender or carry private data (the rest describe the file or the software). */
const META_IDENTIFYING = new Set(['00020003', '00020016', '00020017', '00020018', '00020100', '00020102']);

interface Identifier {
  value: string;
  uid: boolean;
  /** Where it came from, for messages: corpus file, element path, tag, VR, keyword, why it counts. */
  from: { file: string; path: string; tag: string; vr: string; keyword: string; why: string };
}

/**
 * What happens to an attribute: PS3.15 Table E.1-1 first (independent of the engine's own choices),
 * then, for what the table keeps or does not list, the project's allow-list (safe attributes, else a
 * removal by VR): an attribute either of them does not keep is one whose values must be gone.
 */
function actionOf(
  tag: string,
  vr: string,
  settings: AnonymiseSettings,
  decider: Decider,
): { action: Action; basis: string } {
  if (isPrivate(tag)) return { action: 'X', basis: 'private' }; // RetainSafePrivate is off in both rules
  const row = profileRow(tag);
  const table = row ? profileActionFor(row, settings) : 'K';
  if (table !== 'K') return { action: table, basis: 'table' };
  const decided = decider.decide(tag, vr);
  return decided.action === 'K'
    ? { action: 'K', basis: row ? 'table' : decided.basis }
    : { action: decided.action, basis: `allow-list ${decided.basis}` };
}

/** Tags of the sequences an element path passes through: `00081115[0]/00081150` → ['00081115']. */
function ancestors(elementPath: string): string[] {
  return elementPath
    .split('/')
    .slice(0, -1)
    .filter((p) => p !== 'meta')
    .map((p) => p.replace(/\[\d+\]$/, ''));
}

function strip(value: string): string {
  return value.replace(/\0+$/, '').trim();
}

/** The identifying values of one original, and the values the profile keeps (which may legitimately reappear). */
function classify(
  dump: Dump,
  file: string,
  settings: AnonymiseSettings,
): { identifiers: Identifier[]; kept: string[] } {
  const identifiers: Identifier[] = [];
  const kept: string[] = [];
  const decider = createDecider(settings, { keep: new Set(), remove: new Set() });
  const sequenceAction = (tag: string) => actionOf(tag, 'SQ', settings, decider).action;
  for (const element of dump.elements ?? []) {
    if (element.vr === 'SQ' || !element.values) continue;
    const meta = element.path.startsWith('meta/');
    const removedAncestor = ancestors(element.path).find((t) => sequenceAction(t) !== 'K' && sequenceAction(t) !== 'U');
    const decided = meta
      ? { action: META_IDENTIFYING.has(element.tag) ? 'X' : 'K', basis: 'file meta' }
      : removedAncestor
        ? { action: 'X', basis: `inside ${removedAncestor}` }
        : actionOf(element.tag, element.vr, settings, decider);
    const action = decided.action as Action;
    const from = (why: string) => ({
      file,
      path: element.path,
      tag: element.tag,
      vr: element.vr,
      keyword: element.keyword || (element.creator ? `private (${element.creator})` : 'private'),
      why,
    });
    for (const v of element.values) {
      const value = strip(v.text);
      if (value === '') continue;
      if (element.vr === 'UI') {
        const uids = value.split('\\').map(strip).filter(Boolean);
        for (const uid of uids) {
          if (uid.startsWith(REGISTERED_UID_PREFIX) || !UID_SYNTAX.test(uid)) continue;
          if (action === 'K' && NON_INSTANCE_UID.test(element.keyword)) {
            kept.push(uid);
            continue;
          }
          identifiers.push({
            value: uid,
            uid: true,
            from: from(
              action === 'K' ? 'an instance UID the profile keeps' : `UID, action ${action}, ${decided.basis}`,
            ),
          });
        }
        continue;
      }
      if (element.vr === 'PN') {
        const parts = new Set([
          value,
          ...(v.components ?? []).map(strip),
          ...(v.components ?? []).flatMap((c) => c.split('^')).map(strip),
        ]);
        for (const part of parts)
          if (Buffer.byteLength(part) >= 4 && !PURE_NUMBER.test(part))
            identifiers.push({ value: part, uid: false, from: from('person name') });
        continue;
      }
      if (action === 'K' || action === 'C') {
        kept.push(value);
        continue;
      }
      // Removed, emptied, dummied or replaced: identifying unless it cannot tell anyone anything.
      if (element.vr === 'CS' || NUMERIC_VRS.has(element.vr)) continue;
      if (Buffer.byteLength(value) < 4) continue;
      if (
        PURE_NUMBER.test(value) &&
        !(['LO', 'SH', 'UC', 'LT', 'ST', 'UT', 'DA', 'DT'].includes(element.vr) && value.length >= 6)
      )
        continue;
      identifiers.push({ value, uid: false, from: from(`action ${action}, ${decided.basis}`) });
    }
  }
  return { identifiers, kept };
}

/** Whole-UID occurrence: not part of a longer UID. */
function containsUid(haystack: string, uid: string): boolean {
  for (let at = haystack.indexOf(uid); at !== -1; at = haystack.indexOf(uid, at + 1)) {
    const before = haystack[at - 1];
    const after = haystack.slice(at + uid.length, at + uid.length + 2);
    if ((before === undefined || !/[0-9.]/.test(before)) && !/^[0-9]/.test(after) && !/^\.[0-9]/.test(after))
      return true;
  }
  return false;
}

function contains(haystack: string, id: Identifier): boolean {
  return id.uid ? containsUid(haystack, id.value) : haystack.includes(id.value);
}

// ---------------------------------------------------------------------------------------------

interface Upload {
  file: string;
  status: number;
  orthancStatus?: string;
  instance?: string;
  study?: string;
  body?: string;
}
interface Instance {
  id: string;
  study: string;
  series: string;
  sop: string;
  corpusFiles: string[];
  original: string;
}
interface Output {
  rule: string;
  job: Job;
  instance: Instance;
  file: string;
  relative: string;
}
interface Finding {
  check: string;
  rule?: string;
  file?: string;
  tag?: string;
  vr?: string;
  keyword?: string;
  detail: string;
}

function relativeCorpus(file: string): string {
  return path.relative(CORPUS, file);
}

function walkFiles(root: string): string[] {
  if (!existsSync(root)) return [];
  return readdirSync(root, { recursive: true })
    .map(String)
    .map((r) => path.join(root, r))
    .filter((f) => statSync(f).isFile())
    .sort();
}

function describeFindings(findings: Finding[], limit = 40): string {
  const lines = findings
    .slice(0, limit)
    .map(
      (f) =>
        `- [${f.check}]${f.rule ? ` ${f.rule}` : ''} ${f.file ?? ''}${f.tag ? ` (${f.tag.slice(0, 4)},${f.tag.slice(4)}) ${f.vr} ${f.keyword}` : ''}: ${f.detail}`,
    );
  if (findings.length > limit)
    lines.push(`... and ${findings.length - limit} more (all in ${path.relative(REPO_ROOT, REPORT)})`);
  return lines.join('\n');
}

describe('pydicom corpus through the anonymising pipeline', { timeout: 300_000 }, () => {
  let stack: Stack;
  const timings: Record<string, number> = {};
  const uploads: Upload[] = [];
  const instances = new Map<string, Instance>();
  const studies = new Map<string, Instance[]>();
  const jobs = new Map<string, Job[]>();
  const outputs: Output[] = [];
  /** Files in each succeeded job's published folder when it ended. */
  const publishedCount = new Map<string, number>();
  let originalDumps = new Map<string, Dump>();
  let outputDumps = new Map<string, Dump>();
  const findings: Finding[] = [];
  const summary: string[] = [];
  const notes: string[] = [];

  before(async () => {
    requireBinary('dcmdump', 'dcmtk');
    requireBinary(PYTHON, 'python3');
    const probe = spawnSync(PYTHON, ['-c', 'import pydicom; print(pydicom.__file__)'], { encoding: 'utf8' });
    if (probe.status !== 0 || !existsSync(CORPUS)) {
      throw new Error(
        `pydicom and its test corpus (${CORPUS}) are needed: Debian package 'python3-pydicom'. Install the system dependencies with: bash scripts/install-system-deps.sh (${probe.stderr.trim()})`,
      );
    }
    let t = Date.now();
    // No study becomes stable during the test, so the only jobs are the manual runs below: one per rule and study.
    stack = await startStack({ stableAgeSeconds: 3600 });
    timings.stackStartMs = Date.now() - t;

    // Every file of the corpus, as REST uploads, counted per file. One at a time, in a fixed order, so
    // that of the files sharing a SOP Instance UID the same one is stored (Orthanc keeps the first).
    t = Date.now();
    const files = [...walkFiles(path.join(CORPUS, 'test_files')), ...walkFiles(path.join(CORPUS, 'charset_files'))];
    const auth = `Basic ${Buffer.from(`${stack.orthanc.username}:${stack.orthanc.password}`).toString('base64')}`;
    for (const file of files) {
      const response = await fetch(`${stack.orthanc.url}/instances`, {
        method: 'POST',
        headers: { Authorization: auth, 'Content-Type': 'application/dicom' },
        body: await readFile(file),
      });
      const body = await response.text();
      const upload: Upload = { file, status: response.status };
      if (response.ok) {
        const answer = JSON.parse(body) as { ID: string; ParentStudy: string; Status: string };
        Object.assign(upload, { orthancStatus: answer.Status, instance: answer.ID, study: answer.ParentStudy });
      } else upload.body = body.slice(0, 200);
      uploads.push(upload);
    }
    timings.uploadMs = Date.now() - t;

    // The originals are what Orthanc stored (and what the pipeline downloads), one per instance.
    t = Date.now();
    const originals = makeTempDir('corpus-originals-');
    for (const upload of uploads.filter((u) => u.instance)) {
      const known = instances.get(upload.instance!);
      if (known) {
        // The file Orthanc stored comes first: it is the one every message names.
        if (upload.orthancStatus === 'Success') known.corpusFiles.unshift(relativeCorpus(upload.file));
        else known.corpusFiles.push(relativeCorpus(upload.file));
        continue;
      }
      instances.set(upload.instance!, {
        id: upload.instance!,
        study: upload.study!,
        series: '',
        sop: '',
        corpusFiles: [relativeCorpus(upload.file)],
        original: path.join(originals, `${upload.instance}.dcm`),
      });
    }
    await forEachLimit([...instances.values()], 4, async (instance) => {
      const file = await fetch(`${stack.orthanc.url}/instances/${instance.id}/file`, {
        headers: { Authorization: auth },
      });
      assert.equal(file.status, 200, `GET /instances/${instance.id}/file`);
      await writeFile(instance.original, Buffer.from(await file.arrayBuffer()));
      const tags = (await (
        await fetch(`${stack.orthanc.url}/instances/${instance.id}/simplified-tags`, {
          headers: { Authorization: auth },
        })
      ).json()) as { SOPInstanceUID?: string; SeriesInstanceUID?: string };
      instance.sop = tags.SOPInstanceUID ?? '';
      instance.series = tags.SeriesInstanceUID ?? '';
    });
    for (const instance of instances.values())
      studies.set(instance.study, [...(studies.get(instance.study) ?? []), instance]);
    timings.originalsMs = Date.now() - t;

    // Two Orthanc studies can publish to one folder: the corpus has a study whose tags are all encoded
    // as UN, which Orthanc reads with their padding (another patient and study for Orthanc), while the
    // output name comes from the trimmed PatientID and StudyInstanceUID (one DICOM study). Such studies
    // run in successive waves, and each wave's outputs are copied before the next replaces them.
    t = Date.now();
    const sameOutput = new Map<string, string[]>();
    for (const study of studies.keys()) {
      const info = (await (
        await fetch(`${stack.orthanc.url}/studies/${study}`, { headers: { Authorization: auth } })
      ).json()) as { PatientMainDicomTags: { PatientID?: string }; MainDicomTags: { StudyInstanceUID?: string } };
      const key = `${(info.PatientMainDicomTags.PatientID ?? '').trim()}\u0000${(info.MainDicomTags.StudyInstanceUID ?? '').trim()}`;
      sameOutput.set(key, [...(sameOutput.get(key) ?? []), study]);
    }
    const waves: string[][] = [];
    for (const group of sameOutput.values()) {
      group.forEach((study, i) => (waves[i] ??= []).push(study));
      if (group.length > 1)
        notes.push(
          `${group.map((s) => studies.get(s)?.[0]?.corpusFiles[0]).join(' and ')} are ${group.length} Orthanc studies with one output folder (same PatientID and StudyInstanceUID): run one after the other, each output checked before the next replaces it`,
        );
    }
    for (const [id, settings] of Object.entries(RULES))
      await stack.writeRule(id, {
        CheckOn: 'Study',
        IsActive: true,
        Comment: 'pydicom corpus',
        Steps: ['download', 'anonymise'],
        Tags: [],
        Anonymise: settings,
      });
    const snapshots = makeTempDir('corpus-outputs-');
    for (const [index, wave] of waves.entries()) {
      for (const study of wave) {
        const response = await stack.post(`studies/${study}/run`, { rules: Object.keys(RULES) });
        assert.equal(response.status, 202, `run of study ${study}: ${await response.text()}`);
      }
      const members = new Set(wave);
      const ended = await stack.waitForJobs(
        wave.length * Object.keys(RULES).length,
        (j) => j.ruleId in RULES && members.has(j.resourceId),
        { timeoutMs: 180_000 },
      );
      for (const job of ended) {
        jobs.set(job.ruleId, [...(jobs.get(job.ruleId) ?? []), job]);
        if (job.status !== 'succeeded' || !job.outputPath) continue;
        // Each anonymising job names its files and series folders after the keyed replacements of the
        // SOP and Series Instance UIDs (the corpus has instances that share a SOP Instance UID).
        const copy = path.join(snapshots, String(index), path.relative(stack.storageDir, job.outputPath));
        await cp(job.outputPath, copy, { recursive: true });
        const published = walkFiles(copy);
        publishedCount.set(job.id, published.length);
        for (const instance of studies.get(job.resourceId) ?? []) {
          const file = published.find(
            (f) =>
              path.basename(f) === `${newUid(job.ruleId, instance.sop)}.dcm` &&
              path.basename(path.dirname(f)).includes(newUid(job.ruleId, instance.series)),
          );
          if (file)
            outputs.push({
              rule: job.ruleId,
              job,
              instance,
              file,
              relative: path.relative(path.join(snapshots, String(index)), file),
            });
        }
      }
    }
    timings.jobsMs = Date.now() - t;

    t = Date.now();
    originalDumps = await pydicomDump(
      [...instances.values()].map((i) => i.original),
      false,
    );
    outputDumps = await pydicomDump(
      outputs.map((o) => o.file),
      true,
    );
    timings.dumpMs = Date.now() - t;
  });

  after(async () => {
    const accepted = uploads.filter((u) => u.instance).length;
    const leaks = findings.filter((f) => f.check === 'leak').length;
    const all = jobs.get(ALL_STUDIES_RULE) ?? [];
    summary.unshift(
      `corpus: ${accepted} files accepted in ${studies.size} studies; ${all.filter((j) => j.status === 'succeeded').length}/${studies.size} anonymised; ${leaks} leaks`,
    );
    const line = `${summary.join('\n')}\n${notes.map((n) => `note: ${n}`).join('\n')}\ntimings (ms): ${JSON.stringify(timings)}`;
    console.log(line);
    await mkdir(path.dirname(REPORT), { recursive: true });
    await writeFile(
      REPORT,
      JSON.stringify(
        {
          summary,
          notes,
          timings,
          uploads: uploads.map((u) => ({ ...u, file: relativeCorpus(u.file) })),
          jobs: [...jobs.values()].flat().map((j) => ({
            rule: j.ruleId,
            study: j.resourceId,
            status: j.status,
            error: j.error,
            warnings: j.warnings.length,
            output: j.outputPath && path.relative(stack.storageDir, j.outputPath),
          })),
          findings,
        },
        null,
        2,
      ),
    );
    await stack?.stop();
  });

  function fail(check: string, found: Finding[]): void {
    findings.push(...found.map((f) => ({ ...f, check })));
    assert.equal(
      found.length,
      0,
      `${found.length} problem(s):\n${describeFindings(found.map((f) => ({ ...f, check })))}`,
    );
  }

  it('uploads every corpus file to Orthanc over REST and counts what it accepts', () => {
    const refused = uploads.filter((u) => !u.instance);
    const stored = uploads.filter((u) => u.orthancStatus === 'Success').length;
    summary.push(
      `uploads: ${uploads.length} files, ${uploads.length - refused.length} accepted (${stored} new, ${uploads.length - refused.length - stored} already stored), ${refused.length} refused; ${instances.size} instances, ${studies.size} studies`,
    );
    // Not the result under test, a guard: if Orthanc refused (nearly) everything, every later check would pass on nothing.
    assert.ok(
      instances.size >= 50 && studies.size >= 10,
      `Orthanc accepted only ${instances.size} instances in ${studies.size} studies of ${uploads.length} files: ${JSON.stringify(refused.slice(0, 5).map((u) => [relativeCorpus(u.file), u.status, u.body]))}`,
    );
  });

  it('anonymises every study, or fails its job naming the file and the reason', () => {
    const found: Finding[] = [];
    for (const rule of Object.keys(RULES)) {
      const ruleJobs = jobs.get(rule) ?? [];
      const byStudy = new Map(ruleJobs.map((j) => [j.resourceId, j]));
      let anonymised = 0;
      let failedNamed = 0;
      for (const [study, members] of studies) {
        const job = byStudy.get(study);
        const names = members.map((m) => m.corpusFiles[0]).join(', ');
        if (!job) {
          found.push({ check: 'job', rule, detail: `no job for study ${study} (${names})` });
          continue;
        }
        if (job.status === 'failed') {
          // The file is named by its pseudonymous name (the keyed UID), never by an original value.
          const named = members.filter((m) => job.error?.includes(`${newUid(rule, m.sop)}.dcm`));
          const reason = job.error?.split(/\.dcm:\s*/)[1]?.trim() ?? '';
          if (named.length === 0 || reason.length < 5)
            found.push({
              check: 'job',
              rule,
              file: names,
              detail: `failed without naming one of its files and a reason: ${job.error}`,
            });
          else failedNamed += 1;
          if (rule === ALL_STUDIES_RULE)
            found.push({
              check: 'job',
              rule,
              file: named.map((m) => m.corpusFiles[0]).join(', ') || names,
              detail: `not anonymised: ${job.error}`,
            });
          continue;
        }
        anonymised += 1;
        const anonymiseStep = job.steps.find((s) => s.name === 'anonymise');
        const produced = outputs.filter((o) => o.job.id === job.id);
        for (const member of members) {
          if (!produced.some((o) => o.instance === member)) {
            const excluded = job.warnings.some(
              (w) => w.includes(`${newUid(rule, member.sop)}.dcm`) && /excluded/.test(w),
            );
            if (!excluded)
              found.push({
                check: 'job',
                rule,
                file: member.corpusFiles[0],
                detail: `job ${job.id} succeeded but has no output file for this instance (${newUid(rule, member.sop)}.dcm)`,
              });
          }
        }
        const extra = (publishedCount.get(job.id) ?? 0) - produced.length;
        if (extra !== 0)
          found.push({
            check: 'job',
            rule,
            file: names,
            detail: `job ${job.id}: ${extra} file(s) in the output that are not the anonymised instances of the study`,
          });
        if (anonymiseStep?.instances !== produced.length)
          found.push({
            check: 'job',
            rule,
            file: names,
            detail: `anonymise step counted ${anonymiseStep?.instances} instances, the output holds ${produced.length}`,
          });
      }
      summary.push(
        `rule ${rule} ${JSON.stringify(RULES[rule])}: ${anonymised}/${studies.size} anonymised, ${failedNamed} failed naming the file and the reason`,
      );
    }
    fail('job', found);
  });

  it('leaves no identifying value of the originals in any output value, byte or path', async () => {
    const settings = anonymiseSettingsSchema.parse({});
    // Values the anonymiser writes itself: an original value inside one of them is a coincidence.
    const generated = [
      'ANONYMIZED',
      'ANON',
      '19000101000000',
      '000Y',
      'ISO_IR 192',
      'autorthanc-functions PS3.15 E.1-1 113100',
      'Basic Application Confidentiality Profile',
      'UNMODIFIED',
      'MODIFIED',
      'REMOVED',
    ];
    const perOriginal = new Map<Instance, { identifiers: Identifier[]; kept: string[] }>();
    for (const instance of instances.values()) {
      const dump = originalDumps.get(instance.original);
      if (!dump?.elements) {
        findings.push({
          check: 'original',
          file: instance.corpusFiles[0],
          detail: `pydicom could not read the original: ${dump?.error}`,
        });
        continue;
      }
      perOriginal.set(instance, classify(dump, instance.corpusFiles[0], settings));
    }
    const unique = new Map<string, Identifier>();
    for (const { identifiers } of perOriginal.values())
      for (const id of identifiers) if (!unique.has(id.value)) unique.set(id.value, id);
    const identifiers = [...unique.values()];
    summary.push(
      `identifying values: ${identifiers.length} distinct (${identifiers.filter((i) => i.uid).length} UIDs) from ${perOriginal.size} originals`,
    );

    /**
     * Every identifier found in one file: in its parsed values, and in its bytes outside the pixel data
     * (as UTF-8, as Latin-1 where that can encode it, and in the original's own encoded form, which
     * for ISO 2022 or single-byte character sets is neither).
     */
    async function search(
      file: string,
      dump: Dump,
      original: Instance,
      targets: Identifier[],
      excused: (id: Identifier) => boolean,
    ): Promise<Array<{ id: Identifier; where: string }>> {
      const hits: Array<{ id: Identifier; where: string }> = [];
      for (const element of dump.elements ?? []) {
        for (const v of element.values ?? []) {
          if (v.text.trim() === '') continue;
          for (const id of targets)
            if (contains(v.text, id) && !excused(id))
              hits.push({
                id,
                where: `the value of ${element.path} ${element.keyword || 'private'} = '${v.text.slice(0, 80)}'`,
              });
        }
      }
      const bytes = await readFile(file);
      const ranges = (dump.pixels ?? [])
        .filter((p) => p.offset !== undefined)
        .map((p) => [p.offset!, p.offset! + p.length] as const);
      let header = '';
      let cursor = 0;
      for (const [begin, end] of ranges.sort((a, b) => a[0] - b[0])) {
        header += `${bytes.subarray(cursor, begin).toString('latin1')}\u0000`;
        cursor = end;
      }
      header += bytes.subarray(cursor).toString('latin1');
      const rawOf = new Map<string, string[]>();
      for (const element of originalDumps.get(original.original)?.elements ?? [])
        if (element.raw)
          rawOf.set(element.path, [
            ...(rawOf.get(element.path) ?? []),
            Buffer.from(element.raw, 'hex').toString('latin1'),
          ]);
      const ownIds = new Set(perOriginal.get(original)?.identifiers ?? []);
      for (const id of targets) {
        if (excused(id)) continue;
        // Latin-1 only where it can encode the value (it would turn '太郎' into two unrelated bytes).
        const forms = new Set([
          Buffer.from(id.value, 'utf8').toString('latin1'),
          ...([...id.value].every((c) => c.charCodeAt(0) <= 0xff) ? [id.value] : []),
        ]);
        const hit = [...forms].find((f) => (id.uid ? containsUid(header, f) : header.includes(f)));
        if (hit !== undefined) {
          hits.push({ id, where: `the bytes (${hit === id.value ? 'as text' : 'UTF-8'})` });
          continue;
        }
        if (id.uid || !ownIds.has(id)) continue;
        const encoded = (rawOf.get(id.from.path) ?? [])
          .map((raw) => raw.replace(/[\0 ]+$/, ''))
          .find((raw) => raw.length >= 4 && header.includes(raw));
        if (encoded !== undefined) hits.push({ id, where: "the bytes (the original's encoded form)" });
      }
      return hits;
    }

    // Control: the same search finds the originals' own identifiers in the originals, so a clean
    // result below means the values are absent, not that the search cannot see them.
    let controlled = 0;
    const blind: string[] = [];
    for (const [instance, { identifiers: own }] of perOriginal) {
      const dump = originalDumps.get(instance.original)!;
      if (own.length === 0 || dump.transferSyntax === '1.2.840.10008.1.2.1.99') continue; // deflated: its bytes are compressed
      const hits = await search(instance.original, dump, instance, own, () => false);
      if (hits.some((h) => h.where.startsWith('the bytes'))) controlled += 1;
      else blind.push(instance.corpusFiles[0]);
    }
    summary.push(
      `leak search control: own identifiers found in the bytes of ${controlled} originals, missed in ${blind.length}${blind.length ? ` (${blind.join(', ')})` : ''}`,
    );
    assert.deepEqual(blind, [], 'the leak search could not find the identifiers of these originals in their own bytes');

    const found: Finding[] = [];
    const report = (o: Output | undefined, id: Identifier, where: string) =>
      found.push({
        check: 'leak',
        rule: o?.rule,
        file: o ? o.instance.corpusFiles[0] : undefined,
        tag: id.from.tag,
        vr: id.from.vr,
        keyword: id.from.keyword,
        detail: `'${id.value}' (${id.from.why}, at ${id.from.path} of ${id.from.file}) found in ${where}`,
      });
    for (const output of outputs) {
      const own = perOriginal.get(output.instance);
      const excuse = [...generated, ...(own?.kept ?? [])];
      const excused = (id: Identifier) =>
        id.uid ? own?.kept.includes(id.value) === true : excuse.some((k) => k.includes(id.value));
      const dump = outputDumps.get(output.file);
      if (!dump?.elements) continue; // reported by the parse check
      // A value that is also the output's own original's is cited from there: that is where it leaked from.
      const ownSource = new Map((own?.identifiers ?? []).map((id) => [id.value, id]));
      for (const hit of await search(output.file, dump, output.instance, identifiers, excused))
        report(output, ownSource.get(hit.id.value) ?? hit.id, `the output's ${hit.where.replace(/^the /, '')}`);
    }
    // Paths as they are now, and as each wave published them (a later wave may have replaced a folder).
    const components = new Set(
      [...readdirSync(stack.storageDir, { recursive: true }).map(String), ...outputs.map((o) => o.relative)].flatMap(
        (r) => r.split(path.sep),
      ),
    );
    for (const component of components)
      for (const id of identifiers)
        if (contains(component, id) && (id.uid || !generated.some((g) => g.includes(id.value))))
          report(undefined, id, `path component '${component}' under the storage root`);
    fail('leak', found);
  });

  it('keeps the pixel data of every output equal to its original (native bytes, every encapsulated frame)', () => {
    const found: Finding[] = [];
    let frames = 0;
    for (const output of outputs) {
      const before = originalDumps.get(output.instance.original)?.pixels ?? [];
      const afterPixels = outputDumps.get(output.file)?.pixels;
      if (!afterPixels) continue; // reported by the parse check
      const f = (detail: string, tag?: string) =>
        found.push({
          check: 'pixels',
          rule: output.rule,
          file: output.instance.corpusFiles[0],
          tag,
          vr: tag ? 'OB/OW' : undefined,
          keyword: tag ? 'PixelData' : undefined,
          detail,
        });
      for (const original of before) {
        const now = afterPixels.find((p) => p.tag === original.tag);
        if (!now) {
          f(`the output has no (${original.tag.slice(0, 4)},${original.tag.slice(4)})`, original.tag);
          continue;
        }
        if (original.kind !== now.kind) {
          f(`${original.kind} in the original, ${now.kind} in the output`, original.tag);
          continue;
        }
        if (original.kind === 'native') {
          if (original.sha256 !== now.sha256 && original.le_sha256 !== now.le_sha256)
            f(`native pixel bytes differ (${original.length} → ${now.length} bytes)`, original.tag);
          continue;
        }
        if (original.frames && now.frames) {
          frames += original.frames.length;
          if (original.frames.length !== now.frames.length)
            f(`${original.frames.length} frames in the original, ${now.frames.length} in the output`, original.tag);
          else original.frames.forEach((d, i) => d !== now.frames![i] && f(`frame ${i + 1} differs`, original.tag));
        } else if (original.fragments && now.fragments) {
          // pydicom cannot split this one into frames (e.g. no offset table and more fragments than frames): compare every fragment.
          if (JSON.stringify(original.fragments) !== JSON.stringify(now.fragments))
            f(`fragments differ (frames unavailable: ${original.frames_error ?? now.frames_error})`, original.tag);
        } else
          f(
            `encapsulated data unreadable: original ${original.frames_error ?? original.fragments_error ?? 'ok'}, output ${now.frames_error ?? now.fragments_error ?? 'ok'}`,
            original.tag,
          );
      }
      for (const now of afterPixels)
        if (!before.some((p) => p.tag === now.tag))
          f(`the output has (${now.tag.slice(0, 4)},${now.tag.slice(4)}) that the original lacks`, now.tag);
    }
    summary.push(`pixels: ${outputs.length} outputs compared, ${frames} encapsulated frames`);
    fail('pixels', found);
  });

  it('writes outputs that dcmdump and pydicom both parse', async () => {
    const found: Finding[] = [];
    await forEachLimit(outputs, 4, async (output) => {
      const f = (detail: string) =>
        found.push({
          check: 'parse',
          rule: output.rule,
          file: output.instance.corpusFiles[0],
          detail: `${output.relative}: ${detail}`,
        });
      try {
        await dcmdump(output.file);
      } catch (error) {
        f(`dcmdump: ${(error as Error).message.split('\n').slice(0, 4).join(' | ')}`);
      }
      const dump = outputDumps.get(output.file);
      if (!dump?.ok) f(`pydicom: ${dump?.error ?? dump?.errors?.slice(0, 3).join('; ') ?? 'no result'}`);
    });
    summary.push(`parse: ${outputs.length} outputs through dcmdump and pydicom`);
    fail('parse', found);
  });

  it('leaves nothing under the storage root for a failed job, nor any staged original', () => {
    const found: Finding[] = [];
    const published = [...jobs.values()]
      .flat()
      .filter((j) => j.status === 'succeeded' && j.outputPath)
      .map((j) => j.outputPath!);
    const failed = [...jobs.values()].flat().filter((j) => j.status === 'failed');
    for (const file of walkFiles(stack.storageDir)) {
      if (published.some((p) => file.startsWith(`${p}${path.sep}`) || file === p)) continue;
      const relative = path.relative(stack.storageDir, file);
      const culprit = failed.find(
        (j) =>
          relative.startsWith(`${j.ruleId}${path.sep}`) &&
          j.studyInstanceUid !== undefined &&
          relative.includes(opaqueToken(keyOf(j.ruleId), j.studyInstanceUid)),
      );
      found.push({
        check: 'leftover',
        rule: culprit?.ruleId,
        file: culprit
          ? studies
              .get(culprit.resourceId)
              ?.map((m) => m.corpusFiles[0])
              .join(', ')
          : undefined,
        detail: `${relative} is left under the storage root${culprit ? ` by failed job ${culprit.id} (${culprit.error?.slice(0, 120)})` : ''}`,
      });
    }
    // The originals of anonymising jobs are downloaded into a private staging folder, deleted when the job ends.
    const staged = walkFiles(stack.stagingDir);
    for (const file of staged)
      found.push({
        check: 'leftover',
        detail: `${path.relative(stack.stagingDir, file)} is left in the private staging (${stack.stagingDir}) after every job ended`,
      });
    summary.push(
      `failed jobs: ${failed.length}; files left under the storage root outside published outputs: ${found.length - staged.length}; left in the staging: ${staged.length}`,
    );
    fail('leftover', found);
  });
});
