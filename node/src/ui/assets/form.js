// A form whose fields show the server's validation error next to themselves: the API
// answers 400 `{"error","field"}`, and the message goes to the field `field` starts with
// (`time`, `sender`, `weights.X` → `weights`), or above the button when it names none.

import { ApiError } from './api.js';
import { h } from './dom.js';

/**
 * A `form.grid` with one row per entry of `input` (field name → element), labelled by
 * `labels`. On submit it clears the old errors and awaits `save()`; an error it throws is
 * shown at its `field`. Ids: `${prefix}-form`, `${prefix}-error-${field}`, `${prefix}-error`
 * (the form's own line) and `${prefix}-save` (the button).
 */
export function fieldForm(prefix, input, labels, buttonText, save) {
  const fields = Object.keys(input);
  const errors = Object.fromEntries(fields.map((f) => [f, h('div', { class: 'field-error', id: `${prefix}-error-${f}` })]));
  const formError = h('p', { class: 'error', id: `${prefix}-error` });
  const rows = fields.map((f) => [h('label', { for: input[f].id }, labels[f] || f), h('div', {}, input[f], errors[f])]);
  const form = h('form', { class: 'grid', id: `${prefix}-form`, novalidate: true },
    rows.flat(), h('span', {}),
    h('div', {}, formError, h('button', { type: 'submit', class: 'primary', id: `${prefix}-save` }, buttonText)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    for (const f of fields) {
      errors[f].textContent = '';
      input[f].classList.remove('invalid');
    }
    formError.textContent = '';
    try {
      await save();
    } catch (e) {
      const first = (e.field || '').split(/[.[]/)[0];
      if (fields.includes(first)) {
        errors[first].textContent = e.message;
        input[first].classList.add('invalid');
        input[first].focus();
      } else {
        formError.textContent = e.message;
      }
    }
  });
  return form;
}

/**
 * The value of a number input as a number, or `null` when it is empty. What the browser
 * cannot read as a number (its `value` is then '' too) is an error at `field`, not an
 * empty field: an empty threshold turns a verdict off.
 */
export function numberOrNull(el, field) {
  if (el.validity && el.validity.badInput) throw new ApiError(400, `${field}: not a number`, field);
  return el.value.trim() === '' ? null : Number(el.value);
}
