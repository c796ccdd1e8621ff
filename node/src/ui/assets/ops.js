// Trace search and the relay queue of every node, with flush.

import { call, get } from './api.js';
import { h, show, table, when, flash, localInputMs } from './dom.js';

export async function trace() {
  const input = {
    sender: h('input', { id: 't-sender' }),
    rcpt: h('input', { id: 't-rcpt' }),
    id: h('input', { id: 't-id', placeholder: 'message id' }),
    since: h('input', { id: 't-since', type: 'datetime-local' }),
  };
  const out = h('div', { id: 't-results' });
  const form = h('form', { class: 'inline', id: 't-form' },
    Object.entries(input).map(([k, el]) => h('label', {}, k, el)),
    h('button', { type: 'submit', class: 'primary', id: 't-search' }, 'Search'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const r = await get('/api/v1/trace', {
        sender: input.sender.value, rcpt: input.rcpt.value, id: input.id.value, since: localInputMs(input.since.value),
      });
      // A message held in quarantine opens in its view from every one of its events.
      const held = new Set(r.events.filter((e) => e.event === 'quarantined').map((e) => e.message_id));
      const messageCell = (id) => (held.has(id) ? h('td', {}, h('a', { href: `#/message/${encodeURIComponent(id)}`, class: 'open' }, id)) : id);
      const rows = r.events.map((e) => [when(e.time_ms), e.node, e.event, messageCell(e.message_id), e.sender,
        (e.recipients || []).join(', '), e.detail, e.score === null || e.score === undefined ? '' : e.score.toFixed(2)]);
      out.replaceChildren(
        r.unreachable.length ? h('p', { class: 'error' }, `not answering: ${r.unreachable.join(', ')}`) : '',
        rows.length ? table(['time', 'node', 'event', 'message', 'sender', 'recipients', 'detail', 'score'], rows, { id: 't-table' })
          : h('p', { class: 'muted' }, 'No events match.'));
    } catch (e) {
      flash(e.message, true);
    }
  });
  show(h('h1', {}, 'Trace'), form, out);
}

export async function queues() {
  const cluster = await get('/api/v1/cluster');
  const box = h('div', { id: 'queues' });
  show(h('h1', {}, 'Relay queues'), box);
  for (const m of cluster.members) {
    const section = h('section', { 'data-node': m.id });
    box.append(section);
    await fillQueue(section, m);
  }
}

async function fillQueue(section, m) {
  if (!m.live) {
    section.replaceChildren(h('h2', {}, m.id), h('p', { class: 'live-no' }, 'not live'));
    return;
  }
  try {
    const q = await get('/api/v1/queue', { node: m.id });
    const flush = h('button', {
      type: 'button', class: 'flush',
      onclick: async () => {
        try {
          await call('POST', `/api/v1/queue/flush?node=${encodeURIComponent(m.id)}`);
          flash(`${m.id}: queue flushed`);
          await fillQueue(section, m);
        } catch (e) {
          flash(e.message, true);
        }
      },
    }, 'Flush (retry now)');
    const rows = q.entries.map((e) => [e.id, when(e.created_ms), e.sender,
      e.recipients.map((r) => r.addr).join(', '), e.subject, h('td', { class: 'num' }, e.attempts),
      when(e.next_attempt_ms), e.last_error || '', e.origin]);
    section.replaceChildren(h('h2', {}, `${m.id}: ${q.size} waiting`), h('div', { class: 'actions' }, flush),
      rows.length ? table(['id', 'queued', 'sender', 'recipients', 'subject', 'attempts', 'next try', 'last error', 'origin'], rows)
        : h('p', { class: 'muted' }, 'Empty.'));
  } catch (e) {
    section.replaceChildren(h('h2', {}, m.id), h('p', { class: 'error' }, e.message));
  }
}
