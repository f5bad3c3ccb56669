/**
 * The operator dashboard: one self-contained page (no CDN, no external font or script: hospital
 * networks often have no internet). It reads the operator API (`status`, `stats`, `jobs`, `rules`)
 * relative to its own URL, so it works at `/api/dashboard` on the function app and behind nginx,
 * and it passes on a `?code=` function key from its own URL when one was given.
 *
 * The inline script and style are allowed by their SHA-256 in the Content-Security-Policy, so the
 * page can run nothing else: job errors and rule messages are inserted as text, never as HTML.
 */
import { createHash } from 'node:crypto';

const STYLE = `
:root { --ok: #1a7f37; --bad: #cf222e; --run: #0969da; --wait: #9a6700; --muted: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; padding: 10px 20px; background: #24292f; color: #fff; }
header h1 { font-size: 18px; margin: 0 16px 0 0; }
header .badge { background: #32383f; }
main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 15px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; color: #fff; background: var(--muted); }
.badge.ok, .badge.succeeded, .badge.valid { background: var(--ok); }
.badge.bad, .badge.failed, .badge.invalid { background: var(--bad); }
.badge.running { background: var(--run); }
.badge.queued, .badge.waiting, .badge.inactive { background: var(--wait); }
.error { color: var(--bad); white-space: pre-wrap; word-break: break-word; }
.muted { color: var(--muted); }
.bar { width: 120px; height: 8px; background: #eaeef2; border-radius: 4px; overflow: hidden; display: inline-block; vertical-align: middle; }
.bar > span { display: block; height: 100%; background: var(--run); }
.counters { display: flex; flex-wrap: wrap; gap: 18px; margin-bottom: 8px; }
.counters div { min-width: 90px; }
.counters b { display: block; font-size: 20px; }
.filters { display: flex; flex-wrap: wrap; gap: 8px; margin-bottom: 8px; align-items: center; }
button { cursor: pointer; border: 1px solid var(--line); background: #f6f8fa; border-radius: 6px; padding: 3px 10px; font: inherit; }
button.retry { border-color: var(--bad); color: var(--bad); }
button:disabled { opacity: 0.5; cursor: default; }
input, select { font: inherit; padding: 2px 6px; }
code { font-size: 12px; }
tr.job { cursor: pointer; }
tr.job:hover { background: #f6f8fa; }
tr.detail td { background: #f6f8fa; }
svg text { font-size: 10px; fill: var(--muted); }
#message { margin-left: auto; }
`;

