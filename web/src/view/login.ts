/** The login form: user name and password (users file), or a token (JWT); and this tab's device name. */
import type { Credentials, WebClientConfig } from '../api.js';
import { deviceProblem, userNameProblem } from '../login-values.js';
import { h } from './dom.js';

export interface LoginInput {
  creds: Credentials;
  /** The user name typed (password logins); the uid comes from the broker. */
  username: string;
  device: string;
}

/** `submit` resolves with an error to show, or null once logged in. */
export function loginView(config: WebClientConfig, defaults: { username: string; device: string }, submit: (v: LoginInput) => Promise<string | null>): HTMLElement {
  const username = h('input', { name: 'username', autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false', value: defaults.username, required: true });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', placeholder: config.openLogin ? 'not needed on this broker' : '' });
  const token = h('textarea', { name: 'token', rows: 3, spellcheck: 'false', placeholder: 'eyJhbGciOi...' });
  const device = h('input', { name: 'device', autocapitalize: 'none', spellcheck: 'false', value: defaults.device, required: true });
  const useToken = h('input', { type: 'checkbox', name: 'useToken' });
  const error = h('p', { class: 'error', role: 'alert' });
  const button = h('button', { type: 'submit' }, 'Log in');
  const passwordRow = h('label', {}, 'Password', password);
  const userRow = h('label', {}, 'User name', username);
  const tokenRow = h('label', { class: 'token', hidden: true }, 'Token (JWT)', token);
  useToken.addEventListener('change', () => {
    tokenRow.hidden = !useToken.checked;
    userRow.hidden = passwordRow.hidden = useToken.checked;
    username.required = !useToken.checked;
  });

  const form = h(
    'form',
    { class: 'login', novalidate: true },
    h('h1', {}, 'Switchboard'),
    h('p', { class: 'lead' }, 'Instant messages over MQTT'),
    userRow,
    passwordRow,
    config.jwt ? h('label', { class: 'check' }, useToken, 'Log in with a token instead') : null,
    tokenRow,
    h('label', {}, 'This device', device, h('small', {}, 'Each tab or browser you use is one device; your messages reach all of them.')),
    button,
    error,
    config.openLogin
      ? h('p', { class: 'hint' }, 'This broker has no users file: any user name works, without a password. Open a second browser and log in as someone else to chat.')
      : null,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const tokenMode = useToken.checked;
    const name = username.value.trim();
    const problem = (tokenMode ? (token.value.trim() === '' ? 'Paste a token.' : null) : userNameProblem(name)) ?? deviceProblem(device.value.trim());
    if (problem !== null) {
      error.textContent = problem;
      return;
    }
    const creds: Credentials = tokenMode ? { mode: 'token', token: token.value.trim() } : { mode: 'password', username: name, password: password.value };
    button.disabled = true;
    error.textContent = '';
    button.textContent = 'Logging in…';
    void submit({ creds, username: name, device: device.value.trim() }).then((err) => {
      if (err === null) return;
      button.disabled = false;
      button.textContent = 'Log in';
      error.textContent = err;
    });
  });
  return h('main', { class: 'login-page' }, form);
}
