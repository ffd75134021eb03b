// Naming and metadata rules for stored files: ids, client-supplied names and media
// types, the sidecar, and the headers derived from them.
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FileMeta } from './types.js';

/** 16 random bytes: ids double as capabilities in links, so they must be unguessable. */
export function newFileId(): string {
  return randomBytes(16).toString('base64url');
}

const ID_RE = /^[A-Za-z0-9_-]{22}$/;

/** Anything else never reaches the file system, so no id can name a path outside `dir`. */
export function isFileId(s: string): boolean {
  return ID_RE.test(s);
}

const MAX_NAME_BYTES = 255;
// C0 controls, DEL and C1 controls: they corrupt logs and headers and no real file name needs them.
const CONTROL_RE = /[\u0000-\u001f\u007f-\u009f]/;
const LONE_SURROGATE_RE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * The display name kept for a file, or null when unacceptable. Only the last path
 * segment is kept (clients may send what a file picker gave them, with either separator);
 * the name is only ever shown and put in headers, never used as a path on the server.
 */
export function cleanFileName(raw: string | null): string | null {
  if (raw === null) return null;
  const base = raw.slice(Math.max(raw.lastIndexOf('/'), raw.lastIndexOf('\\')) + 1);
  if (base === '' || base === '.' || base === '..') return null;
  if (CONTROL_RE.test(base) || Buffer.byteLength(base, 'utf8') > MAX_NAME_BYTES) return null;
  // Lone surrogates cannot be encoded to UTF-8 and would turn into U+FFFD on the way out.
  if (LONE_SURROGATE_RE.test(base)) return null;
  return base;
}

const BY_EXTENSION: Record<string, string> = {
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
  heic: 'image/heic',
  svg: 'image/svg+xml',
  bmp: 'image/bmp',
  mp3: 'audio/mpeg',
  m4a: 'audio/mp4',
  aac: 'audio/aac',
  ogg: 'audio/ogg',
  oga: 'audio/ogg',
  opus: 'audio/opus',
  wav: 'audio/wav',
  amr: 'audio/amr',
  mp4: 'video/mp4',
  m4v: 'video/mp4',
  mov: 'video/quicktime',
  webm: 'video/webm',
  pdf: 'application/pdf',
  zip: 'application/zip',
  json: 'application/json',
  txt: 'text/plain; charset=utf-8',
  csv: 'text/csv; charset=utf-8',
};

export const DEFAULT_TYPE = 'application/octet-stream';

export function typeFromName(name: string): string {
  const dot = name.lastIndexOf('.');
  if (dot < 0) return DEFAULT_TYPE;
  return BY_EXTENSION[name.slice(dot + 1).toLowerCase()] ?? DEFAULT_TYPE;
}

// type "/" subtype (RFC 9110 tokens), then optional parameters; bounded so the stored
// value stays a sane header.
const MEDIA_TYPE_RE = /^[A-Za-z0-9!#$&^_.+-]{1,64}\/[A-Za-z0-9!#$&^_.+-]{1,127}(\s*;[\x20-\x7e]*)?$/;

/**
 * The stored media type for an upload: the Content-Type header, else a guess from the
 * name. 'invalid' for a malformed header, 'multipart' for form uploads, which would
 * store the MIME envelope instead of the file.
 */
export function uploadType(header: string, name: string): string | 'invalid' | 'multipart' {
  const h = header.trim();
  const essence = h.split(';', 1)[0]!.trim().toLowerCase();
  // curl --data-binary and HTML forms label raw bytes as form data; that is never the
  // file's real type, so fall back to the name as if no type had been sent.
  if (h === '' || essence === 'application/x-www-form-urlencoded') return typeFromName(name);
  if (essence.startsWith('multipart/')) return 'multipart';
  if (h.length > 200 || !MEDIA_TYPE_RE.test(h)) return 'invalid';
  return h;
}

/** `inline` with an ASCII fallback name and the exact UTF-8 name (RFC 6266 / 8187). */
export function contentDisposition(name: string): string {
  const fallback = name.replace(/[^\x20-\x7e]|["\\%]/g, '_');
  const exact = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `inline; filename="${fallback}"; filename*=UTF-8''${exact}`;
}

export function dataPath(dir: string, id: string): string {
  return join(dir, id);
}

export function partPath(dir: string, id: string): string {
  return join(dir, `${id}.part`);
}

export function metaPath(dir: string, id: string): string {
  return join(dir, `${id}.json`);
}

/** The sidecar, or null when missing or unreadable (both mean "no such file" to clients). */
export async function readMeta(dir: string, id: string): Promise<FileMeta | null> {
  let text: string;
  try {
    text = await readFile(metaPath(dir, id), 'utf8');
  } catch {
    return null;
  }
  try {
    const m = JSON.parse(text) as Partial<FileMeta>;
    if (typeof m.name !== 'string' || typeof m.type !== 'string') return null;
    return m as FileMeta;
  } catch {
    return null;
  }
}

const HOST_RE = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/** Base for returned links; a Host header that is not a plain host[:port] is not echoed back. */
export function baseUrl(publicUrl: string | null, host: string): string {
  if (publicUrl !== null) return publicUrl.replace(/\/+$/, '');
  return `http://${HOST_RE.test(host) ? host : 'localhost'}`;
}
