// The console's entry point: sign-in, sign-out and the page router (#/page/argument).

import { call, setCsrf, whenSignedOut } from './api.js';
import { h, show, flash, clearFlash, leavePage } from './dom.js';
import { overview } from './overview.js';
import { rules, ruleForm, history } from './rules.js';
import { quarantine, message } from './quarantine.js';
import { trace, queues } from './ops.js';
import { lists } from './lists.js';
import { settings } from './settings.js';

const PAGES = {
  overview: () => overview(),
  rules: () => rules(),
  rule: (id) => ruleForm(decodeURIComponent(id)),
  history: () => history(),
  quarantine: (query) => quarantine(query),
  message: (id) => message(decodeURIComponent(id)),
  trace: () => trace(),
  queue: () => queues(),
  lists: () => lists(),
  settings: () => settings(),
};

async function route() {
  leavePage();
  clearFlash();
  const [, name = 'overview', ...rest] = location.hash.split('/');
  const page = PAGES[name] || PAGES.overview;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.id === `nav-${name}`);
  try {
    // Each page decodes its own argument: the quarantine's is a query string, whose
    // encoded '&' and '=' must stay encoded until URLSearchParams reads it.
    await page(rest.join('/'));
  } catch (e) {
    flash(e.message, true);
  }
}

function signedIn(who) {
  setCsrf(who.csrf);
  document.getElementById('who').textContent = `signed in as ${who.admin}`;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  route();
}

function signInPage(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  document.getElementById('who').textContent = '';
  const token = h('input', { type: 'password', id: 'token', autocomplete: 'current-password', placeholder: 'admin token' });
  const err = h('p', { class: 'error', id: 'signin-error' }, message || '');
  const form = h('form', { class: 'signin', id: 'signin' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'Paste an admin token (one line of this node\'s tokens file).'),
    token, err,
    h('button', { class: 'primary', type: 'submit', id: 'signin-submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const who = await call('POST', '/ui/session', { token: token.value });
      token.value = '';
      signedIn(who);
    } catch (e) {
      err.textContent = e.message;
    }
  });
  show(form);
  token.focus();
}

async function signOut() {
  try {
    await call('DELETE', '/ui/session');
  } finally {
    setCsrf(null);
    signInPage('Signed out.');
  }
}

async function start() {
  whenSignedOut(() => signInPage('Your session ended; sign in again.'));
  document.getElementById('signout').addEventListener('click', signOut);
  window.addEventListener('hashchange', () => {
    if (!document.getElementById('nav').hidden) route();
  });
  const who = await call('GET', '/ui/session');
  if (who && who.admin) signedIn(who);
  else signInPage();
}

start().catch((e) => flash(e.message, true));
