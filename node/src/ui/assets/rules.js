// Rules: list, create/edit (the server's validation error shown at the field it names),
// enable/disable, delete, and the audit history.

import { call, get } from './api.js';
import { h, show, table, when, flash } from './dom.js';

const ACTIONS = ['accept', 'tag', 'quarantine', 'reject', 'tempfail'];
/** Form fields by the first part of the JSON path an error names. */
const FIELDS = ['name', 'priority', 'action', 'reason', 'subject_prefix', 'enabled', 'when'];
const EXAMPLE_WHEN = { field: 'subject', op: 'contains', value: 'viagra' };

export async function rules() {
  const { rules: list } = await get('/api/v1/rules');
  const rows = list.map((r) => h('tr', { 'data-rule': r.id },
    h('td', { title: r.id }, r.id.slice(-8)),
    h('td', {}, h('a', { href: `#/rule/${encodeURIComponent(r.id)}` }, r.name || '(unnamed)')),
    h('td', { class: 'num' }, r.priority),
    h('td', {}, r.action),
    h('td', {}, r.reason || ''),
    h('td', { class: r.enabled ? 'ok' : 'muted' }, r.enabled ? 'enabled' : 'disabled'),
    h('td', {},
      h('button', { type: 'button', class: 'toggle', onclick: () => toggle(r) }, r.enabled ? 'Disable' : 'Enable'), ' ',
      deleteButton(r))));
  show(h('h1', {}, 'Rules'),
    h('div', { class: 'actions' }, h('a', { href: '#/rule', id: 'new-rule' }, h('button', { type: 'button', class: 'primary' }, 'New rule'))),
    list.length ? table(['id', 'name', 'priority', 'action', 'reason', 'state', ''], rows, { id: 'rules' })
      : h('p', { class: 'muted' }, 'No rules yet: every message is left to the spam score.'));
}

async function toggle(r) {
  try {
    await call('PUT', `/api/v1/rules/${encodeURIComponent(r.id)}`, { ...r, enabled: !r.enabled });
    flash(`rule ${r.name} ${r.enabled ? 'disabled' : 'enabled'}`);
    await rules();
  } catch (e) {
    flash(e.message, true);
  }
}

function deleteButton(r) {
  let armed = false;
  const b = h('button', { type: 'button', class: 'danger delete' }, 'Delete');
  b.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      b.textContent = 'Really delete?';
      return;
    }
    try {
      await call('DELETE', `/api/v1/rules/${encodeURIComponent(r.id)}`);
      flash(`rule ${r.name} deleted`);
      await rules();
    } catch (e) {
      flash(e.message, true);
    }
  });
  return b;
}

/** The create (no id) or edit form. */
export async function ruleForm(id) {
  const rule = id ? await get(`/api/v1/rules/${encodeURIComponent(id)}`)
    : { name: '', priority: 100, action: 'quarantine', reason: '', enabled: true, when: EXAMPLE_WHEN };
  const input = {
    name: h('input', { id: 'rule-name', value: rule.name }),
    priority: h('input', { id: 'rule-priority', type: 'number', value: rule.priority }),
    action: h('select', { id: 'rule-action' }, ACTIONS.map((a) => h('option', { value: a, selected: a === rule.action }, a))),
    reason: h('input', { id: 'rule-reason', value: rule.reason || '' }),
    subject_prefix: h('input', { id: 'rule-subject_prefix', value: rule.subject_prefix || '', placeholder: 'only for tag' }),
    enabled: h('input', { id: 'rule-enabled', type: 'checkbox', checked: rule.enabled }),
    when: h('textarea', { id: 'rule-when', spellcheck: 'false' }),
  };
  input.when.value = JSON.stringify(rule.when, null, 2);
  const errors = Object.fromEntries(FIELDS.map((f) => [f, h('div', { class: 'field-error', id: `error-${f}` })]));
  const formError = h('p', { class: 'error', id: 'error-rule' });
  const row = (f, label) => [h('label', { for: `rule-${f}` }, label), h('div', {}, input[f], errors[f])];
  const form = h('form', { class: 'grid', id: 'rule-form', novalidate: true },
    row('name', 'Name'), row('priority', 'Priority'), row('action', 'Action'), row('reason', 'Reason'),
    row('subject_prefix', 'Subject prefix'), row('enabled', 'Enabled'), row('when', 'When (JSON)'),
    h('span', {}), h('div', {}, formError, h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, id ? 'Save' : 'Create')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(input, errors, formError);
    let cond;
    try {
      cond = JSON.parse(input.when.value);
    } catch (e) {
      return fieldError(input, errors, formError, 'when', `when: not valid JSON (${e.message})`);
    }
    // A number input's value is '' for text the browser cannot read as a number: say so
    // rather than send priority 0.
    if (input.priority.validity.badInput || input.priority.value.trim() === '') {
      return fieldError(input, errors, formError, 'priority', 'priority: a whole number is needed');
    }
    const body = {
      name: input.name.value,
      priority: Number(input.priority.value),
      action: input.action.value,
      reason: input.reason.value,
      enabled: input.enabled.checked,
      when: cond,
    };
    if (input.subject_prefix.value) body.subject_prefix = input.subject_prefix.value;
    try {
      const saved = id ? await call('PUT', `/api/v1/rules/${encodeURIComponent(id)}`, body)
        : await call('POST', '/api/v1/rules', body);
      location.hash = '#/rules';
      flash(`rule ${saved.name} saved (${saved.id})`);
    } catch (e) {
      fieldError(input, errors, formError, e.field, e.message);
    }
  });
  show(h('h1', {}, id ? `Edit rule ${rule.name}` : 'New rule'), form,
    h('p', { class: 'muted' }, 'Fields, ops and actions are listed in the README, section Rules.'));
}

function clearErrors(input, errors, formError) {
  for (const f of FIELDS) {
    errors[f].textContent = '';
    input[f].classList.remove('invalid');
  }
  formError.textContent = '';
}

/** Shows `message` at the field its JSON `path` starts with, or above the button. */
function fieldError(input, errors, formError, path, message) {
  const first = (path || '').split(/[.[]/)[0];
  if (FIELDS.includes(first)) {
    errors[first].textContent = message;
    input[first].classList.add('invalid');
    input[first].focus();
  } else {
    formError.textContent = message;
  }
}

/** The newest history entries the page asks for and shows. */
const HISTORY_SHOWN_MAX = 500;

export async function history() {
  const [{ history: list, total, truncated }, { rules: current }] = await Promise.all([get(`/api/v1/rules/history?limit=${HISTORY_SHOWN_MAX}`), get('/api/v1/rules')]);
  const names = new Map(current.map((r) => [r.id, r.name || '(unnamed)']));
  const newest = list.slice().reverse();
  const rows = newest.map((e) => [when(e.time_ms), e.node, e.admin, e.op, ruleCell(e.rule_id, names), (e.fields || []).join(', ')]);
  show(h('h1', {}, 'Rule history'),
    truncated ? h('p', { class: 'muted', id: 'history-cut' }, `The newest ${newest.length} of ${total} changes.`) : '',
    table(['time', 'node', 'admin', 'change', 'rule', 'fields'], rows, { id: 'history' }));
}

/** A rule that still exists by its name, linked to its form, with its id; other keys
 * (`list:…`, `settings:…`) and deleted rules by their id. */
function ruleCell(id, names) {
  const name = names.get(id);
  if (name === undefined) return id;
  return h('td', {}, h('a', { href: `#/rule/${encodeURIComponent(id)}` }, name), ' ', h('span', { class: 'muted' }, id));
}
