// Allow and deny lists: every entry (with who added it and when, from the rule history),
// adding one (the server's validation error shown at the field it names), deleting one.

import { call, get } from './api.js';
import { h, show, table, when, flash } from './dom.js';
import { fieldForm } from './form.js';

const KINDS = ['allow', 'deny'];

export async function lists() {
  const [{ entries }, { history }] = await Promise.all([get('/api/v1/lists'), get('/api/v1/rules/history')]);
  const added = addedBy(history);
  const rows = entries.map((e) => {
    const who = added.get(e.id);
    return h('tr', { 'data-entry': e.id },
      h('td', { title: e.id }, e.id.slice(-8)),
      h('td', { class: e.kind === 'allow' ? 'ok' : 'error' }, e.kind),
      h('td', { class: 'sender' }, e.sender),
      h('td', { class: 'scope' }, scopeText(e.scope)),
      h('td', {}, who ? `${who.admin} on ${who.node}` : ''),
      h('td', {}, who ? when(who.time_ms) : ''),
      h('td', {}, deleteButton(e)));
  });
  show(h('h1', {}, 'Allow and deny lists'), addForm(),
    h('h2', {}, `Entries (${entries.length})`),
    entries.length ? table(['id', 'kind', 'sender', 'recipients', 'added by', 'added', ''], rows, { id: 'lists' })
      : h('p', { class: 'muted', id: 'lists-empty' }, 'No entries: every message is left to the rules and the spam score.'),
    h('p', { class: 'muted' }, 'An allow entry lets the sender\'s mail past the score thresholds (never past a virus or a rule); '
      + 'a deny entry quarantines it. README, section "Allow and deny lists".'));
}

/** Who created each entry and when, by entry id, from the rule history (`list:<id>`). */
function addedBy(history) {
  const by = new Map();
  for (const e of history) {
    if (e.op === 'create' && e.rule_id.startsWith('list:')) by.set(e.rule_id.slice(5), e);
  }
  return by;
}

function scopeText(scope) {
  if (scope === '*') return 'everyone';
  return scope.includes('@') ? scope : `anyone at ${scope}`;
}

function addForm() {
  const input = {
    kind: h('select', { id: 'list-kind' }, KINDS.map((k) => h('option', { value: k }, k))),
    sender: h('input', { id: 'list-sender', placeholder: 'user@example.com, example.com or *.example.com' }),
    scope: h('input', { id: 'list-scope', value: '*', placeholder: 'recipient, domain or * for everyone' }),
  };
  const form = fieldForm('list', input, {
    kind: 'Kind', sender: 'Sender', scope: 'Recipients',
  }, 'Add entry', async () => {
    const saved = await call('POST', '/api/v1/lists', {
      kind: input.kind.value, sender: input.sender.value, scope: input.scope.value,
    });
    await lists();
    flash(`${saved.kind} entry for ${saved.sender} added (${saved.id})`);
  });
  return h('section', {}, h('h2', {}, 'Add an entry'), form);
}

function deleteButton(e) {
  let armed = false;
  const b = h('button', { type: 'button', class: 'danger delete', 'data-entry': e.id }, 'Delete');
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.textContent = 'Really delete?';
      return;
    }
    try {
      await call('DELETE', `/api/v1/lists/${encodeURIComponent(e.id)}`);
      await lists();
      flash(`${e.kind} entry for ${e.sender} deleted`);
    } catch (err) {
      flash(err.message, true);
    }
  });
  return b;
}
