// Cluster-wide settings: the digests (with "send digests now" and this node's digest
// status), the quarantine copies, the spam thresholds and the symbol weights. Each form
// shows the server's validation error at the field it names; a save answers with the
// settings as stored.

import { ApiError, call, get } from './api.js';
import { h, show, table, when, flash } from './dom.js';
import { fieldForm, numberOrNull } from './form.js';
import { weightsForm } from './weights.js';

const DIGEST_LABELS = {
  enabled: 'Scheduled', time: 'Time (HH:MM)', time_zone: 'Time zone', link_lifetime_hours: 'Link lifetime (hours)',
  public_url: 'Public URL', sender: 'Sender', items_max: 'Messages per digest',
};

export async function settings() {
  const [digest, status, quarantine, spam, { symbols }] = await Promise.all([
    get('/api/v1/settings/digest'), get('/api/v1/digest'), get('/api/v1/settings/quarantine'), get('/api/v1/settings/spam'),
    get('/api/v1/spam/symbols'),
  ]);
  show(h('h1', {}, 'Settings'),
    h('p', { class: 'muted' }, 'These settings are cluster-wide: a change on any node reaches every node.'),
    h('section', { id: 'digest' }, h('h2', {}, 'Quarantine digests'), digestForm(digest), digestStatus(status)),
    h('section', { id: 'quarantine-settings' }, h('h2', {}, 'Quarantine copies'), quarantineForm(quarantine)),
    h('section', { id: 'spam-settings' }, h('h2', {}, 'Spam thresholds'), spamForm(spam)),
    h('section', { id: 'spam-weights-settings' }, h('h2', {}, 'Symbol weights'),
      h('p', { class: 'muted' }, 'A message\'s spam score is the sum of the weights of the symbols that fired. '
        + 'An empty new weight is the default; each weight lies between -100 and 100. README, "Spam score".'),
      weightsForm(symbols, spam)));
}

/** A whole number from a number input, or an error at that field. */
function wholeNumber(el, field) {
  const n = numberOrNull(el, field);
  if (n === null || !Number.isInteger(n)) throw new ApiError(400, `${field}: a whole number is needed`, field);
  return n;
}

function digestForm(s) {
  const input = {
    enabled: h('input', { id: 'digest-enabled', type: 'checkbox', checked: s.enabled }),
    time: h('input', { id: 'digest-time', value: s.time, placeholder: '08:00' }),
    time_zone: h('input', { id: 'digest-time_zone', value: s.time_zone, placeholder: 'UTC or Europe/Paris' }),
    link_lifetime_hours: h('input', { id: 'digest-link_lifetime_hours', type: 'number', min: 1, value: s.link_lifetime_hours }),
    public_url: h('input', { id: 'digest-public_url', value: s.public_url, placeholder: 'the address recipients reach the console at', size: 40 }),
    sender: h('input', { id: 'digest-sender', value: s.sender, placeholder: 'quarantine@example.com', size: 40 }),
    items_max: h('input', { id: 'digest-items_max', type: 'number', min: 1, value: s.items_max }),
  };
  return fieldForm('digest', input, DIGEST_LABELS, 'Save digest settings', async () => {
    const stored = await call('PUT', '/api/v1/settings/digest', {
      enabled: input.enabled.checked,
      time: input.time.value.trim(),
      time_zone: input.time_zone.value.trim(),
      link_lifetime_hours: wholeNumber(input.link_lifetime_hours, 'link_lifetime_hours'),
      public_url: input.public_url.value.trim(),
      sender: input.sender.value.trim(),
      items_max: wholeNumber(input.items_max, 'items_max'),
    });
    flash(`digest settings saved: ${stored.enabled ? `daily at ${stored.time} ${stored.time_zone}` : 'not scheduled'}`);
    await refreshStatus();
  });
}

