// Overview: members, graphs of mail per minute, queue sizes, DNS set; drain/undrain.

import uPlot from './vendor/uPlot.esm.js';
import { call, get } from './api.js';
import { h, show, table, ago, flash, onLeave } from './dom.js';

/** The counters graphed, one chart each. */
const METRICS = ['received', 'relayed', 'quarantined', 'rejected'];
/** The window the graphs show, and their bucket width. */
const WINDOW_MS = 60 * 60 * 1000;
const STEP_SECS = 60;
/** How often the page refreshes itself. */
const REFRESH_MS = 30 * 1000;
/** Chart size in CSS pixels. */
const CHART_WIDTH_MIN = 320;
const CHART_PADDING = 20;
const CHART_HEIGHT = 200;
const COLORS = ['#1f5fbf', '#c2571a', '#2e8b57', '#8e44ad', '#b8860b', '#c0392b', '#16a085'];

export async function overview() {
  const box = h('div', { id: 'overview' }, h('h1', {}, 'Overview'));
  show(box);
  await fill(box);
  const timer = setInterval(() => fill(box).catch((e) => flash(e.message, true)), REFRESH_MS);
  onLeave(() => clearInterval(timer));
}

async function fill(box) {
  const cluster = await get('/api/v1/cluster');
  const queues = await Promise.all(cluster.members.map((m) => (m.live
    ? get('/api/v1/queue', { node: m.id }).then((q) => q.size).catch(() => '?')
    : Promise.resolve('—'))));
  const members = table(
    ['node', 'live', 'health', 'version', 'last seen', 'rules digest', 'quarantined', 'relay queue', ''],
    cluster.members.map((m, i) => [
      m.id + (m.id === cluster.self ? ' (this node)' : ''),
      h('td', { class: m.live ? 'live-yes' : 'live-no' }, m.live ? 'yes' : 'no'),
      m.health, m.version,
      m.id === cluster.self ? 'now' : ago(m.last_seen_ms || 0),
      h('td', { title: m.rules_digest }, (m.rules_digest || '').slice(0, 12)),
      h('td', { class: 'num' }, m.quarantine_entries),
      h('td', { class: 'num' }, queues[i]),
      h('td', {}, drainButton(m, box)),
    ]),
    { id: 'members' });
  const charts = h('div', { class: 'charts', id: 'charts' });
  box.replaceChildren(h('h1', {}, 'Overview'), h('h2', {}, 'Members'), members,
    h('h2', {}, 'Mail per minute (last hour)'), charts, h('h2', {}, 'DNS'), dns(cluster));
  const since = Date.now() - WINDOW_MS;
  // Every box first, so the grid has its final columns before a chart reads its width.
  const boxes = METRICS.map((metric) => h('div', { class: 'chart', id: `chart-${metric}` }, h('h3', {}, metric)));
  charts.append(...boxes);
  const answers = await Promise.all(METRICS.map((metric) => get('/api/v1/stats/series', { metric, since, step: STEP_SECS })));
  answers.forEach((s, i) => chart(boxes[i], s));
}

function drainButton(m, box) {
  if (!m.live) return '';
  const draining = m.health === 'draining';
  return h('button', {
    type: 'button',
    class: 'drain',
    'data-node': m.id,
    onclick: async () => {
      try {
        await call('POST', `/api/v1/nodes/${encodeURIComponent(m.id)}/${draining ? 'undrain' : 'drain'}`);
        flash(`${m.id}: ${draining ? 'back in traffic' : 'draining'}`);
        await fill(box);
      } catch (e) {
        flash(e.message, true);
      }
    },
  }, draining ? 'Undrain' : 'Drain');
}

/** What the DNS status's keys mean, in the order shown (others follow under their key). */
const DNS_LABELS = {
  published: 'addresses in the set', publisher: 'node pushing updates', rfc2136_server: 'external server',
  rfc2136_confirmed: 'the server holds', rfc2136_updates_ok: 'updates confirmed', rfc2136_updates_failed: 'updates failed',
  rfc2136_last_error: 'last error',
};

function dns(cluster) {
  if (!cluster.dns) return h('p', { class: 'muted' }, 'This node runs no DNS helper.');
  const d = cluster.dns;
  const keys = [...Object.keys(DNS_LABELS).filter((k) => k in d), ...Object.keys(d).filter((k) => !(k in DNS_LABELS))];
  const text = (v) => {
    if (v === null || v === undefined) return '—';
    if (Array.isArray(v)) return v.length ? v.join(', ') : 'none';
    return typeof v === 'object' ? JSON.stringify(v) : String(v);
  };
  const rows = keys.map((k) => [DNS_LABELS[k] || k, text(d[k])]);
  return table(['', ''], rows, { id: 'dns', class: 'kv' });
}

/** Draws series `s` into `div` (already on the page, so its width is known). */
function chart(div, s) {
  const width = Math.max(CHART_WIDTH_MIN, div.clientWidth - CHART_PADDING);
  const nodes = Object.keys(s.nodes).sort();
  const data = [s.times.map((t) => t / 1000), ...nodes.map((n) => s.nodes[n]), s.total];
  const series = [{}, ...nodes.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 1.5 })),
    { label: 'total', stroke: '#17202e', width: 2.5 }];
  const opts = { width, height: CHART_HEIGHT, series, axes: [{}, { size: 40 }], scales: { y: { range: (u, min, max) => [0, Math.max(1, max)] } } };
  new uPlot(opts, data, div);
}
