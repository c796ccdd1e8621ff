// Small DOM helpers. Text always goes in as text nodes: nothing a message or a user typed
// is ever parsed as markup.

/** Builds an element: h('td', {class: 'num'}, 'text', childElement, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces the page's content. */
export function show(...children) {
  const main = document.getElementById('main');
  main.replaceChildren(...children.flat());
}

/** A table from column titles and rows of cells. */
export function table(columns, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {}, c)))),
    h('tbody', {}, rows.map((r) => (r instanceof Node ? r : h('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))))))));
}

/** A short message at the top of the page (error when `bad`). */
export function flash(text, bad = false) {
  const box = document.getElementById('flash');
  box.replaceChildren(h('p', { class: bad ? 'error' : 'ok', id: 'flash-text' }, text));
}

/** Clears the message at the top of the page. */
export function clearFlash() {
  document.getElementById('flash').replaceChildren();
}

/** A time in ms since the epoch, as local date and time. */
export function when(ms) {
  if (!ms) return '';
  return new Date(ms).toLocaleString();
}

/** A duration in ms ("how long since"), coarsely, as "… ago". */
export function ago(ms) {
  if (ms < 1000) return `${(ms / 1000).toFixed(1)} s ago`;
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s ago`;
  if (s < 5400) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

/** The value of a datetime-local input as ms since the epoch ('' when empty). */
export function localInputMs(value) {
  if (!value) return '';
  const ms = new Date(value).getTime();
  return Number.isFinite(ms) ? String(ms) : '';
}

let leaving = [];

/** Registers what to stop (timers) when another page opens. */
export function onLeave(fn) {
  leaving.push(fn);
}

/** Runs and forgets what the current page registered with `onLeave`. */
export function leavePage() {
  for (const fn of leaving) fn();
  leaving = [];
}
