// Quarantine: search with every filter of the API, paging, bulk actions, and the message
// view. A message is shown as text only: its HTML is never rendered and nothing it links
// to is loaded (the page's Content-Security-Policy forbids it as well).

import { call, get } from './api.js';
import { h, show, table, when, flash, localInputMs } from './dom.js';

const FILTERS = ['sender', 'rcpt', 'subject', 'node', 'since', 'status', 'limit'];
const STATUSES = ['', 'quarantined', 'released', 'deleted', 'expired', 'lost'];
const PAGE_DEFAULT = 50;
/** Bulk actions: label, and how to carry one out on message `id`. */
const BULK = [
  ['Release', (id) => call('POST', `/api/v1/quarantine/${encodeURIComponent(id)}/release`)],
  ['Delete', (id) => call('DELETE', `/api/v1/quarantine/${encodeURIComponent(id)}`)],
  ['Learn spam', (id) => call('POST', `/api/v1/quarantine/${encodeURIComponent(id)}/learn?class=spam`)],
  ['Learn ham', (id) => call('POST', `/api/v1/quarantine/${encodeURIComponent(id)}/learn?class=ham`)],
];

/** The search page; `query` is the URL-encoded filter set (kept in the address bar). */
export async function quarantine(query) {
  const params = new URLSearchParams(query || '');
  const cluster = await get('/api/v1/cluster');
  const input = {
    sender: h('input', { id: 'q-sender', value: params.get('sender') || '' }),
    rcpt: h('input', { id: 'q-rcpt', value: params.get('rcpt') || '' }),
    subject: h('input', { id: 'q-subject', value: params.get('subject') || '' }),
    node: h('select', { id: 'q-node' }, h('option', { value: '' }, 'any'),
      cluster.members.map((m) => h('option', { value: m.id, selected: params.get('node') === m.id }, m.id))),
    since: h('input', { id: 'q-since', type: 'datetime-local', value: params.get('since_local') || '' }),
    status: h('select', { id: 'q-status' }, STATUSES.map((s) => h('option', { value: s, selected: (params.get('status') || '') === s }, s || 'any'))),
    limit: h('input', { id: 'q-limit', type: 'number', min: 1, value: params.get('limit') || PAGE_DEFAULT }),
  };
  const form = h('form', { class: 'inline', id: 'q-form' },
    FILTERS.map((f) => h('label', {}, f, input[f])),
    h('button', { type: 'submit', class: 'primary', id: 'q-search' }, 'Search'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FILTERS) if (input[f].value) p.set(f === 'since' ? 'since_local' : f, input[f].value);
    const next = `#/quarantine/${p.toString()}`;
    if (location.hash === next) quarantine(p.toString()).catch((e) => flash(e.message, true));
    else location.hash = next;
  });
  const results = h('div', { id: 'q-results' });
  show(h('h1', {}, 'Quarantine'), form, results);
  const apiParams = {};
  for (const f of FILTERS) if (params.get(f)) apiParams[f] = params.get(f);
  if (params.get('since_local')) apiParams.since = localInputMs(params.get('since_local'));
  await page(results, apiParams, []);
}

/** One page of results; `back` holds the cursors of the pages before. */
async function page(results, apiParams, back) {
  const answer = await get('/api/v1/quarantine', apiParams);
  const boxes = [];
  const rows = answer.items.map((e) => {
    const box = h('input', { type: 'checkbox', class: 'pick', 'data-id': e.id });
    boxes.push(box);
    return h('tr', { 'data-id': e.id },
      h('td', {}, box),
      h('td', {}, when(e.received_ms)),
      h('td', {}, e.node),
      h('td', {}, e.sender),
      h('td', {}, recipientsText(e)),
      h('td', {}, h('a', { href: `#/message/${encodeURIComponent(e.id)}`, class: 'open' }, e.subject || '(no subject)')),
      h('td', { class: 'num' }, e.score === null || e.score === undefined ? '' : e.score.toFixed(2)),
      h('td', {}, e.reason),
      h('td', {}, e.pending ? `${e.status} (${e.pending.action} pending)` : e.status));
  });
  const all = h('input', { type: 'checkbox', id: 'pick-all', title: 'select all on this page' });
  all.addEventListener('change', () => boxes.forEach((b) => { b.checked = all.checked; }));
  const bulk = h('div', { class: 'actions', id: 'bulk' }, h('span', { class: 'muted' }, 'Selected:'),
    BULK.map(([label, act]) => h('button', { type: 'button', 'data-bulk': label, onclick: () => runBulk(label, act, boxes, results, apiParams, back) }, label)));
  const paging = h('div', { class: 'actions', id: 'paging' },
    back.length ? h('button', { type: 'button', id: 'prev', onclick: () => page(results, { ...apiParams, cursor: back[back.length - 1] || undefined }, back.slice(0, -1)) }, '← Previous') : '',
    answer.next ? h('button', { type: 'button', id: 'next', onclick: () => page(results, { ...apiParams, cursor: answer.next }, [...back, apiParams.cursor || '']) }, 'Next →') : '');
  results.replaceChildren(
    answer.items.length ? table([all, 'received', 'node', 'sender', 'recipients', 'subject', 'score', 'reason', 'status'], rows, { id: 'q-table' })
      : h('p', { class: 'muted', id: 'q-empty' }, 'Nothing matches.'),
    bulk, paging);
  // For benchmarks: when the results were on screen, in the browser's own timeline.
  performance.mark('mxmesh:quarantine-results');
}

