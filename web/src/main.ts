/**
 * The web IM client (docs/web-client.md): log in over HTTP (/im/contacts checks the
 * credentials and says who I am), then one MQTT connection per tab, which is one device
 * of the user (`{uid}/{device}`). Messages are the IM payload of the SDK (src/im), files
 * go through /files with progress, media load through the service worker (media-auth.ts).
 */
import { decodeImPayload, ImMedia, ImPayloadError, type ImContentItem } from '../../src/im/index.js';
import { authorizationOf, fetchConfig, fetchContacts, HttpStatusError, uploadFile, downloadBlob, type Credentials, type WebClientConfig } from './api.js';
import { mqttUrl, openConnection, type Connection } from './connection.js';
import { historyKey, parseHistory, serializeHistory } from './history.js';
import { newDeviceName, tokenHints } from './login-values.js';
import { forgetMedia, setMediaSource, startMediaAuth } from './media-auth.js';
import { fileKind, formatSize } from './media.js';
import { newMessageId, outgoing } from './outgoing.js';
import { parsePresence, presenceFilter } from './presence.js';
import { initialState, reduce, type Action, type ConvId, type Me, type State } from './state.js';
import { makeThumbnail, needsThumbnail } from './thumbnail.js';
import { h } from './view/dom.js';
import { loginView, type LoginInput } from './view/login.js';
import { lightbox, Shell } from './view/shell.js';

const LOGIN_KEY = 'switchboard:login';
const DEVICE_KEY = 'switchboard:device';

interface SavedLogin {
  creds: Credentials;
  username: string;
  device: string;
}

interface Session {
  authorization: string;
  clientId: string;
  conn: Connection;
  shell: Shell;
}

const root = document.getElementById('app')!;
let config: WebClientConfig;
let mediaReady: Promise<boolean>;
let state: State | null = null;
let session: Session | null = null;
let renderQueued = false;
let saveTimer: ReturnType<typeof setTimeout> | undefined;

const authorization = (): string | null => session?.authorization ?? null;

function dispatch(a: Action): void {
  if (!state) return;
  state = reduce(state, a);
  if (!renderQueued) {
    renderQueued = true;
    queueMicrotask(() => {
      renderQueued = false;
      if (state && session) session.shell.render(state);
    });
  }
  if (a.type !== 'presence' && a.type !== 'connection' && a.type !== 'uploadProgress') saveSoon();
}

function saveSoon(): void {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = undefined;
    if (!state || !session) return;
    try {
      localStorage.setItem(historyKey(session.clientId), serializeHistory(state));
    } catch {
      // Storage full or disabled: history then lives as long as the page.
    }
  }, 400);
}

function readJson<T>(storage: Storage, key: string): T | null {
  try {
    return JSON.parse(storage.getItem(key) ?? 'null') as T | null;
  } catch {
    return null;
  }
}

async function boot(): Promise<void> {
  try {
    config = await fetchConfig();
  } catch (err) {
    root.replaceChildren(h('p', { class: 'fatal' }, `The broker could not be reached: ${(err as Error).message}`));
    return;
  }
  mediaReady = startMediaAuth(authorization);
  document.addEventListener('visibilitychange', () => dispatch({ type: 'visible', visible: document.visibilityState === 'visible' }));
  const saved = readJson<SavedLogin>(sessionStorage, LOGIN_KEY);
  if (saved && (await logIn(saved)) === null) return;
  showLogin(saved?.username ?? '');
}

function showLogin(username: string): void {
  document.title = 'Switchboard';
  const device = sessionStorage.getItem(DEVICE_KEY) ?? newDeviceName();
  root.replaceChildren(loginView(config, { username, device }, logIn));
}

/** Resolves with an error to show, or null once logged in. */
async function logIn(input: LoginInput): Promise<string | null> {
  const auth = authorizationOf(input.creds);
  let contacts;
  try {
    contacts = await fetchContacts(auth);
  } catch (err) {
    if (err instanceof HttpStatusError && err.status === 401) {
      return input.creds.mode === 'token' ? 'The broker did not accept this token.' : 'Wrong user name or password.';
    }
    return `The broker could not be reached: ${(err as Error).message}`;
  }
  const hints = input.creds.mode === 'token' && !contacts.directory ? tokenHints(input.creds.token) : {};
  const me: Me = { uid: contacts.uid, ns: hints.ns ?? contacts.ns, groups: hints.groups ?? contacts.groups };
  await mediaReady;
  const clientId = `${me.uid}/${input.device}`;
  sessionStorage.setItem(LOGIN_KEY, JSON.stringify(input));
  sessionStorage.setItem(DEVICE_KEY, input.device);

  state = initialState(me, contacts.contacts.map((c) => c.uid));
  state = reduce(state, { type: 'restore', conversations: parseHistory(localStorage.getItem(historyKey(clientId))) });
  state = reduce(state, { type: 'visible', visible: document.visibilityState === 'visible' });
  const creds = input.creds;
  const conn = openConnection({
    url: mqttUrl(location, config.mqttPath),
    clientId,
    // A token goes as the password; MQTT.js sends no password without a username, and the
    // broker accepts the token's subject as one (the uid /im/contacts answered).
    ...(creds.mode === 'password' ? { username: creds.username, ...(creds.password !== '' ? { password: creds.password } : {}) } : { username: me.uid, password: creds.token }),
    subscriptions: [presenceFilter(me.ns)],
    onMessage: (topic, payload) => onMessage(me, topic, payload),
    onStatus: (status) => dispatch({ type: 'connection', status }),
  });
  const shell = new Shell(state, shellContext);
  session = { authorization: auth, clientId, conn, shell };
  root.replaceChildren(shell.el);
  return null;
}

