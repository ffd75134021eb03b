/**
 * Credentials for <img>, <audio> and <video>: stored files need them, and tags cannot send
 * headers. A service worker (sw.ts) asks this page for its Authorization header whenever
 * a media element requests `/files/...` and adds it, passing Range headers through, so
 * players stream and seek with the broker's Range support.
 *
 * Service workers exist only in secure contexts (https, or http on localhost/127.0.0.1).
 * Elsewhere media are fetched whole with the header and shown from blob: URLs.
 */
import { downloadBlob } from './api.js';
import { ASK_AUTHORIZATION, type AuthorizationAnswer } from './sw-protocol.js';

let controlled = false;

/**
 * Registers the worker and answers its questions with `authorization()` (null = logged
 * out). Resolves true once the worker controls the page, false when it cannot (no
 * service workers, registration failed, or not in control within `timeoutMs`).
 */
export async function startMediaAuth(authorization: () => string | null, timeoutMs = 4000): Promise<boolean> {
  if (!('serviceWorker' in navigator)) return false;
  const sw = navigator.serviceWorker;
  sw.addEventListener('message', (e: MessageEvent) => {
    const data = e.data as { type?: string } | null;
    if (data?.type !== ASK_AUTHORIZATION || !e.ports[0]) return;
    const answer: AuthorizationAnswer = { authorization: authorization() };
    e.ports[0].postMessage(answer);
  });
  // Messages from the worker wait in a queue until this (or an onmessage handler).
  sw.startMessages();
  try {
    await sw.register('/sw.js', { scope: '/' });
  } catch {
    return false;
  }
  if (!sw.controller) {
    // First visit: the worker claims the page once it is active (sw.ts, activate).
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, timeoutMs);
      sw.addEventListener('controllerchange', () => (clearTimeout(t), resolve()), { once: true });
    });
  }
  controlled = sw.controller !== null;
  return controlled;
}

const blobs = new Map<string, Promise<string>>();

/** Sets a media element's source: the path itself through the worker, else a blob: URL. */
export function setMediaSource(el: HTMLImageElement | HTMLMediaElement, path: string, authorization: () => string | null): void {
  if (controlled) {
    el.src = path;
    return;
  }
  const auth = authorization();
  if (auth === null) return;
  let url = blobs.get(path);
  if (!url) {
    url = downloadBlob(path, auth).then((b) => URL.createObjectURL(b));
    blobs.set(path, url);
    url.catch(() => blobs.delete(path));
  }
  url.then(
    (u) => (el.src = u),
    () => el.classList.add('broken'),
  );
}

/** Logging out: blob: copies of another user's media must not outlive the session. */
export function forgetMedia(): void {
  for (const p of blobs.values()) p.then((u) => URL.revokeObjectURL(u), () => {});
  blobs.clear();
}
