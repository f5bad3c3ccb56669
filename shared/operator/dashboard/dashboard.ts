/**
 * The operator dashboard's script (browser code; compiled by ./tsconfig.json and inlined into
 * index.html by shared/operator/dashboard.ts). It reads the operator API (`status`, `stats`, `jobs`,
 * `rules`, `worklist`, `qi`) relative to the page's URL, so it works at `/api/dashboard` on the function app and
 * behind nginx, and passes on a `?code=` function key from the page's URL when one was given.
 *
 * The policy lets nothing but this script run, so job errors and rule messages are inserted as
 * text, never as HTML. No patient attribute is shown: jobs are named by rule and Orthanc id.
 *
 * A panel is a <section> in index.html and a load function in PANELS below.
 */

// What the page reads of the API's answers. The server's types (shared/pipeline/job.ts,
// shared/operator/*.ts) cannot be imported here: this program has the DOM and no Node.
interface HealthReport {
  orthanc?: { ok: boolean; version?: string };
  storage?: { ok: boolean };
  changeFeed?: { cursor: number | null };
  destinations?: Record<string, { echo: string; reason?: string }>;
  queues?: Record<string, { depth: number | null; poison: number | null }>;
  forwarding?: { pending: number; sending: number; stuck: number; byDestination: Record<string, { stuck: number }> };
  results?: { awaiting: number; overdue: { jobId: string }[] };
}
interface HourBucket {
  hour: string;
  instances: number;
  succeeded: number;
  failed: number;
}
interface Stats {
  jobs: { created: number; succeeded: number; failed: number; running: number; queued: number };
  instances: number;
  bytes: number;
  hourly: HourBucket[];
}
interface DeidentificationRecord {
  profile?: { table: string };
  instances: number;
  warnings?: number;
  counts?: Record<string, Record<string, number>>;
}
interface StepView {
  name: string;
  status: string;
  attempts: number;
  startedAt?: string;
  durationMs?: number;
  instances?: number;
  progress?: { done: number; total: number };
  bytes?: number;
  error?: string;
  detail?: { deidentification?: DeidentificationRecord; destinations?: Record<string, DestinationRecordView> };
}
/** A forward's destination as the job API shows it (shared/pipeline/destinations.ts). */
interface DestinationRecordView {
  status: string;
  attempts: number;
  queuedAt?: string;
  nextRetryAt?: string;
  sentAt?: string;
  durationMs?: number;
  sent?: number;
  total?: number;
  error?: string;
}
interface JobView {
  id: string;
  ruleId: string;
  level: string;
  resourceId: string;
  status: string;
  currentStep: string;
  percent: number;
  source: string;
  forced?: boolean;
  attempts: number;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  error?: string;
  outputPath?: string;
  warnings?: string[];
  warningsOverflow?: { count: number };
  steps: StepView[];
  /** The round trip of a rule with ExpectResults (awaiting, overdue, back, ...). */
  results?: { state: string; from: string; expectedBy?: string; resultsAt?: string };
  resultOf?: string;
}
interface JobsPage {
  jobs: JobView[];
  next?: string;
}
interface RulesReport {
  rules: {
    id: string;
    file: string;
    valid: boolean;
    active?: boolean;
    checkOn?: string;
    steps?: string[];
    destinations?: string[];
    errors: string[];
    warnings: string[];
  }[];
  other: { file: string; severity: string; message: string }[];
  master: { DailySweepEnabled: boolean; DailyCheckHour: number };
}

interface Panel {
  /** Fills the panel from the API. */
  load: () => Promise<void>;
  /** Refreshed every 30 s instead of every 5 s (reads that cost more, or change less). */
  slow?: boolean;
}

const key = new URLSearchParams(location.search).get('code');
const state: {
  cursor?: string;
  cursors: (string | undefined)[];
  next?: string;
  open: Record<string, boolean>;
  paused: boolean;
} = { cursors: [], open: {}, paused: false };
let refreshes = 0;

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

async function api<T>(
  path: string,
  options: { method?: 'GET' | 'POST' | 'PUT' | 'DELETE'; body?: unknown; allow?: number[] } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (key) headers['x-functions-key'] = key;
  let body: string | undefined;
  if (options.method && options.method !== 'GET') {
    // Every change sends JSON: the API refuses other types (a cross-site form cannot send this one).
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body ?? {});
  }
  const response = await fetch(path, {
    method: options.method ?? 'GET',
    headers,
    body,
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : {};
  } catch {
    parsed = { error: text };
  }
  if (!response.ok && !(options.allow ?? []).includes(response.status)) {
    const error = (parsed as { error?: string }).error; // the API's errors are text
    throw new Error(`${path}: HTTP ${response.status}${error ? ` - ${error}` : ''}`);
  }
  return parsed as T;
}

type Child = Node | string | null | undefined;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  children: Child[] = [],
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') node.textContent = v;
    else if (k === 'style')
      node.style.cssText = v; // CSSOM: allowed by the policy, unlike a style attribute
    else node.setAttribute(k, v);
  }
  for (const c of children)
    if (c !== null && c !== undefined) node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  return node;
}

const badge = (text: string, cls?: string) => el('span', { class: `badge ${cls || text}`, text });
const fill = (id: string, nodes: (Node | string)[]) => $(id).replaceChildren(...nodes);