function onMessage(me: Me, topic: string, payload: Uint8Array): void {
  const presence = parsePresence(me.ns, topic, payload);
  if (presence) {
    dispatch({ type: 'presence', ...presence });
    return;
  }
  try {
    dispatch({ type: 'incoming', topic, msg: decodeImPayload(payload) });
  } catch (err) {
    // The broker checks IM payloads, so this is another topic or a broker without the IM layer.
    if (err instanceof ImPayloadError) console.warn(`not an IM message on ${topic}: ${err.message}`);
    else throw err;
  }
}

function send(conv: ConvId, items: ImContentItem[], media: number, id = newMessageId()): void {
  if (!state || !session) return;
  const out = outgoing(state.me, conv, items, media, id, Date.now());
  dispatch({ type: 'send', message: out.chat });
  session.conn.publish(out.topic, out.payload).then(
    () => dispatch({ type: 'ack', conv, id }),
    (err: unknown) => dispatch({ type: 'ack', conv, id, error: reasonText(err) }),
  );
}

function reasonText(err: unknown): string {
  const code = (err as { code?: number }).code;
  if (code === 0x87) return 'not authorized';
  if (code === 0x99) return 'refused as malformed';
  return (err as Error).message ?? String(err);
}

async function sendFile(conv: ConvId, file: File): Promise<void> {
  const s = session;
  if (!s) return;
  const id = newMessageId();
  if (file.size > config.files.maxBytes) {
    dispatch({ type: 'uploadStart', upload: { id, conv, name: file.name, size: file.size, loaded: 0 } });
    dispatch({ type: 'uploadEnd', id, error: `larger than this broker accepts (${formatSize(config.files.maxBytes)})` });
    return;
  }
  dispatch({ type: 'uploadStart', upload: { id, conv, name: file.name, size: file.size, loaded: 0 } });
  try {
    const type = file.type || 'application/octet-stream';
    const up = await uploadFile(file, file.name, s.authorization, (loaded) => dispatch({ type: 'uploadProgress', id, loaded })).done;
    const item: ImContentItem = { ty: 0, co: up.url, fn: { name: up.name, size: String(up.size) } };
    if (needsThumbnail(type, file.size)) {
      const thumb = await makeThumbnail(file);
      if (thumb) item['th'] = (await uploadFile(thumb, `${up.name}.thumb.jpg`, s.authorization, () => {}).done).url;
    }
    const kind = fileKind(up.type || type);
    item.ty = kind.ty;
    dispatch({ type: 'uploadEnd', id });
    send(conv, [item], kind.media, id);
  } catch (err) {
    dispatch({ type: 'uploadEnd', id, error: (err as Error).message });
  }
}

const shellContext = {
  open: (conv: ConvId | null) => dispatch({ type: 'open', conv }),
  sendText: (conv: ConvId, text: string) => send(conv, [{ ty: 0, co: text }], ImMedia.TEXT),
  sendFiles: (conv: ConvId, files: File[]) => {
    // One message per file (a payload carries one medium), sent in the order picked.
    void files.reduce((p, f) => p.then(() => sendFile(conv, f)), Promise.resolve());
  },
  dismissUpload: (id: string) => dispatch({ type: 'uploadDismiss', id }),
  logout: () => void logOut(),
  setMediaSource: (el: HTMLImageElement | HTMLMediaElement, path: string) => setMediaSource(el, path, authorization),
  download: (path: string, name: string) => {
    const auth = authorization();
    if (auth === null) return;
    void downloadBlob(path, auth).then((blob) => {
      const url = URL.createObjectURL(blob);
      const a = h('a', { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    });
  },
  showImage: (path: string, alt: string) => {
    const img = h('img', { alt });
    setMediaSource(img, path, authorization);
    document.body.append(lightbox(img));
  },
};

/** Logging out ends this device's session at the broker and forgets its history here. */
async function logOut(): Promise<void> {
  const s = session;
  if (!s) return;
  session = null;
  const username = state?.me.uid ?? '';
  state = null;
  clearTimeout(saveTimer);
  saveTimer = undefined;
  sessionStorage.removeItem(LOGIN_KEY);
  localStorage.removeItem(historyKey(s.clientId));
  forgetMedia();
  await s.conn.end(true);
  showLogin(username);
}

void boot();
