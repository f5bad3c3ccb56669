/**
 * The QI figures (./qi.ts) in the Prometheus text exposition format, for sites that run Grafana.
 * Every sample is a gauge over the window the scrape asks for (default the last day), not a
 * counter: the figures are recomputed from the job ledger, which forgets old jobs, so they are not
 * monotonic and must be read as they are (or with max_over_time), never with rate(). prom-client
 * writes the text, so HELP/TYPE lines and label escaping follow the format. Labels are rule ids,
 * step names and destination names from the configuration, never a value from a DICOM file; error
 * reasons are left out (free text makes unbounded label values).
 */
import { Gauge, Registry } from 'prom-client';
import type { Qi } from './qi';

const QUANTILES = [
  ['0.5', 'p50'],
  ['0.9', 'p90'],
  ['0.99', 'p99'],
] as const;

/** The exposition text and its content type for one QI computation. */
export async function prometheusText(qi: Qi): Promise<{ contentType: string; body: string }> {
  const registry = new Registry();
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: `autorthanc_${name}`, help, labelNames, registers: [registry] });

  gauge('qi_window_seconds', 'The window every other autorthanc_ gauge covers, in seconds.').set(qi.days * 86_400);
  gauge(
    'qi_read_complete',
    '1 when every job of the window was read for the per-destination and delivered figures, 0 when the newest only.',
  ).set(qi.read.complete ? 1 : 0);

  const funnel = gauge(
    'funnel',
    'Funnel over the window: received (resources with a job), matched, processed, delivered (jobs). ' +
      'Results back is not tracked yet and has no sample.',
    ['stage'],
  );
  for (const stage of qi.funnel) if (stage.count !== null) funnel.set({ stage: stage.stage }, stage.count);

  const status = gauge('jobs_by_status', 'Jobs created in the window, by their status now.', ['status']);
  for (const [name, count] of Object.entries(qi.jobs)) status.set({ status: name }, count);

  const rules = gauge('rule_jobs', 'Jobs created in the window per rule: succeeded, failed, open.', ['rule', 'status']);
  const ruleTurnaround = gauge(
    'rule_turnaround_seconds',
    'Turnaround (job created to finished) of the succeeded jobs of a rule in the window, by quantile.',
    ['rule', 'quantile'],
  );
  for (const [rule, r] of Object.entries(qi.rules)) {
    for (const s of ['succeeded', 'failed', 'open'] as const) rules.set({ rule, status: s }, r[s]);
    for (const [quantile, field] of QUANTILES)
      if (r.turnaround) ruleTurnaround.set({ rule, quantile }, r.turnaround[field] / 1000);
  }

  const destinations = gauge(
    'destination_jobs',
    'Jobs of the window that forward to a destination: total, delivered, failed.',
    ['destination', 'outcome'],
  );
  const destinationTurnaround = gauge(
    'destination_turnaround_seconds',
    'Turnaround (job created to finished) of the succeeded jobs delivered to a destination, by quantile.',
    ['destination', 'quantile'],
  );
  for (const [destination, d] of Object.entries(qi.destinations)) {
    destinations.set({ destination, outcome: 'total' }, d.jobs);
    destinations.set({ destination, outcome: 'delivered' }, d.delivered);
    destinations.set({ destination, outcome: 'failed' }, d.failed);
    for (const [quantile, field] of QUANTILES)
      if (d.turnaround) destinationTurnaround.set({ destination, quantile }, d.turnaround[field] / 1000);
  }

  const failures = gauge('failures_by_step', 'Jobs of the window that failed, by the step they failed in.', ['step']);
  for (const [step, count] of Object.entries(qi.failuresByStep)) failures.set({ step }, count);

  return { contentType: registry.contentType, body: await registry.metrics() };
}
