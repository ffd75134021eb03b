/** The broker's HTTP endpoints the client uses: /web/config, /im/contacts, /files (upload with progress, download). */
import type { Contacts } from '../../src/im/contacts.js';
import type { WebClientConfig } from '../../src/web/routes.js';

export type { Contacts, WebClientConfig };

export type Credentials =
  | { mode: 'password'; username: string; password: string }
  | { mode: 'token'; token: string };

/** The HTTP Authorization header for these credentials (Basic is UTF-8, as the broker reads it). */
export function authorizationOf(c: Credentials): string {
  if (c.mode === 'token') return `Bearer ${c.token.trim()}`;
  let bin = '';
  for (const b of new TextEncoder().encode(`${c.username}:${c.password}`)) bin += String.fromCharCode(b);
  return `Basic ${btoa(bin)}`;
}

export class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpStatusError';
  }
}

async function json<T>(res: Response): Promise<T> {
  if (res.ok) return (await res.json()) as T;
  let why = res.statusText;
  try {
    why = ((await res.json()) as { error?: string }).error ?? why;
  } catch {
    // not JSON: keep the status text
  }
  throw new HttpStatusError(res.status, why);
}

export async function fetchConfig(): Promise<WebClientConfig> {
  return json<WebClientConfig>(await fetch('/web/config', { cache: 'no-store' }));
}

/** Who I am (uid, namespace, groups) and who else is in the directory; 401 = wrong credentials. */
export async function fetchContacts(authorization: string): Promise<Contacts> {
  return json<Contacts>(await fetch('/im/contacts', { headers: { authorization }, cache: 'no-store' }));
}

export interface Uploaded {
  id: string;
  url: string;
  name: string;
  size: number;
  type: string;
}

/**
 * POST /files with the raw file as the body. XMLHttpRequest rather than fetch: only it
 * reports upload progress.
 */
export function uploadFile(
  body: Blob,
  name: string,
  authorization: string,
  onProgress: (loaded: number, total: number) => void,
): { done: Promise<Uploaded>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<Uploaded>((resolve, reject) => {
    xhr.open('POST', `/files?name=${encodeURIComponent(name)}`);
    xhr.setRequestHeader('authorization', authorization);
    // The broker stores this type and serves the file with it.
    xhr.setRequestHeader('content-type', body.type || 'application/octet-stream');
    xhr.responseType = 'json';
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.lengthComputable ? e.total : body.size);
    xhr.onload = () => {
      const r = xhr.response as (Uploaded & { error?: string }) | null;
      if (xhr.status === 201 && r && typeof r.url === 'string') resolve(r);
      else reject(new HttpStatusError(xhr.status, r?.error ?? `upload failed (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new HttpStatusError(0, 'upload failed: the broker could not be reached'));
    xhr.onabort = () => reject(new HttpStatusError(0, 'upload cancelled'));
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}

/** A stored file as a Blob (downloads, and media when no service worker can add credentials). */
export async function downloadBlob(path: string, authorization: string): Promise<Blob> {
  const res = await fetch(path, { headers: { authorization } });
  if (!res.ok) throw new HttpStatusError(res.status, `download failed (HTTP ${res.status})`);
  return res.blob();
}
