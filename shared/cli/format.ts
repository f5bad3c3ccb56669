/**
 * How the CLI shows the API's answers to a person: plain aligned text, one thing per line, so it reads
 * in a terminal and greps in a log. `--json` prints the answers themselves instead.
 */
import type { EchoState } from '../orthanc/destinations';
import type { HealthReport } from '../operator/health';
import type { Job } from '../pipeline/job';
import { destinationsOf } from '../pipeline/destinations';
import type { EchoAnswer } from '../operator/echo';

export type ListedJob = Job & { percent?: number };

export interface Finding {
  name: string;
  ok: boolean;
  detail: string;
}

/** Columns padded to their widest cell; the last column is left ragged. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

export function shorten(text: string, max = 80): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** `2026-12-02T03:04:05.678Z` → `2026-12-02 03:04:05Z`: to the second is what a person compares. */
export function when(iso: string | undefined): string {
  if (!iso) return '-';
  return iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatDuration(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatJobs(jobs: ListedJob[], more: boolean): string[] {
  if (jobs.length === 0) return ['No jobs match.'];
  const lines = table(
    ['JOB', 'RULE', 'STATUS', 'STEP', 'DONE', 'CREATED', 'ERROR'],
    jobs.map((j) => [
      j.id,
      j.ruleId,
      j.status,
      j.currentStep,
      j.percent === undefined ? '-' : `${j.percent}%`,
      when(j.createdAt),
      j.error ? shorten(j.error, 60) : '',
    ]),
  );
  return more ? [...lines, '(more jobs: raise --limit or --days, or filter with --status/--rule)'] : lines;
}

export function formatJob(job: ListedJob): string[] {
  const lines = [
    `Job ${job.id}: ${job.status}${job.percent === undefined ? '' : ` (${job.percent}% done)`}`,
    `  rule      ${job.ruleId} (${job.rule.steps.join(' > ')}${job.rule.destinations.length ? ` to ${job.rule.destinations.join(', ')}` : ''})`,
    `  resource  ${job.level} ${job.resourceId}`,
    `  created   ${when(job.createdAt)}, updated ${when(job.updatedAt)}${job.finishedAt ? `, finished ${when(job.finishedAt)}` : ''}`,
    `  attempts  ${job.attempts}`,
  ];
  if (job.outputPath) lines.push(`  output    ${job.outputPath}`);
  if (job.error) lines.push(`  error     ${job.error}`);
  lines.push('  steps:');
  lines.push(
    ...table(
      ['    STEP', 'STATUS', 'ATTEMPTS', 'DURATION', 'INSTANCES', 'ERROR'],
      job.steps.map((s) => [
        `    ${s.name}`,
        s.status,
        String(s.attempts),
        formatDuration(s.durationMs),
        s.instances === undefined ? '-' : String(s.instances),
        s.error ? shorten(s.error, 60) : '',
      ]),
    ),
  );
  // A forward's destinations, each on its own (the API already shows 'stuck' where it holds).
  const records = Object.entries(destinationsOf(job));
  if (records.length > 0) {
    lines.push('  destinations:');
    lines.push(
      ...table(
        ['    DESTINATION', 'STATUS', 'ATTEMPTS', 'NEXT RETRY', 'SENT', 'DURATION', 'ERROR'],
        records.map(([name, d]) => [
          `    ${name}`,
          d.status,
          String(d.attempts),
          d.nextRetryAt && d.status !== 'sent' ? when(d.nextRetryAt) : '-',
          d.sentAt ? when(d.sentAt) : '-',
          formatDuration(d.durationMs),
          d.error ? shorten(d.error, 60) : '',
        ]),
      ),
    );
  }
  const overflow = job.warningsOverflow?.count ?? 0;
  if (job.warnings.length > 0) {
    lines.push(`  warnings (${job.warnings.length + overflow}):`);
    for (const w of job.warnings.slice(0, 10)) lines.push(`    - ${shorten(w, 120)}`);
    if (job.warnings.length + overflow > 10) lines.push('    … (GET /api/jobs/{id}/warnings has them all)');
  }
  return lines;
}

export function formatStatus(report: HealthReport): string[] {
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');
  const lines = [
    `${report.ok ? 'Healthy' : 'UNHEALTHY'} (checked ${when(report.checkedAt)})`,
    `  ${mark(report.orthanc.ok)} Orthanc${report.orthanc.version ? ` ${report.orthanc.version}` : ''}${report.orthanc.error ? `: ${report.orthanc.error}` : ''}`,
    `  ${mark(report.storage.ok)} Table storage${report.storage.error ? `: ${report.storage.error}` : ''}`,
  ];
  if (report.settings && !report.settings.ok) lines.push(`  FAIL settings: ${report.settings.error ?? ''}`);
  if (report.queues) {
    lines.push('  queues:');
    lines.push(
      ...table(
        ['    QUEUE', 'DEPTH', 'POISON'],
        Object.entries(report.queues).map(([name, q]) => [
          `    ${name}`,
          q.depth === null ? '-' : String(q.depth),
          q.poison === null ? '-' : String(q.poison),
        ]),
      ),
    );
  }
  if (report.changeFeed) lines.push(`  change feed at ${report.changeFeed.cursor ?? '(not started)'}`);
  if (report.forwarding)
    lines.push(
      `  forwarding: ${report.forwarding.pending} pending, ${report.forwarding.sending} sending, ${report.forwarding.stuck} stuck${report.forwarding.stuckJobs.length ? ` (jobs ${report.forwarding.stuckJobs.join(', ')})` : ''}`,
    );
  const destinations = formatDestinations(report);
  if (destinations.length > 0) lines.push('  destinations:', ...destinations.map((l) => `    ${l}`));
  return lines;
}

export interface DestinationRow {
  name: string;
  kind: 'dicom' | 'dicomweb';
  /** Who declared it: .env (read-only) or the dashboard (its Destinations panel). */
  source: 'env' | 'dashboard';
  target: string;
  state: string;
  ok: boolean;
  reason?: string;
}

export function destinationRows(report: Pick<HealthReport, 'destinations' | 'dicomweb'>): DestinationRow[] {
  const dicom = Object.entries(report.destinations ?? {}).map(([name, d]: [string, EchoState]) => ({
    name,
    kind: 'dicom' as const,
    source: d.source ?? ('env' as const),
    target: `${d.aet}@${d.host}:${d.port}`,
    state: d.configured ? `C-ECHO ${d.echo}` : 'not configured in Orthanc',
    ok: d.configured && d.echo !== 'failed',
    ...(d.reason ? { reason: d.reason } : {}),
  }));
  const web = Object.entries(report.dicomweb ?? {}).map(([name, d]) => ({
    name,
    kind: 'dicomweb' as const,
    source: 'env' as const,
    target: d.url,
    state: d.reachable ? 'answers' : 'unreachable',
    ok: d.reachable,
    ...(d.error ? { reason: d.error } : {}),
  }));
  return [...dicom, ...web].sort((a, b) => a.name.localeCompare(b.name));
}

export function formatDestinations(report: Pick<HealthReport, 'destinations' | 'dicomweb'>): string[] {
  const rows = destinationRows(report);
  if (rows.length === 0) return [];
  return table(
    ['NAME', 'KIND', 'SOURCE', 'TARGET', 'STATE', 'REASON'],
    rows.map((r) => [r.name, r.kind, r.source, r.target, r.state, r.reason ? shorten(r.reason, 80) : '']),
  );
}

export function formatEcho(answer: EchoAnswer): string {
  const what = answer.kind === 'dicom' ? 'C-ECHO' : 'DICOMweb probe';
  return answer.ok
    ? `${what} ${answer.name}: ok in ${formatDuration(answer.milliseconds)}${answer.milliseconds > 1000 ? ' (slow: over 1 s)' : ''}`
    : `${what} ${answer.name}: FAILED after ${formatDuration(answer.milliseconds)}: ${answer.reason ?? 'no reason given'}`;
}

export function formatFindings(findings: Finding[]): string[] {
  const bad = findings.filter((f) => !f.ok).length;
  return [
    ...findings.map((f) => `${f.ok ? 'ok  ' : 'FAIL'} ${f.name}: ${f.detail}`),
    bad === 0 ? 'No problems found.' : `${bad} problem(s) found.`,
  ];
}