async function runBulk(label, act, boxes, results, apiParams, back) {
  const ids = boxes.filter((b) => b.checked).map((b) => b.dataset.id);
  if (!ids.length) return flash('Select messages first.', true);
  const failed = [];
  for (const [i, id] of ids.entries()) {
    flash(`${label}: ${i + 1} of ${ids.length}…`);
    try {
      await act(id);
    } catch (e) {
      failed.push(`${id}: ${e.message}`);
    }
  }
  await page(results, apiParams, back);
  flash(failed.length ? `${label}: ${failed.length} of ${ids.length} failed — ${failed.join('; ')}` : `${label}: done for ${ids.length}`, failed.length > 0);
}

/** One message: metadata, score and symbols, headers, text, attachments; actions. */
export async function message(id) {
  const v = await get(`/api/v1/quarantine/${encodeURIComponent(id)}/view`);
  const e = v.entry;
  const status = h('p', { id: 'm-status' }, `status: ${e.status}`);
  const act = (label, method, path, cls) => h('button', {
    type: 'button', class: cls || '', 'data-action': label,
    onclick: async () => {
      try {
        const r = await call(method, path);
        const s = (r && (r.status || (r.learned !== undefined && (r.learned ? 'learned' : r.reason)))) || 'done';
        status.textContent = `${label}: ${s}`;
        flash(`${label}: ${s}`);
      } catch (err) {
        status.textContent = `${label}: ${err.message}`;
        flash(err.message, true);
      }
    },
  }, label);
  const base = `/api/v1/quarantine/${encodeURIComponent(id)}`;
  const meta = table(['', ''], [
    ['id', e.id], ['node', e.node], ['received', when(e.received_ms)], ['sender', e.sender],
    ['recipients', recipientsText(e)], ['subject', e.subject], ['size', `${e.size} bytes`],
    ['reason', e.reason], ['rule', e.rule_id || ''], ['score', e.score === null ? 'not recorded' : e.score.toFixed(2)],
  ], { id: 'm-meta' });
  const symbols = (e.symbols || []).length
    ? table(['symbol', 'weight'], e.symbols.map((s) => [s.name, h('td', { class: 'num' }, s.weight.toFixed(2))]), { id: 'm-symbols' })
    : h('p', { class: 'muted' }, 'No symbols recorded.');
  const headers = table(['header', 'value'], v.headers.map((x) => [x.name, x.value]), { id: 'm-headers' });
  const attachments = v.attachments.length
    ? table(['name', 'type', 'size'], v.attachments.map((a) => [a.name, a.content_type, h('td', { class: 'num' }, a.size)]), { id: 'm-attachments' })
    : h('p', { class: 'muted' }, 'No attachments.');
  const text = h('pre', { class: 'body', id: 'm-text' }, v.text);
  show(h('h1', {}, e.subject || '(no subject)'), status,
    h('div', { class: 'actions', id: 'm-actions' },
      act('Release', 'POST', `${base}/release`, 'primary'),
      act('Release and learn ham', 'POST', `${base}/release?learn=ham`),
      act('Delete', 'DELETE', base, 'danger'),
      act('Learn spam', 'POST', `${base}/learn?class=spam`),
      act('Learn ham', 'POST', `${base}/learn?class=ham`)),
    meta, h('h2', {}, 'Score and symbols'), symbols,
    h('h2', {}, 'Text'), v.text_truncated ? h('p', { class: 'muted' }, 'The text is cut short.') : '', text,
    h('h2', {}, 'Attachments'), attachments,
    h('h2', {}, 'Headers'), headers);
}

// The recipients, each released or deleted for on its own (a digest link, ?rcpt=) marked.
function recipientsText(e) {
  const lower = (list) => new Set((list || []).map((r) => r.toLowerCase()));
  const released = lower(e.recipients_released);
  const deleted = lower(e.recipients_deleted);
  return (e.recipients || []).map((r) => {
    const key = r.toLowerCase();
    if (released.has(key)) return `${r} (released)`;
    if (deleted.has(key)) return `${r} (deleted)`;
    return r;
  }).join(', ');
}