const SCRIPT = `
(function () {
  'use strict';
  var key = new URLSearchParams(location.search).get('code');
  var state = { cursor: undefined, cursors: [], open: {}, paused: false };
  var $ = function (id) { return document.getElementById(id); };

  function api(path, options) {
    options = options || {};
    var headers = { Accept: 'application/json' };
    if (key) headers['x-functions-key'] = key;
    var body;
    if (options.method === 'POST') { headers['Content-Type'] = 'application/json'; body = '{}'; }
    return fetch(path, { method: options.method || 'GET', headers: headers, body: body, credentials: 'same-origin', cache: 'no-store' }).then(function (r) {
      return r.text().then(function (text) {
        var body;
        try { body = text ? JSON.parse(text) : {}; } catch (e) { body = { error: text }; }
        if (!r.ok && !(options.allow || []).includes(r.status)) throw new Error(path + ': HTTP ' + r.status + (body.error ? ' - ' + body.error : ''));
        return body;
      });
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') node.textContent = attrs[k];
      else if (k === 'style') node.style.cssText = attrs[k]; // CSSOM: allowed by the policy, unlike a style attribute
      else node.setAttribute(k, attrs[k]);
    });
    (children || []).forEach(function (c) { if (c !== null && c !== undefined) node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c); });
    return node;
  }
  function badge(text, cls) { return el('span', { class: 'badge ' + (cls || text), text: text }); }
  function fill(id, nodes) { var t = $(id); t.replaceChildren.apply(t, nodes); }
  function ago(iso) {
    if (!iso) return '';
    var s = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    if (s < 86400) return Math.round(s / 3600) + ' h ago';
    return new Date(iso).toLocaleString();
  }
  function ms(n) { return n === undefined || n === null ? '' : n < 1000 ? n + ' ms' : (n / 1000).toFixed(1) + ' s'; }
  function bytes(n) { if (!n) return '0 B'; var u = ['B', 'KB', 'MB', 'GB', 'TB']; var i = Math.min(Math.floor(Math.log(n) / Math.log(1024)), 4); return (n / Math.pow(1024, i)).toFixed(i ? 1 : 0) + ' ' + u[i]; }
  function say(text, bad) { var m = $('message'); m.textContent = text; m.className = bad ? 'error' : 'muted'; }

  function renderHealth(h) {
    var o = h.orthanc || {}, s = h.storage || {};
    fill('health', [
      badge('Orthanc ' + (o.ok ? (o.version || 'up') : 'down'), o.ok ? 'ok' : 'bad'),
      ' ', badge('storage ' + (s.ok ? 'up' : 'down'), s.ok ? 'ok' : 'bad'),
      ' ', badge('change feed ' + (h.changeFeed && h.changeFeed.cursor !== null ? '#' + h.changeFeed.cursor : 'not run yet'), 'muted'),
    ].concat(Object.keys(h.destinations || {}).map(function (name) {
      var d = h.destinations[name];
      var b = badge(name + ' echo ' + d.echo, d.echo === 'ok' ? 'ok' : d.echo === 'failed' ? 'bad' : 'queued');
      if (d.reason) b.title = d.reason;
      return el('span', {}, [' ', b]);
    })));
    var queues = h.queues || {};
    fill('queues', Object.keys(queues).map(function (name) {
      var q = queues[name];
      return el('tr', {}, [el('td', {}, [el('code', { text: name })]), el('td', { class: 'num', text: q.depth === null ? '-' : String(q.depth) }), el('td', { class: 'num' }, [q.poison ? badge(String(q.poison), 'bad') : (q.poison === null ? '-' : '0')])]);
    }));
  }

  function renderStats(st) {
    var j = st.jobs;
    fill('counters', [['created', j.created], ['succeeded', j.succeeded], ['failed', j.failed], ['running', j.running], ['queued', j.queued], ['instances', st.instances], ['data', bytes(st.bytes)]].map(function (c) {
      return el('div', { 'data-counter': c[0] }, [el('b', { text: String(c[1]) }), el('span', { class: 'muted', text: c[0] })]);
    }));
    drawChart(st.hourly);
  }

  function drawChart(hours) {
    var NS = 'http://www.w3.org/2000/svg', W = 720, H = 160, left = 40, bottom = 24, top = 10;
    var max = Math.max.apply(null, hours.map(function (h) { return h.instances; }).concat([1]));
    var svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('viewBox', '0 0 ' + W + ' ' + H); svg.setAttribute('width', '100%'); svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', 'Instances processed per hour over the last 24 hours');
    function add(tag, attrs, text) { var n = document.createElementNS(NS, tag); Object.keys(attrs).forEach(function (k) { n.setAttribute(k, attrs[k]); }); if (text !== undefined) n.textContent = text; svg.appendChild(n); return n; }
    var slot = (W - left - 4) / hours.length, plot = H - bottom - top;
    add('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom, stroke: '#d0d7de' });
    add('text', { x: left - 4, y: top + 8, 'text-anchor': 'end' }, String(max));
    add('text', { x: left - 4, y: H - bottom, 'text-anchor': 'end' }, '0');
    hours.forEach(function (h, i) {
      var x = left + i * slot + 2, height = Math.round(plot * h.instances / max);
      var bar = add('rect', { x: x, y: H - bottom - height, width: Math.max(slot - 4, 1), height: height, fill: '#0969da', 'data-hour': h.hour, 'data-instances': h.instances });
      var title = document.createElementNS(NS, 'title'); title.textContent = new Date(h.hour).toLocaleString() + ': ' + h.instances + ' instances, ' + h.succeeded + ' jobs succeeded, ' + h.failed + ' failed'; bar.appendChild(title);
      if (h.failed) add('circle', { cx: x + slot / 2 - 2, cy: H - bottom - height - 5, r: 3, fill: '#cf222e' });
      if (i % 3 === 0) add('text', { x: x + slot / 2 - 2, y: H - 8, 'text-anchor': 'middle' }, String(new Date(h.hour).getHours()).padStart(2, '0') + ':00');
    });
    fill('chart', [svg]);
  }

  function retryButton(job) {
    var b = el('button', { class: 'retry', 'data-retry': job.id, text: 'Retry' });
    b.addEventListener('click', function (event) {
      event.stopPropagation(); b.disabled = true; b.textContent = 'Retrying...';
      api('jobs/' + encodeURIComponent(job.id) + '/retry', { method: 'POST' }).then(function (r) { say('Job ' + job.id.slice(0, 8) + ' queued again from step ' + r.step); refreshes = 0; refresh(); })
        .catch(function (e) { b.disabled = false; b.textContent = 'Retry'; say(e.message, true); });
    });
    return b;
  }

  function stepsTable(job) {
    return el('table', {}, [el('thead', {}, [el('tr', {}, ['step', 'status', 'attempts', 'started', 'duration', 'instances', 'bytes', 'error'].map(function (h) { return el('th', { text: h }); }))]),
      el('tbody', {}, job.steps.map(function (s) {
        return el('tr', {}, [el('td', { text: s.name }), el('td', {}, [badge(s.status)]), el('td', { class: 'num', text: String(s.attempts) }), el('td', { text: s.startedAt ? new Date(s.startedAt).toLocaleTimeString() : '' }),
          el('td', { class: 'num', text: ms(s.durationMs) }), el('td', { class: 'num', text: s.instances === undefined ? (s.progress ? s.progress.done + '/' + s.progress.total : '') : String(s.instances) }),
          el('td', { class: 'num', text: s.bytes === undefined ? '' : bytes(s.bytes) }), el('td', { class: 'error', text: s.error || '' })]);
      }))]);
  }

  // The anonymise step's de-identification record: element counts per outcome and per basis of decision.
  function deidentification(job) {
    var step = (job.steps || []).filter(function (s) { return s.name === 'anonymise'; })[0];
    var record = step && step.detail && step.detail.deidentification;
    if (!record || !record.counts) return null;
    var totals = {};
    var bases = Object.keys(record.counts).sort().map(function (basis) {
      var outcomes = record.counts[basis];
      return basis + ' ' + Object.keys(outcomes).map(function (o) { totals[o] = (totals[o] || 0) + outcomes[o]; return o + ' ' + outcomes[o]; }).join(', ');
    });
    var summary = Object.keys(totals).map(function (o) { return o + ' ' + totals[o]; }).join(', ');
    return el('div', { class: 'deid', 'data-deid-of': job.id }, [el('b', { text: 'De-identification ' }), (record.profile ? record.profile.table + ': ' : '') + record.instances + ' instances; ' + summary,
      el('div', { class: 'muted', text: 'By basis: ' + bases.join('; ') + (record.warnings ? '; ' + record.warnings + ' warning(s)' : '') })]);
  }

  function jobRows(job) {
    var duration = job.finishedAt ? Date.parse(job.finishedAt) - Date.parse(job.createdAt) : undefined;
    var row = el('tr', { class: 'job', 'data-job': job.id, 'data-status': job.status }, [
      el('td', { title: job.createdAt, text: ago(job.createdAt) }), el('td', { text: job.ruleId }),
      el('td', {}, [el('code', { title: job.resourceId, text: job.level + ' ' + job.resourceId.slice(0, 8) })]),
      el('td', {}, [badge(job.status)]), el('td', { text: job.currentStep }),
      el('td', {}, [el('span', { class: 'bar', title: job.percent + '%' }, [el('span', { style: 'width:' + job.percent + '%' })]), ' ' + job.percent + '%']),
      el('td', { class: 'num', text: ms(duration) }), el('td', {}, [job.status === 'failed' ? retryButton(job) : null]),
    ]);
    row.addEventListener('click', function () { state.open[job.id] = !state.open[job.id]; loadJobs(); });
    var rows = [row];
    if (job.error) rows.push(el('tr', { 'data-error-of': job.id }, [el('td', {}), el('td', { colspan: '7', class: 'error', text: job.error })]));
    if (state.open[job.id]) rows.push(el('tr', { class: 'detail' }, [el('td', { colspan: '8' }, [
      el('div', {}, [el('b', { text: 'Job ' }), el('code', { text: job.id }), ' from ' + job.source + (job.forced ? ' (forced)' : '') + ', attempts ' + job.attempts]),
      job.outputPath ? el('div', {}, ['Output: ', el('code', { text: job.outputPath })]) : null,
      job.warnings && job.warnings.length ? el('div', { class: 'muted', text: 'Warnings: ' + job.warnings.join('; ') + (job.warningsOverflow ? ' ... and ' + job.warningsOverflow.count + ' more (GET jobs/' + job.id + '/warnings)' : '') }) : null,
      deidentification(job),
      stepsTable(job)])]));
    return rows;
  }

  function query(extra) {
    var p = new URLSearchParams();
    if ($('f-status').value) p.set('status', $('f-status').value);
    if ($('f-rule').value) p.set('rule', $('f-rule').value);
    if ($('f-resource').value.trim()) p.set('resource', $('f-resource').value.trim());
    Object.keys(extra || {}).forEach(function (k) { if (extra[k]) p.set(k, extra[k]); });
    return p.toString();
  }

  function loadJobs() {
    return api('jobs?' + query({ limit: '25', cursor: state.cursor })).then(function (r) {
      var rows = [];
      r.jobs.forEach(function (j) { rows = rows.concat(jobRows(j)); });
      if (rows.length === 0) rows = [el('tr', {}, [el('td', { colspan: '8', class: 'muted', text: 'No jobs match.' })])];
      fill('jobs', rows);
      state.next = r.next;
      $('older').disabled = !r.next; $('newer').disabled = state.cursors.length === 0;
    });
  }

  function loadFailures() {
    return api('jobs?status=failed&limit=10').then(function (r) {
      var rows = r.jobs.map(function (j) {
        return el('tr', { 'data-failed': j.id }, [el('td', { title: j.createdAt, text: ago(j.finishedAt || j.updatedAt) }), el('td', { text: j.ruleId }), el('td', { class: 'error', text: j.error || '' }), el('td', {}, [retryButton(j)])]);
      });
      fill('failures', rows.length ? rows : [el('tr', {}, [el('td', { colspan: '4', class: 'muted', text: 'No failed jobs in the last 7 days.' })])]);
    });
  }

  function renderRules(report) {
    var select = $('f-rule'), chosen = select.value;
    select.replaceChildren(el('option', { value: '', text: 'all rules' }));
    report.rules.forEach(function (r) { if (r.valid && r.active !== undefined) select.appendChild(el('option', { value: r.id, text: r.id })); });
    select.value = chosen;
    fill('rules', report.rules.map(function (r) {
      var state = !r.valid ? badge('invalid') : r.active === false ? badge('inactive') : badge('valid');
      return el('tr', { 'data-rule': r.id }, [el('td', {}, [el('code', { text: r.file })]), el('td', {}, [state]), el('td', { text: r.checkOn || '' }), el('td', { text: (r.steps || []).join(' > ') + ((r.destinations || []).length ? ' to ' + r.destinations.join(', ') : '') }),
        el('td', {}, r.errors.map(function (e) { return el('div', { class: 'error', text: e }); }).concat(r.warnings.map(function (w) { return el('div', { class: 'muted', text: w }); })))]);
    }).concat(report.other.map(function (p) { return el('tr', {}, [el('td', {}, [el('code', { text: p.file })]), el('td', {}, [badge(p.severity === 'error' ? 'invalid' : 'warning')]), el('td', { colspan: '3', class: p.severity === 'error' ? 'error' : 'muted', text: p.message })]); })));
    $('sweep').textContent = report.master.DailySweepEnabled ? 'Daily sweep at ' + String(report.master.DailyCheckHour).padStart(2, '0') + ':00' : 'Daily sweep off';
  }

  var refreshes = 0;
  function refresh() {
    // Jobs, failures and the status report every 5 s; the 24-hour counters (a day of index rows) and the rules every 30 s.
    var full = refreshes++ % 6 === 0;
    var tasks = [api('status', { allow: [503] }).then(renderHealth), loadJobs(), loadFailures()];
    if (full) tasks.push(api('stats').then(renderStats), api('rules').then(renderRules));
    return Promise.all(tasks).then(function () { $('updated').textContent = 'updated ' + new Date().toLocaleTimeString(); document.body.setAttribute('data-loaded', String(Date.now())); })
      .catch(function (e) { say(e.message, true); });
  }

  $('f-status').addEventListener('change', function () { state.cursor = undefined; state.cursors = []; loadJobs(); });
  $('f-rule').addEventListener('change', function () { state.cursor = undefined; state.cursors = []; loadJobs(); });
  $('f-resource').addEventListener('change', function () { state.cursor = undefined; state.cursors = []; loadJobs().catch(function (e) { say(e.message, true); }); });
  $('older').addEventListener('click', function () { state.cursors.push(state.cursor); state.cursor = state.next; loadJobs(); });
  $('newer').addEventListener('click', function () { state.cursor = state.cursors.pop(); loadJobs(); });
  $('pause').addEventListener('click', function () { state.paused = !state.paused; $('pause').textContent = state.paused ? 'Resume updates' : 'Pause updates'; });
  refresh();
  setInterval(function () { if (!state.paused && !document.hidden) refresh(); }, 5000);
})();
`;

