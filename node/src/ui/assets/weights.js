// The symbol weights: every symbol of the table (`/api/v1/spam/symbols`) with its family,
// meaning, default and current weight, and an input for an override (empty: the default).
// Saved with the spam settings (`PUT /api/v1/settings/spam`): the rows changed here, onto
// the thresholds and weights as stored now; the server's 400
// `{"error","field":"weights.SYMBOL"}` shows at that symbol's row.

import { call, get } from './api.js';
import { h, flash } from './dom.js';

/**
 * The weights form from the symbol table and the stored settings. Ids: `weights-form`,
 * `spam-weights` (the table, a row per symbol with `data-symbol`), `weight-SYMBOL` (its
 * input), `weight-error-SYMBOL`, `weights-error` (the form's own line), `weights-save`.
 */
export function weightsForm(symbols, settings) {
  let stored = { ...(settings.weights || {}) };
  const rows = new Map(symbols.map((s) => [s.name, weightRow(s)]));
  const formError = h('p', { class: 'error', id: 'weights-error' });
  const summary = h('p', { class: 'muted', id: 'weights-summary' });
  const showStored = () => {
    for (const r of rows.values()) r.show(stored[r.sym.name]);
    const n = Object.keys(stored).length;
    summary.textContent = n ? `${n} of ${rows.size} weights differ from the default.` : 'Every weight is the default.';
  };
  showStored();
  const clearErrors = () => {
    formError.textContent = '';
    for (const r of rows.values()) r.clearError();
  };
  const form = h('form', { id: 'weights-form', novalidate: true },
    filterBar(rows), summary,
    h('table', { id: 'spam-weights' },
      h('thead', {}, h('tr', {}, ['symbol', 'family', 'meaning', 'default', 'current', 'new weight', ''].map((c) => h('th', {}, c)))),
      h('tbody', {}, [...rows.values()].map((r) => r.tr))),
    formError,
    h('button', { type: 'submit', class: 'primary', id: 'weights-save' }, 'Save weights'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors();
    try {
      stored = await saveWeights(rows);
      showStored();
      flash(`symbol weights saved: ${Object.keys(stored).length} differ from the default`);
    } catch (e) {
      const row = rows.get((e.field || '').replace(/^weights\./, ''));
      if (row && e.field.startsWith('weights.')) row.fail(e.message);
      else formError.textContent = e.message;
    }
  });
  return form;
}

/** Sends the rows changed since they were shown onto the settings as stored now (a weight
 * another admin saved meanwhile stays unless this page changed it too); answers the stored
 * weights. */
async function saveWeights(rows) {
  const now = await get('/api/v1/settings/spam');
  const weights = { ...(now.weights || {}) };
  for (const r of rows.values()) {
    if (!r.changed()) continue;
    const v = typed(r.input.value);
    if (v === undefined) delete weights[r.sym.name];
    else weights[r.sym.name] = v;
  }
  const saved = await call('PUT', '/api/v1/settings/spam', { ...now, weights });
  return saved.weights || {};
}

/** An input's text as a weight: undefined when empty (the default), a number when it is
 * one, else the text itself, which the server refuses naming the symbol. */
function typed(text) {
  const t = text.trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
}

/** One symbol's row: its cells, input, error line and reset button. */
function weightRow(sym) {
  const input = h('input', {
    id: `weight-${sym.name}`, class: 'weight', inputmode: 'decimal', size: 7,
    placeholder: String(sym.weight), 'aria-label': `new weight of ${sym.name}`,
  });
  const error = h('div', { class: 'field-error', id: `weight-error-${sym.name}` });
  const current = h('td', { class: 'num current' });
  const reset = h('button', { type: 'button', class: 'reset', 'data-symbol': sym.name, title: `back to the default, ${sym.weight}` }, 'Reset to default');
  const tr = h('tr', { 'data-symbol': sym.name },
    h('td', { class: 'symbol' }, sym.name), h('td', {}, sym.family), h('td', {}, sym.description),
    h('td', { class: 'num' }, sym.weight), current, h('td', {}, input, error), h('td', {}, reset));
  let shown = '';
  const syncReset = () => { reset.hidden = input.value.trim() === ''; };
  const clearError = () => {
    error.textContent = '';
    input.classList.remove('invalid');
  };
  input.addEventListener('input', syncReset);
  reset.addEventListener('click', () => {
    input.value = '';
    clearError();
    syncReset();
    input.focus();
  });
  return {
    sym, tr, input, clearError,
    /** Whether the input differs from what `show` put there. */
    changed: () => input.value.trim() !== shown,
    /** Shows the stored override (undefined: none). */
    show(override) {
      const set = override !== undefined;
      current.textContent = set ? override : sym.weight;
      current.classList.toggle('changed', set);
      shown = set ? String(override) : '';
      input.value = shown;
      syncReset();
    },
    /** Shows the server's error at this row. */
    fail(message) {
      tr.hidden = false;
      error.textContent = message;
      input.classList.add('invalid');
      input.focus();
    },
  };
}

/** A filter over the rows: words of the name, family or meaning; "changed only". */
function filterBar(rows) {
  const text = h('input', { id: 'weights-filter', type: 'search', placeholder: 'symbol, family or meaning', size: 30 });
  const changed = h('input', { id: 'weights-changed-only', type: 'checkbox' });
  const apply = () => {
    const words = text.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const r of rows.values()) {
      const hay = `${r.sym.name} ${r.sym.family} ${r.sym.description}`.toLowerCase();
      const hit = words.every((w) => hay.includes(w));
      r.tr.hidden = !hit || (changed.checked && r.input.value.trim() === '');
    }
  };
  text.addEventListener('input', apply);
  changed.addEventListener('change', apply);
  return h('div', { class: 'filters' },
    h('label', {}, 'Filter ', text), h('label', {}, changed, ' only weights that differ from the default'));
}
