/**
 * The web client's service worker: adds the logged-in user's Authorization header to the
 * requests media elements make for stored files (`/files/{id}/{name}`), which cannot carry
 * headers themselves, and passes their Range header on, so <audio> and <video> stream and
 * seek with the broker's 206 answers. Nothing else is touched, and nothing is cached here.
 *
 * The worker keeps no credentials: for each request it asks the page that made it
 * (media-auth.ts answers), so a worker restarted by the browser, a logout, or two tabs
 * logged in as different users all just work.
 */
import { ASK_AUTHORIZATION, FILE_PATH, type AuthorizationAnswer } from './src/sw-protocol.js';

// The DOM library has no service worker types (and cannot be combined with WebWorker's):
// the little used here, declared.
interface SwClient {
  postMessage(message: unknown, transfer: Transferable[]): void;
}
interface FetchEvent extends Event {
  readonly request: Request;
  readonly clientId: string;
  respondWith(r: Promise<Response>): void;
}
interface ExtendableEvent extends Event {
  waitUntil(p: Promise<unknown>): void;
}
interface SwScope {
  readonly location: Location;
  readonly clients: { get(id: string): Promise<SwClient | undefined>; claim(): Promise<void> };
  skipWaiting(): Promise<void>;
  addEventListener(type: 'install' | 'activate', listener: (e: ExtendableEvent) => void): void;
  addEventListener(type: 'fetch', listener: (e: FetchEvent) => void): void;
}
const sw = self as unknown as SwScope;

/** How long a page may take to answer before the request goes out without credentials. */
const ASK_TIMEOUT_MS = 3000;

// A new version takes over at once: the worker holds no state worth waiting for.
sw.addEventListener('install', (e) => e.waitUntil(sw.skipWaiting()));
sw.addEventListener('activate', (e) => e.waitUntil(sw.clients.claim()));

sw.addEventListener('fetch', (e) => {
  const req = e.request;
  if (req.method !== 'GET' && req.method !== 'HEAD') return;
  if (req.headers.has('authorization') || e.clientId === '') return;
  const url = new URL(req.url);
  if (url.origin !== sw.location.origin || !FILE_PATH.test(url.pathname)) return;
  e.respondWith(withCredentials(req, e.clientId));
});

async function askPage(clientId: string): Promise<string | null> {
  const client = await sw.clients.get(clientId);
  if (!client) return null;
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    const timer = setTimeout(() => resolve(null), ASK_TIMEOUT_MS);
    channel.port1.onmessage = (m: MessageEvent) => {
      clearTimeout(timer);
      const a = m.data as AuthorizationAnswer | null;
      resolve(typeof a?.authorization === 'string' ? a.authorization : null);
    };
    client.postMessage({ type: ASK_AUTHORIZATION }, [channel.port2]);
  });
}

async function withCredentials(req: Request, clientId: string): Promise<Response> {
  const authorization = await askPage(clientId);
  if (authorization === null) return fetch(req);
  const headers = new Headers({ authorization });
  const range = req.headers.get('range');
  if (range !== null) headers.set('range', range);
  // A new same-origin request: the element's own (no-cors mode) may not carry Authorization.
  return fetch(req.url, { method: req.method, headers, mode: 'same-origin', credentials: 'omit', redirect: 'error', signal: req.signal });
}