const BODY = `
<header>
  <h1>autorthanc-functions</h1>
  <span id="health"></span>
  <span id="sweep" class="badge"></span>
  <span id="message" class="muted"></span>
  <span id="updated" class="muted"></span>
  <button id="pause" type="button">Pause updates</button>
</header>
<main>
  <section class="wide">
    <h2>Last 24 hours</h2>
    <div id="counters" class="counters"></div>
    <div id="chart"></div>
    <div class="muted">Instances processed per hour; a red dot marks an hour with failed jobs.</div>
  </section>
  <section>
    <h2>Queues</h2>
    <table><thead><tr><th>queue</th><th>waiting</th><th>poison</th></tr></thead><tbody id="queues"></tbody></table>
  </section>
  <section>
    <h2>Failures</h2>
    <table><thead><tr><th>when</th><th>rule</th><th>reason</th><th></th></tr></thead><tbody id="failures"></tbody></table>
  </section>
  <section class="wide">
    <h2>Recent jobs</h2>
    <div class="filters">
      <select id="f-status"><option value="">any status</option><option>queued</option><option>running</option><option>succeeded</option><option>failed</option></select>
      <select id="f-rule"><option value="">all rules</option></select>
      <input id="f-resource" placeholder="Orthanc id or StudyInstanceUID" size="44">
      <button id="newer" type="button" disabled>Newer</button>
      <button id="older" type="button" disabled>Older</button>
      <span class="muted">Click a job for its steps.</span>
    </div>
    <table><thead><tr><th>created</th><th>rule</th><th>resource</th><th>status</th><th>step</th><th>progress</th><th>duration</th><th></th></tr></thead><tbody id="jobs"></tbody></table>
  </section>
  <section class="wide">
    <h2>Rules</h2>
    <table><thead><tr><th>file</th><th>state</th><th>on</th><th>pipeline</th><th>problems</th></tr></thead><tbody id="rules"></tbody></table>
  </section>
</main>
`;

const sha256 = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>autorthanc-functions dashboard</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body>
${BODY}
<script>${SCRIPT}</script>
</body>
</html>
`;

/** Headers that keep the page to itself: only its own script and style run, nothing is cached or framed. */
export const DASHBOARD_HEADERS: Record<string, string> = {
  'Content-Type': 'text/html; charset=utf-8',
  'Content-Security-Policy': `default-src 'none'; connect-src 'self'; img-src 'self' data:; script-src ${sha256(SCRIPT)}; style-src ${sha256(STYLE)}; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
  'Cache-Control': 'no-store',
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
};
