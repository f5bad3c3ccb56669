/**
 * `autorthanc doctor`: everything that must hold for jobs to flow, each as a finding a person can act
 * on. What the status report knows (Orthanc reachable with the app's credentials, Table storage,
 * destinations, queues) and what only the app can check (GET /api/doctor: folders writable with free
 * space, secrets, its clock against Orthanc's), plus what only the CLI sees: its own clock against the
 * app's and the strength of the key it was given. Queues with messages are read twice, a few seconds
 * apart: a queue is a problem when it holds poisoned messages or does not go down.
 */
import { secretProblem } from '../config';
import type { DoctorReport } from '../operator/doctor';
import { MAX_CLOCK_SKEW_SECONDS } from '../operator/doctor';
import type { HealthReport } from '../operator/health';
import { errorOf, type Api, type ApiAnswer } from './api';
import { destinationRows, type Finding } from './format';
import { CliError } from './io';

export interface DoctorOptions {
  key?: string;
  /** How long to watch queues that hold messages before calling them stuck. */
  drainSeconds: number;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export async function readStatus(api: Api): Promise<ApiAnswer<HealthReport>> {
  const answer = await api.get<HealthReport>('status');
  // 503 carries the same report: the app ran and found Orthanc or storage down.
  if ((answer.status !== 200 && answer.status !== 503) || typeof answer.body?.ok !== 'boolean')
    throw new CliError(`GET /api/status at ${api.where} failed: ${errorOf(answer)}`);
  return answer;
}

export function statusFindings(report: HealthReport): Finding[] {
  const findings: Finding[] = [
    {
      name: 'Orthanc',
      ok: report.orthanc.ok,
      detail: report.orthanc.ok
        ? `reachable with the app's credentials (version ${report.orthanc.version ?? '?'})`
        : `not reachable from the app: ${report.orthanc.error ?? 'no reason given'}`,
    },
    {
      name: 'Table storage',
      ok: report.storage.ok,
      detail: report.storage.ok ? 'reachable' : (report.storage.error ?? 'not reachable'),
    },
  ];
  if (report.settings && !report.settings.ok)
    findings.push({ name: 'settings', ok: false, detail: report.settings.error ?? 'the app could not start' });
  for (const d of destinationRows(report))
    findings.push({
      name: `destination ${d.name}`,
      ok: d.ok,
      detail: `${d.target}: ${d.state}${d.reason ? ` (${d.reason})` : ''}`,
    });
  return findings;
}

export function clockFinding(appDate: Date | undefined, localNow: number): Finding {
  const name = 'clock against the app';
  if (!appDate || Number.isNaN(appDate.getTime())) return { name, ok: true, detail: 'the app sent no Date header' };
  // The Date header has whole seconds and the answer took time to arrive: a second either way is noise.
  const skew = Math.round((localNow - appDate.getTime()) / 1000);
  const detail = `this machine is ${Math.abs(skew)} s ${skew >= 0 ? 'ahead of' : 'behind'} the app`;
  return Math.abs(skew) > MAX_CLOCK_SKEW_SECONDS
    ? { name, ok: false, detail: `${detail} (more than ${MAX_CLOCK_SKEW_SECONDS} s)` }
    : { name, ok: true, detail };
}

export function keyFinding(key: string | undefined): Finding {
  const name = 'function key';
  if (!key)
    return {
      name,
      ok: false,
      detail: 'none given, and the app answered anyway: its API is open to anyone who reaches it',
    };
  const problem = secretProblem(key);
  return problem ? { name, ok: false, detail: `the key in use ${problem}` } : { name, ok: true, detail: 'strong' };
}

type Queues = NonNullable<HealthReport['queues']>;

export function queueFindings(first: Queues, later: Queues | undefined, drainSeconds: number): Finding[] {
  const findings: Finding[] = [];
  for (const [name, q] of Object.entries(first)) {
    const now = later?.[name] ?? q;
    if ((now.poison ?? 0) > 0)
      findings.push({
        name: `queue ${name}`,
        ok: false,
        detail: `${now.poison} poisoned message(s) in ${name}-poison (see the app's log; the jobs show as failed)`,
      });
    else if ((q.depth ?? 0) > 0 && later && (now.depth ?? 0) >= (q.depth ?? 0))
      findings.push({
        name: `queue ${name}`,
        ok: false,
        detail: `not draining: ${q.depth} then ${now.depth} message(s) ${drainSeconds} s later`,
      });
    else if ((q.depth ?? 0) > 0)
      findings.push({ name: `queue ${name}`, ok: true, detail: `draining: ${q.depth} then ${now.depth ?? 0}` });
  }
  if (findings.length === 0) findings.push({ name: 'queues', ok: true, detail: 'empty, no poisoned messages' });
  return findings;
}

export async function runDoctorChecks(api: Api, options: DoctorOptions): Promise<Finding[]> {
  const now = options.now ?? Date.now;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const status = await readStatus(api);
  const localNow = now();
  const findings = [keyFinding(options.key), clockFinding(status.date, localNow), ...statusFindings(status.body)];
  const doctor = await api.get<DoctorReport>('doctor');
  if (doctor.status === 200 && Array.isArray(doctor.body?.checks)) findings.push(...doctor.body.checks);
  else
    findings.push({
      name: "the app's own checks",
      ok: false,
      detail: `GET /api/doctor failed (${errorOf(doctor)}): storage folders, secrets and Orthanc's clock not checked`,
    });
  const queues = status.body.queues;
  if (!queues) {
    findings.push({ name: 'queues', ok: false, detail: 'Queue storage did not answer' });
    return findings;
  }
  const busy = Object.values(queues).some((q) => (q.depth ?? 0) > 0);
  let later: Queues | undefined;
  if (busy) {
    await sleep(options.drainSeconds * 1000);
    later = (await readStatus(api)).body.queues;
  }
  findings.push(...queueFindings(queues, later, options.drainSeconds));
  return findings;
}