function digestStatus(status) {
  const out = h('p', { id: 'digest-run-status' });
  const run = h('button', {
    type: 'button', id: 'digest-run',
    onclick: async () => {
      out.className = '';
      try {
        const r = await call('POST', '/api/v1/digest/run');
        out.textContent = `Digests requested for the period ending ${when(r.period_ms)}: each recipient with new held mail gets one, from one node.`;
        out.className = 'ok';
        flash('digests requested');
        await refreshStatus();
      } catch (e) {
        out.textContent = e.message;
        out.className = 'error';
        flash(e.message, true);
      }
    },
  }, 'Send digests now');
  return h('div', {}, h('h3', {}, 'This node\'s digest status'), h('div', { id: 'digest-status' }, statusTable(status)),
    h('div', { class: 'actions' }, run), out);
}

function statusTable(s) {
  return table(['', ''], [
    ['node', s.node],
    ['link key generation', s.key_generation === null ? 'none yet (made at the first save)' : s.key_generation],
    ['current period', s.period_ms ? when(s.period_ms) : 'none'],
    ['period complete', s.complete ? 'yes' : 'no'],
    ['recipients this period', s.recipients],
    ['waiting', s.waiting || 'no'],
    ['digests queued by this node since it started', s.sent_total],
  ], { id: 'digest-status-table', class: 'kv' });
}

async function refreshStatus() {
  const box = document.getElementById('digest-status');
  if (!box) return;
  try {
    box.replaceChildren(statusTable(await get('/api/v1/digest')));
  } catch (e) {
    box.replaceChildren(h('p', { class: 'error' }, e.message));
  }
}

function quarantineForm(s) {
  const input = {
    copies: h('input', { id: 'quarantine-copies', type: 'number', min: 1, max: 4, value: s.copies }),
    sync_queue_copies: h('input', { id: 'quarantine-sync_queue_copies', type: 'checkbox', checked: s.sync_queue_copies }),
  };
  const labels = { copies: 'Copies (1 to 4)', sync_queue_copies: 'Wait for queue copies' };
  return h('div', {}, fieldForm('quarantine', input, labels, 'Save copies', async () => {
    const stored = await call('PUT', '/api/v1/settings/quarantine', {
      copies: wholeNumber(input.copies, 'copies'), sync_queue_copies: input.sync_queue_copies.checked,
    });
    flash(`quarantine copies: ${stored.copies}`);
  }), h('p', { class: 'muted' }, 'How many nodes hold each quarantined message and relay-queue entry, the owner included. '
    + 'README, "Quarantine copies, retire and forget".'));
}

function spamForm(s) {
  const threshold = (k) => h('input', { id: `spam-${k}`, type: 'number', step: 'any', value: s[k] === null ? '' : s[k], placeholder: 'off' });
  const input = {
    tag: threshold('tag'),
    quarantine: threshold('quarantine'),
    reject: threshold('reject'),
    subject_prefix: h('input', { id: 'spam-subject_prefix', value: s.subject_prefix || '', placeholder: '[SPAM]' }),
  };
  const labels = { tag: 'Tag at', quarantine: 'Quarantine at', reject: 'Reject at', subject_prefix: 'Subject prefix' };
  return h('div', {}, fieldForm('spam', input, labels, 'Save thresholds', async () => {
    const body = {
      tag: numberOrNull(input.tag, 'tag'), quarantine: numberOrNull(input.quarantine, 'quarantine'),
      reject: numberOrNull(input.reject, 'reject'),
      subject_prefix: input.subject_prefix.value === '' ? null : input.subject_prefix.value,
    };
    // The weights as stored now, not as this page loaded them: a weight saved since, here
    // or on another node, stays.
    const now = await get('/api/v1/settings/spam');
    const stored = await call('PUT', '/api/v1/settings/spam', { ...body, weights: now.weights || {} });
    flash(`spam thresholds saved: tag ${stored.tag ?? 'off'}, quarantine ${stored.quarantine ?? 'off'}, reject ${stored.reject ?? 'off'}`);
  }), h('p', { class: 'muted' }, 'An empty threshold turns that verdict off. README, "Spam score and settings".'));
}