function ago(iso: string | undefined): string {
  if (!iso) return '';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

function ms(n: number | undefined | null): string {
  if (n === undefined || n === null) return '';
  return n < 1000 ? `${n} ms` : `${(n / 1000).toFixed(1)} s`;
}

function bytes(n: number | undefined): string {
  if (!n) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  const i = Math.min(Math.floor(Math.log(n) / Math.log(1024)), 4);
  return `${(n / Math.pow(1024, i)).toFixed(i ? 1 : 0)} ${units[i]}`;
}

function say(text: string, bad = false): void {
  const m = $('message');
  m.textContent = text;
  m.className = bad ? 'error' : 'muted';
}

const showError = (e: unknown) => say(e instanceof Error ? e.message : String(e), true);

function renderHealth(h: HealthReport): void {
  const o = h.orthanc ?? { ok: false };
  const s = h.storage ?? { ok: false };
  const destinations = h.destinations ?? {};
  fill('health', [
    badge(`Orthanc ${o.ok ? o.version || 'up' : 'down'}`, o.ok ? 'ok' : 'bad'),
    ' ',
    badge(`storage ${s.ok ? 'up' : 'down'}`, s.ok ? 'ok' : 'bad'),
    ' ',
    badge(
      `change feed ${h.changeFeed && h.changeFeed.cursor !== null ? `#${h.changeFeed.cursor}` : 'not run yet'}`,
      'muted',
    ),
    ...Object.entries(destinations).map(([name, d]) => {
      const b = badge(`${name} echo ${d.echo}`, d.echo === 'ok' ? 'ok' : d.echo === 'failed' ? 'bad' : 'queued');
      if (d.reason) b.title = d.reason;
      return el('span', {}, [' ', b]);
    }),
    ...(h.forwarding?.stuck
      ? [
          ' ',
          el('span', { id: 'destinations-stuck' }, [
            badge(
              `${h.forwarding.stuck} stuck: ${Object.entries(h.forwarding.byDestination)
                .filter(([, c]) => c.stuck > 0)
                .map(([name]) => name)
                .join(', ')}`,
              'bad',
            ),
          ]),
        ]
      : []),
    ...(h.results?.overdue.length
      ? [' ', el('span', { id: 'results-overdue' }, [badge(`${h.results.overdue.length} results overdue`, 'bad')])]
      : []),
  ]);
  fill(
    'queues',
    Object.entries(h.queues ?? {}).map(([name, q]) =>
      el('tr', {}, [
        el('td', {}, [el('code', { text: name })]),
        el('td', { class: 'num', text: q.depth === null ? '-' : String(q.depth) }),
        el('td', { class: 'num' }, [q.poison ? badge(String(q.poison), 'bad') : q.poison === null ? '-' : '0']),
      ]),
    ),
  );
}

function renderStats(st: Stats): void {
  const j = st.jobs;
  const counters: [string, number | string][] = [
    ['created', j.created],
    ['succeeded', j.succeeded],
    ['failed', j.failed],
    ['running', j.running],
    ['queued', j.queued],
    ['instances', st.instances],
    ['data', bytes(st.bytes)],
  ];
  fill(
    'counters',
    counters.map(([name, value]) =>
      el('div', { 'data-counter': name }, [
        el('b', { text: String(value) }),
        el('span', { class: 'muted', text: name }),
      ]),
    ),
  );
  drawChart(st.hourly);
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** An inline SVG of `width` x `height` (scaled to its box), and `add` to draw into it (text as text, never markup). */
function svgCanvas(width: number, height: number, label: string) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('width', '100%');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', label);
  const add = (tag: string, attrs: Record<string, string | number>, text?: string, parent: Element = svg) => {
    const n = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    parent.appendChild(n);
    return n;
  };
  return { svg, add };
}

function drawChart(hours: HourBucket[]): void {
  const [W, H, left, bottom, top] = [720, 160, 40, 24, 10];
  const max = Math.max(...hours.map((h) => h.instances), 1);
  const { svg, add } = svgCanvas(W, H, 'Instances processed per hour over the last 24 hours');
  const slot = (W - left - 4) / hours.length;
  const plot = H - bottom - top;
  add('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: '#d0d7de' });
  add('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, String(max));
  add('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, '0');
  hours.forEach((h, i) => {
    const x = left + i * slot + 2;
    const height = Math.round((plot * h.instances) / max);
    const bar = add('rect', {
      x,
      y: H - bottom - height,
      width: Math.max(slot - 4, 1),
      height,
      fill: '#0969da',
      'data-hour': h.hour,
      'data-instances': h.instances,
    });
    const jobs = `${h.succeeded} jobs succeeded, ${h.failed} failed`;
    add('title', {}, `${new Date(h.hour).toLocaleString()}: ${h.instances} instances, ${jobs}`, bar);
    if (h.failed) add('circle', { cx: x + slot / 2 - 2, cy: H - bottom - height - 5, r: 3, fill: '#cf222e' });
    if (i % 3 === 0) {
      const label = `${String(new Date(h.hour).getHours()).padStart(2, '0')}:00`;
      add('text', { x: x + slot / 2 - 2, y: H - 8, 'text-anchor': 'middle' }, label);
    }
  });
  fill('chart', [svg]);
}

function retryButton(job: JobView): HTMLButtonElement {
  const b = el('button', { class: 'retry', 'data-retry': job.id, text: 'Retry' });
  b.addEventListener('click', (event) => {
    event.stopPropagation();
    b.disabled = true;
    b.textContent = 'Retrying...';
    api<{ step: string }>(`jobs/${encodeURIComponent(job.id)}/retry`, { method: 'POST' })
      .then((r) => {
        say(`Job ${job.id.slice(0, 8)} queued again from step ${r.step}`);
        refreshes = 0; // the next refresh reads everything, counters included
        return refresh();
      })
      .catch((e: unknown) => {
        b.disabled = false;
        b.textContent = 'Retry';
        showError(e);
      });
  });
  return b;
}

function stepsTable(job: JobView): HTMLTableElement {
  const head = ['step', 'status', 'attempts', 'started', 'duration', 'instances', 'bytes', 'error'];
  return el('table', {}, [
    el('thead', {}, [
      el(
        'tr',
        {},
        head.map((h) => el('th', { text: h })),
      ),
    ]),
    el(
      'tbody',
      {},
      job.steps.map((s) => {
        const instances =
          s.instances === undefined
            ? s.progress
              ? `${s.progress.done}/${s.progress.total}`
              : ''
            : String(s.instances);
        return el('tr', {}, [
          el('td', { text: s.name }),
          el('td', {}, [badge(s.status)]),
          el('td', { class: 'num', text: String(s.attempts) }),
          el('td', { text: s.startedAt ? new Date(s.startedAt).toLocaleTimeString() : '' }),
          el('td', { class: 'num', text: ms(s.durationMs) }),
          el('td', { class: 'num', text: instances }),
          el('td', { class: 'num', text: s.bytes === undefined ? '' : bytes(s.bytes) }),
          el('td', { class: 'error', text: s.error || '' }),
        ]);
      }),
    ),
  ]);
}

/** The anonymise step's de-identification record: element counts per outcome and per basis of decision. */
function deidentification(job: JobView): HTMLElement | null {
  const record = (job.steps || []).find((s) => s.name === 'anonymise')?.detail?.deidentification;
  if (!record || !record.counts) return null;
  const counts = record.counts;
  const totals: Record<string, number> = {};
  const bases = Object.keys(counts)
    .sort()
    .map((basis) => {
      const outcomes = counts[basis];
      const listed = Object.keys(outcomes).map((o) => {
        totals[o] = (totals[o] || 0) + outcomes[o];
        return `${o} ${outcomes[o]}`;
      });
      return `${basis} ${listed.join(', ')}`;
    });
  const summary = Object.keys(totals)
    .map((o) => `${o} ${totals[o]}`)
    .join(', ');
  const warnings = record.warnings ? `; ${record.warnings} warning(s)` : '';
  return el('div', { class: 'deid', 'data-deid-of': job.id }, [
    el('b', { text: 'De-identification ' }),
    `${record.profile ? `${record.profile.table}: ` : ''}${record.instances} instances; ${summary}`,
    el('div', { class: 'muted', text: `By basis: ${bases.join('; ')}${warnings}` }),
  ]);
}

function jobDetail(job: JobView): HTMLElement[] {
  const overflow = job.warningsOverflow
    ? ` ... and ${job.warningsOverflow.count} more (GET jobs/${job.id}/warnings)`
    : '';
  const record = deidentification(job);
  return [
    el('div', {}, [
      el('b', { text: 'Job ' }),
      el('code', { text: job.id }),
      ` from ${job.source}${job.forced ? ' (forced)' : ''}, attempts ${job.attempts}`,
    ]),
    ...(job.outputPath ? [el('div', {}, ['Output: ', el('code', { text: job.outputPath })])] : []),
    ...(job.warnings && job.warnings.length
      ? [el('div', { class: 'muted', text: `Warnings: ${job.warnings.join('; ')}${overflow}` })]
      : []),
    ...(record ? [record] : []),
    stepsTable(job),
    ...destinationsTable(job),
  ];
}

/** Each destination of a forward on its own: one that is down (pending, stuck) beside those sent. */
function destinationsTable(job: JobView): HTMLElement[] {
  const records = (job.steps || []).find((s) => s.name === 'forward')?.detail?.destinations;
  if (!records || Object.keys(records).length === 0) return [];
  const head = ['destination', 'status', 'attempts', 'next retry', 'sent', 'duration', 'instances', 'last error'];
  const time = (iso?: string) => (iso ? new Date(iso).toLocaleTimeString() : '');
  return [
    el('table', { class: 'destinations', 'data-destinations-of': job.id }, [
      el('thead', {}, [
        el(
          'tr',
          {},
          head.map((h) => el('th', { text: h })),
        ),
      ]),
      el(
        'tbody',
        {},
        Object.entries(records).map(([name, d]) =>
          el('tr', { 'data-destination': name, 'data-destination-status': d.status }, [
            el('td', { text: name }),
            el('td', {}, [badge(d.status, d.status === 'stuck' ? 'bad' : d.status === 'sent' ? 'ok' : d.status)]),
            el('td', { class: 'num', text: String(d.attempts) }),
            el('td', { text: d.status === 'sent' ? '' : time(d.nextRetryAt) }),
            el('td', { text: time(d.sentAt) }),
            el('td', { class: 'num', text: ms(d.durationMs) }),
            el('td', { class: 'num', text: d.total === undefined ? '' : `${d.sent ?? 0}/${d.total}` }),
            el('td', { class: 'error', text: d.error || '' }),
          ]),
        ),
      ),
    ]),
  ];
}

/** A round trip's state beside the job's status: overdue results count as stuck. */
function resultsBadge(job: JobView): HTMLElement | null {
  const r = job.results;
  if (!r)
    return job.resultOf
      ? el('span', { title: `result of job ${job.resultOf}` }, [' ', badge('result', 'queued')])
      : null;
  const label: Record<string, [string, string]> = {
    overdue: ['results overdue', 'bad'],
    back: ['results back', 'ok'],
    awaiting: ['awaiting results', 'waiting'],
  };
  const [text, cls] = label[r.state] ?? [];
  if (!text) return null;
  const b = badge(text, cls);
  b.dataset.results = r.state;
  b.title = r.resultsAt
    ? `from ${r.from} at ${r.resultsAt}`
    : `from ${r.from}${r.expectedBy ? `, due ${r.expectedBy}` : ''}`;
  return el('span', {}, [' ', b]);
}

function jobRows(job: JobView): HTMLTableRowElement[] {
  const duration = job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.createdAt) : undefined;
  const row = el('tr', { class: 'job', 'data-job': job.id, 'data-status': job.status }, [
    el('td', { title: job.createdAt, text: ago(job.createdAt) }),
    el('td', { text: job.ruleId }),
    el('td', {}, [el('code', { title: job.resourceId, text: `${job.level} ${job.resourceId.slice(0, 8)}` })]),
    el('td', {}, [badge(job.status), resultsBadge(job)]),
    el('td', { text: job.currentStep }),
    el('td', {}, [
      el('span', { class: 'bar', title: `${job.percent}%` }, [el('span', { style: `width:${job.percent}%` })]),
      ` ${job.percent}%`,
    ]),
    el('td', { class: 'num', text: ms(duration) }),
    el('td', {}, [job.status === 'failed' ? retryButton(job) : null]),
  ]);
  row.addEventListener('click', () => {
    state.open[job.id] = !state.open[job.id];
    loadJobs().catch(showError);
  });
  const rows = [row];
  if (job.error)
    rows.push(
      el('tr', { 'data-error-of': job.id }, [el('td'), el('td', { colspan: '7', class: 'error', text: job.error })]),
    );
  if (state.open[job.id]) rows.push(el('tr', { class: 'detail' }, [el('td', { colspan: '8' }, jobDetail(job))]));
  return rows;
}

/** The job filters as a query string; search is by Orthanc id or StudyInstanceUID, never a patient attribute. */
function query(extra: Record<string, string | undefined>): string {
  const p = new URLSearchParams();
  const status = $<HTMLSelectElement>('f-status').value;
  const rule = $<HTMLSelectElement>('f-rule').value;
  const resource = $<HTMLInputElement>('f-resource').value.trim();
  if (status) p.set('status', status);
  if (rule) p.set('rule', rule);
  if (resource) p.set('resource', resource);
  for (const [k, v] of Object.entries(extra)) if (v) p.set(k, v);
  return p.toString();
}

async function loadJobs(): Promise<void> {
  const r = await api<JobsPage>(`jobs?${query({ limit: '25', cursor: state.cursor })}`);
  let rows: HTMLTableRowElement[] = r.jobs.flatMap(jobRows);
  if (rows.length === 0) rows = [el('tr', {}, [el('td', { colspan: '8', class: 'muted', text: 'No jobs match.' })])];
  fill('jobs', rows);
  state.next = r.next;
  $<HTMLButtonElement>('older').disabled = !r.next;
  $<HTMLButtonElement>('newer').disabled = state.cursors.length === 0;
}

async function loadFailures(): Promise<void> {
  const r = await api<JobsPage>('jobs?status=failed&limit=10');
  const rows = r.jobs.map((j) =>
    el('tr', { 'data-failed': j.id }, [
      el('td', { title: j.createdAt, text: ago(j.finishedAt || j.updatedAt) }),
      el('td', { text: j.ruleId }),
      el('td', { class: 'error', text: j.error || '' }),
      el('td', {}, [retryButton(j)]),
    ]),
  );
  const none = el('tr', {}, [el('td', { colspan: '4', class: 'muted', text: 'No failed jobs in the last 7 days.' })]);
  fill('failures', rows.length ? rows : [none]);
}

function renderRules(report: RulesReport): void {
  const select = $<HTMLSelectElement>('f-rule');
  const chosen = select.value;
  select.replaceChildren(el('option', { value: '', text: 'all rules' }));
  for (const r of report.rules)
    if (r.valid && r.active !== undefined) select.appendChild(el('option', { value: r.id, text: r.id }));
  select.value = chosen;
  const rules = report.rules.map((r) => {
    const ruleState = !r.valid ? badge('invalid') : r.active === false ? badge('inactive') : badge('valid');
    const destinations = r.destinations ?? [];
    const pipeline = (r.steps ?? []).join(' > ') + (destinations.length ? ` to ${destinations.join(', ')}` : '');
    const problems = [
      ...r.errors.map((e) => el('div', { class: 'error', text: e })),
      ...r.warnings.map((w) => el('div', { class: 'muted', text: w })),
    ];
    return el('tr', { 'data-rule': r.id }, [
      el('td', {}, [el('code', { text: r.file })]),
      el('td', {}, [ruleState]),
      el('td', { text: r.checkOn || '' }),
      el('td', { text: pipeline }),
      el('td', {}, problems),
    ]);
  });
  const others = report.other.map((p) =>
    el('tr', {}, [
      el('td', {}, [el('code', { text: p.file })]),
      el('td', {}, [badge(p.severity === 'error' ? 'invalid' : 'warning')]),
      el('td', { colspan: '3', class: p.severity === 'error' ? 'error' : 'muted', text: p.message }),
    ]),
  );
  fill('rules', [...rules, ...others]);
  const hour = String(report.master.DailyCheckHour).padStart(2, '0');
  $('sweep').textContent = report.master.DailySweepEnabled ? `Daily sweep at ${hour}:00` : 'Daily sweep off';
}

interface WorklistDay {
  configured: boolean;
  bookings: Array<{
    key: string;
    time: string;
    scanner: string;
    modality: string;
    project?: string;
    status: string;
    orthancStudyId?: string;
    jobs: Array<{ id: string; ruleId?: string; status: string }>;
  }>;
}

/** Booking statuses in the badge colours the page already has. */
const BOOKING_BADGE: Record<string, string> = {
  scheduled: 'queued',
  arrived: 'running',
  processed: 'succeeded',
  'not-received': 'failed',
  cancelled: 'inactive',
};

/** Today's worklist (GET worklist): time, scanner, project, status, and the study's jobs; never a patient attribute. */
function renderWorklist(day: WorklistDay): void {
  const rows = day.bookings.map((b) =>
    el('tr', { 'data-booking': b.key, 'data-status': b.status }, [
      el('td', { text: b.time }),
      el('td', { text: `${b.scanner} (${b.modality})` }),
      el('td', { text: b.project || '' }),
      el('td', {}, [badge(b.status, BOOKING_BADGE[b.status])]),
      el('td', {}, [
        ...(b.orthancStudyId
          ? [el('code', { title: b.orthancStudyId, text: `Study ${b.orthancStudyId.slice(0, 8)}` })]
          : []),
        ...b.jobs.map((j) => el('span', {}, [' ', badge(`${j.ruleId ?? j.id}`, j.status)])),
      ]),
    ]),
  );
  const empty = day.configured ? 'No bookings today.' : 'No booking source configured (WORKLIST_SOURCE).';
  fill('worklist', rows.length ? rows : [el('tr', {}, [el('td', { colspan: '5', class: 'muted', text: empty })])]);
}

interface Percentiles {
  count: number;
  p50: number;
  p90: number;
  p99: number;
}
interface QiReport {
  days: number;
  funnel: { stage: string; count: number | null; unit: string; note: string }[];
  rules: Record<string, { succeeded: number; failed: number; open: number; turnaround?: Percentiles }>;
  destinations: Record<string, { jobs: number; delivered: number; failed: number; turnaround?: Percentiles }>;
  failuresByStep: Record<string, number>;
  topErrors: { reason: string; count: number; rules: string[] }[];
  hourOfDay: { hour: number; jobs: number; failed: number }[];
  read: { jobs: number; limit: number; complete: boolean };
}

const FUNNEL_LABELS: Record<string, string> = {
  received: 'received',
  matched: 'matched',
  processed: 'processed',
  delivered: 'delivered',
  resultsBack: 'results back',
};

/**
 * Labelled horizontal bars, one per row; a row without a count is drawn as an empty dashed bar that
 * says "not tracked yet", so no figure is ever made up.
 */
function barsChart(
  rows: { key: string; label: string; count: number | null; title: string; colour?: string }[],
  label: string,
  data: string,
): SVGSVGElement {
  const [W, row, left, right] = [480, 26, 110, 60];
  const { svg, add } = svgCanvas(W, Math.max(rows.length, 1) * row + 4, label);
  const max = Math.max(...rows.map((r) => r.count ?? 0), 1);
  rows.forEach((r, i) => {
    const y = i * row + 4;
    add('text', { x: left - 6, y: y + 15, 'text-anchor': 'end' }, r.label);
    const g = add('g', { [`data-${data}`]: r.key, 'data-count': r.count === null ? 'untracked' : r.count });
    add('title', {}, r.title, g);
    if (r.count === null) {
      add(
        'rect',
        {
          x: left,
          y,
          width: W - left - right,
          height: row - 8,
          fill: 'none',
          stroke: '#d0d7de',
          'stroke-dasharray': '4 3',
        },
        undefined,
        g,
      );
      add('text', { x: left + 8, y: y + 14 }, 'not tracked yet', g);
      return;
    }
    const width = Math.max(Math.round(((W - left - right) * r.count) / max), r.count ? 2 : 0);
    add('rect', { x: left, y, width, height: row - 8, fill: r.colour ?? '#0969da' }, undefined, g);
    add('text', { x: left + width + 6, y: y + 14 }, String(r.count), g);
  });
  return svg;
}

/** Jobs created per hour of the day (UTC) over the range; the failed part of each bar in red. */
function hoursChart(hours: QiReport['hourOfDay'], days: number): SVGSVGElement {
  const [W, H, left, bottom, top] = [480, 150, 30, 22, 10];
  const { svg, add } = svgCanvas(W, H, `Jobs created per hour of day over the last ${days} day(s)`);
  const max = Math.max(...hours.map((h) => h.jobs), 1);
  const slot = (W - left - 4) / 24;
  const plot = H - bottom - top;
  add('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: '#d0d7de' });
  add('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, String(max));
  add('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, '0');
  for (const h of hours) {
    const x = left + h.hour * slot + 1;
    const height = Math.round((plot * h.jobs) / max);
    const failed = Math.round((plot * h.failed) / max);
    const g = add('g', { 'data-hour-of-day': h.hour, 'data-jobs': h.jobs });
    add('title', {}, `${String(h.hour).padStart(2, '0')}:00 UTC: ${h.jobs} jobs, ${h.failed} failed`, g);
    add('rect', { x, y: H - bottom - height, width: Math.max(slot - 2, 1), height, fill: '#0969da' }, undefined, g);
    if (failed)
      add(
        'rect',
        { x, y: H - bottom - failed, width: Math.max(slot - 2, 1), height: failed, fill: '#cf222e' },
        undefined,
        g,
      );
    if (h.hour % 3 === 0)
      add('text', { x: x + slot / 2, y: H - 6, 'text-anchor': 'middle' }, String(h.hour).padStart(2, '0'));
  }
  return svg;
}

function turnaroundRow(kind: 'rule' | 'destination', name: string, jobs: number, failed: number, t?: Percentiles) {
  return el('tr', { [`data-qi-${kind}`]: name }, [
    el('td', {}, [kind === 'destination' ? el('span', { class: 'muted', text: 'to ' }) : null, name]),
    el('td', { class: 'num', text: String(jobs) }),
    el('td', { class: 'num', text: t ? ms(t.p50) : '-' }),
    el('td', { class: 'num', text: t ? ms(t.p90) : '-' }),
    el('td', { class: 'num', text: t ? ms(t.p99) : '-' }),
    el('td', { class: 'num' }, [failed ? badge(String(failed), 'bad') : '0']),
  ]);
}

/** The QI section (GET qi?days=N): funnel, hour-of-day volume, turnarounds, failures by step, top reasons. */
function renderQi(qi: QiReport): void {
  fill('qi-funnel', [
    barsChart(
      qi.funnel.map((s) => ({
        key: s.stage,
        label: FUNNEL_LABELS[s.stage] ?? s.stage,
        count: s.count,
        title: `${FUNNEL_LABELS[s.stage] ?? s.stage}: ${s.count === null ? 'not tracked yet' : `${s.count} ${s.unit}`} (${s.note})`,
      })),
      `Funnel over the last ${qi.days} day(s)`,
      'stage',
    ),
  ]);
  fill('qi-hours', [hoursChart(qi.hourOfDay, qi.days)]);
  const rows = [
    ...Object.entries(qi.rules).map(([id, r]) =>
      turnaroundRow('rule', id, r.succeeded + r.failed + r.open, r.failed, r.turnaround),
    ),
    ...Object.entries(qi.destinations).map(([name, d]) =>
      turnaroundRow('destination', name, d.jobs, d.failed, d.turnaround),
    ),
  ];
  const none = (cols: string, text: string) => el('tr', {}, [el('td', { colspan: cols, class: 'muted', text })]);
  fill('qi-turnaround', rows.length ? rows : [none('6', 'No jobs in this range.')]);
  const steps = Object.entries(qi.failuresByStep);
  fill(
    'qi-steps',
    steps.length
      ? [
          barsChart(
            steps.map(([step, count]) => ({
              key: step,
              label: step,
              count,
              title: `${count} job(s) failed in ${step}`,
              colour: '#cf222e',
            })),
            'Failed jobs by step',
            'step',
          ),
        ]
      : [el('div', { class: 'muted', text: 'No failed jobs in this range.' })],
  );
  fill(
    'qi-errors',
    qi.topErrors.length
      ? qi.topErrors.map((e) =>
          el('tr', { 'data-qi-reason': String(e.count) }, [
            el('td', { class: 'num', text: String(e.count) }),
            el('td', { class: 'error', text: e.reason }),
            el('td', { text: e.rules.join(', ') }),
          ]),
        )
      : [none('3', 'No failures in this range.')],
  );
  const partial = qi.read.complete ? '' : `; destinations and reasons from the newest ${qi.read.jobs} jobs only`;
  $('qi-note').textContent =
    `Funnel: ${qi.funnel.map((s) => `${FUNNEL_LABELS[s.stage] ?? s.stage}: ${s.note}`).join('; ')}${partial}.`;
  $('qi').setAttribute('data-days', String(qi.days));
}

const loadQi = () =>
  api<QiReport>(`qi?days=${encodeURIComponent($<HTMLSelectElement>('qi-days').value)}`).then(renderQi);

interface DestinationView {
  name: string;
  kind: 'dicom' | 'dicomweb';
  source: 'env' | 'dashboard';
  readOnly: boolean;
  aet?: string;
  host?: string;
  port?: number;
  url?: string;
  credentialsFrom?: string;
  credentialsSet?: boolean;
  updatedAt?: string;
  updatedBy?: string;
  shadowed?: boolean;
  usedBy?: string[];
  echo?: { echo: string; reason?: string; checkedAt: string; configured: boolean };
}
interface DestinationFieldsView {
  kind?: 'dicomweb';
  aet?: string;
  host?: string;
  port?: number;
  url?: string;
  credentialsFrom?: string;
}
interface DestinationChangeView {
  at: string;
  who: string;
  action: string;
  name: string;
  before?: DestinationFieldsView;
  after?: DestinationFieldsView;
}
interface EchoAnswerView {
  name: string;
  ok: boolean;
  milliseconds: number;
  reason?: string;
}

/** Over this round trip an echo gets a "slow" badge (issue 22). */
const SLOW_ECHO_MS = 1000;
/** The operator's last Echo per destination, kept across refreshes; `editing` is the name the form changes. */
const destinationState: { echoes: Record<string, EchoAnswerView>; editing?: string } = { echoes: {} };

const target = (f?: DestinationFieldsView) =>
  !f
    ? ''
    : f.kind === 'dicomweb'
      ? `${f.url ?? ''}${f.credentialsFrom ? ` (credentials ${f.credentialsFrom})` : ''}`
      : `${f.aet}@${f.host}:${f.port}`;

/** The form shows the fields of the kind chosen; the hidden ones are not required. */
function showKindFields(kind: string): void {
  const web = kind === 'dicomweb';
  for (const id of ['d-aet', 'd-host', 'd-port']) {
    const input = $<HTMLInputElement>(id);
    input.hidden = web;
    input.required = !web;
  }
  $<HTMLInputElement>('d-url').hidden = !web;
  $<HTMLInputElement>('d-url').required = web;
  $<HTMLInputElement>('d-credentials').hidden = !web;
}

function echoCell(d: DestinationView): HTMLElement {
  const tried = destinationState.echoes[d.name];
  const cell = el('td', { class: 'echo' });
  if (tried) {
    const result = badge(
      tried.ok ? `ok ${tried.milliseconds} ms` : `failed after ${tried.milliseconds} ms`,
      tried.ok ? 'ok' : 'bad',
    );
    if (tried.reason) result.title = tried.reason;
    cell.append(result);
    if (tried.milliseconds > SLOW_ECHO_MS) cell.append(' ', badge('slow'));
  } else if (d.echo) {
    const last = badge(
      `${d.echo.configured ? `echo ${d.echo.echo}` : 'not in Orthanc'}`,
      d.echo.echo === 'ok' ? 'ok' : 'bad',
    );
    last.title = `${d.echo.reason ? `${d.echo.reason}; ` : ''}checked ${new Date(d.echo.checkedAt).toLocaleString()}`;
    cell.append(last);
  }
  return cell;
}

function echoButton(d: DestinationView): HTMLButtonElement {
  const b = el('button', { type: 'button', 'data-echo': d.name, text: d.kind === 'dicomweb' ? 'Test' : 'Echo' });
  if (d.kind === 'dicomweb') b.title = 'A QIDO-RS request to the base URL, timed (C-ECHO is DICOM-only)';
  b.addEventListener('click', () => {
    b.disabled = true;
    api<EchoAnswerView>(`destinations/${encodeURIComponent(d.name)}/echo`, { method: 'POST' })
      .then((answer) => {
        destinationState.echoes[d.name] = answer;
        return loadDestinations();
      })
      .catch(showError)
      .finally(() => {
        b.disabled = false;
      });
  });
  return b;
}

function editDestination(d: DestinationView): void {
  destinationState.editing = d.name;
  const name = $<HTMLInputElement>('d-name');
  name.value = d.name;
  name.disabled = true;
  $<HTMLInputElement>('d-aet').value = d.aet ?? '';
  $<HTMLInputElement>('d-host').value = d.host ?? '';
  $<HTMLInputElement>('d-port').value = String(d.port ?? '');
  $<HTMLSelectElement>('d-kind').value = d.kind;
  $<HTMLSelectElement>('d-kind').disabled = true;
  $<HTMLInputElement>('d-url').value = d.url ?? '';
  $<HTMLInputElement>('d-credentials').value = d.credentialsFrom ?? '';
  showKindFields(d.kind);
  $('d-save').textContent = `Save ${d.name}`;
  $('d-cancel').hidden = false;
  $('d-message').textContent = '';
}

function editButton(d: DestinationView): HTMLButtonElement {
  const b = el('button', { type: 'button', 'data-edit': d.name, text: 'Edit' });
  b.addEventListener('click', () => editDestination(d));
  return b;
}

function resetDestinationForm(): void {
  destinationState.editing = undefined;
  (document.getElementById('destination-form') as HTMLFormElement).reset();
  $<HTMLInputElement>('d-name').disabled = false;
  $<HTMLSelectElement>('d-kind').disabled = false;
  showKindFields('dicom');
  $('d-save').textContent = 'Add destination';
  $('d-cancel').hidden = true;
}

function deleteButton(d: DestinationView): HTMLButtonElement {
  const b = el('button', { type: 'button', 'data-delete': d.name, text: 'Delete' });
  b.addEventListener('click', () => {
    const used = d.usedBy?.length
      ? ` The rule(s) ${d.usedBy.join(', ')} forward to it: their forwards will fail until it is back.`
      : '';
    if (!confirm(`Delete destination ${d.name}?${used}`)) return;
    b.disabled = true;
    api(`destinations/${encodeURIComponent(d.name)}`, { method: 'DELETE' })
      .then(() => {
        delete destinationState.echoes[d.name];
        if (destinationState.editing === d.name) resetDestinationForm();
        say(`Destination ${d.name} deleted`);
        return loadDestinations();
      })
      .catch((e: unknown) => {
        b.disabled = false;
        showError(e);
      });
  });
  return b;
}

function destinationRow(d: DestinationView): HTMLTableRowElement {
  const sourceBadge = badge(d.source === 'env' ? '.env' : 'dashboard', d.source === 'env' ? 'env' : 'running');
  if (d.readOnly) sourceBadge.title = 'From .env: read-only here; change it in .env and restart';
  return el('tr', { 'data-destination': d.name, 'data-source': d.source }, [
    el('td', {}, [el('code', { text: d.name }), d.shadowed ? badge('shadowed by .env', 'warning') : null]),
    el('td', {}, [sourceBadge, d.kind === 'dicomweb' ? ' DICOMweb' : null]),
    el('td', {}, [
      d.kind === 'dicomweb' ? (d.url ?? '') : (d.aet ?? ''),
      d.credentialsFrom ? ' ' : null,
      d.credentialsFrom
        ? badge(
            `credentials ${d.credentialsFrom}${d.credentialsSet ? '' : ' not set'}`,
            d.credentialsSet ? 'env' : 'warning',
          )
        : null,
    ]),
    el('td', { text: d.host ?? '' }),
    el('td', { class: 'num', text: d.port === undefined ? '' : String(d.port) }),
    echoCell(d),
    el('td', { class: 'muted', text: d.updatedBy ? `${d.updatedBy}, ${ago(d.updatedAt)}` : '' }),
    el('td', {}, [
      d.shadowed ? null : echoButton(d),
      d.readOnly ? null : ' ',
      d.readOnly || d.shadowed ? null : editButton(d),
      d.readOnly ? null : ' ',
      d.readOnly ? null : deleteButton(d),
    ]),
  ]);
}

/** The Destinations panel (GET destinations): every destination with its source, and the latest changes. */
async function loadDestinations(): Promise<void> {
  const answer = await api<{ destinations: DestinationView[]; audit: DestinationChangeView[] }>('destinations');
  const rows = answer.destinations.map(destinationRow);
  const none = el('tr', {}, [el('td', { colspan: '8', class: 'muted', text: 'No destinations yet.' })]);
  fill('destinations-list', rows.length ? rows : [none]);
  const changes = answer.audit.map((c) =>
    el('tr', { 'data-change': c.action, 'data-change-of': c.name }, [
      el('td', { title: c.at, text: ago(c.at) }),
      el('td', { text: c.who }),
      el('td', { text: c.action }),
      el('td', {}, [el('code', { text: c.name })]),
      el('td', { text: target(c.before) }),
      el('td', { text: target(c.after) }),
    ]),
  );
  const nothing = el('tr', {}, [el('td', { colspan: '6', class: 'muted', text: 'No changes yet.' })]);
  fill('destinations-audit', changes.length ? changes : [nothing]);
}

// Add or save: POST destinations, or PUT destinations/{name} while editing; the API's reason is shown as text.
$('destination-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const credentialsFrom = $<HTMLInputElement>('d-credentials').value.trim();
  const fields =
    $<HTMLSelectElement>('d-kind').value === 'dicomweb'
      ? {
          kind: 'dicomweb',
          url: $<HTMLInputElement>('d-url').value.trim(),
          ...(credentialsFrom ? { credentialsFrom } : {}),
        }
      : {
          aet: $<HTMLInputElement>('d-aet').value.trim(),
          host: $<HTMLInputElement>('d-host').value.trim(),
          port: Number($<HTMLInputElement>('d-port').value),
        };
  const editing = destinationState.editing;
  const name = editing ?? $<HTMLInputElement>('d-name').value.trim();
  const message = $('d-message');
  const save = $<HTMLButtonElement>('d-save');
  save.disabled = true;
  const sent = editing
    ? api<{ orthanc?: { configured?: boolean; echo?: string } }>(`destinations/${encodeURIComponent(editing)}`, {
        method: 'PUT',
        body: fields,
      })
    : api<{ orthanc?: { configured?: boolean; echo?: string } }>('destinations', {
        method: 'POST',
        body: { name, ...fields },
      });
  sent
    .then((answer) => {
      const orthanc = answer.orthanc;
      message.className = 'muted';
      message.textContent = `${name} ${editing ? 'saved' : 'added'}; ${'kind' in fields ? 'DICOMweb: used by the next forward' : orthanc?.configured ? `in Orthanc, C-ECHO ${orthanc.echo}` : 'not yet in Orthanc (it is put back at start-up and every minute)'}`;
      delete destinationState.echoes[name];
      resetDestinationForm();
      return loadDestinations();
    })
    .catch((e: unknown) => {
      message.className = 'error';
      message.textContent = e instanceof Error ? e.message : String(e);
    })
    .finally(() => {
      save.disabled = false;
    });
});
$('d-cancel').addEventListener('click', resetDestinationForm);
$('d-kind').addEventListener('change', () => showKindFields($<HTMLSelectElement>('d-kind').value));

/**
 * Every panel of the page, in the order they are read. To add one: a <section> in index.html with
 * the ids it fills, a function here that reads the API (`api<T>('route')`) and fills them with `el`
 * (text only), and a line in this list.
 */
const PANELS: Panel[] = [
  { load: () => api<HealthReport>('status', { allow: [503] }).then(renderHealth) }, // header badges + Queues
  { load: loadJobs }, // Recent jobs
  { load: loadFailures }, // Failures
  { slow: true, load: () => api<Stats>('stats').then(renderStats) }, // Last 24 hours (a day of index rows)
  { slow: true, load: () => api<RulesReport>('rules').then(renderRules) }, // Rules
  { slow: true, load: () => api<WorklistDay>('worklist').then(renderWorklist) }, // Today's worklist
  { slow: true, load: loadQi }, // Quality indicators (reads up to a range of jobs)
  { slow: true, load: loadDestinations }, // Destinations (and after each change of them)
];

/** Fast panels every 5 s; slow ones on every sixth refresh (30 s) and on the first. */
async function refresh(): Promise<void> {
  const full = refreshes++ % 6 === 0;
  try {
    await Promise.all(PANELS.filter((p) => full || !p.slow).map((p) => p.load()));
    $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.setAttribute('data-loaded', String(Date.now()));
  } catch (e) {
    showError(e);
  }
}

function restartPaging(): void {
  state.cursor = undefined;
  state.cursors = [];
  loadJobs().catch(showError);
}

interface AlertTestAnswer {
  ok?: boolean;
  error?: string;
  results: Array<{ webhook: string; ok: boolean; status?: number; error?: string }>;
}

// Send test alert: POST alerts/test, one line per webhook (named by number, format and host; never its URL).
$('alert-test').addEventListener('click', () => {
  const button = $<HTMLButtonElement>('alert-test');
  button.disabled = true;
  api<AlertTestAnswer>('alerts/test', { method: 'POST', allow: [409] })
    .then((answer) => {
      fill(
        'alert-results',
        answer.error
          ? [el('li', { text: answer.error })]
          : answer.results.map((r) =>
              el('li', {
                'data-ok': String(r.ok),
                text: `${r.webhook}: ${r.ok ? 'delivered' : 'failed'} (${r.status !== undefined ? `HTTP ${r.status}` : (r.error ?? '')})`,
              }),
            ),
      );
    })
    .catch(showError)
    .finally(() => {
      button.disabled = false;
    });
});

$('f-status').addEventListener('change', restartPaging);
$('f-rule').addEventListener('change', restartPaging);
$('f-resource').addEventListener('change', restartPaging);
$('qi-days').addEventListener('change', () => {
  loadQi().catch(showError);
});
$('older').addEventListener('click', () => {
  state.cursors.push(state.cursor);
  state.cursor = state.next;
  loadJobs().catch(showError);
});
$('newer').addEventListener('click', () => {
  state.cursor = state.cursors.pop();
  loadJobs().catch(showError);
});
$('pause').addEventListener('click', () => {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'Resume updates' : 'Pause updates';
});
void refresh();
setInterval(() => {
  if (!state.paused && !document.hidden) void refresh();
}, 5000);
