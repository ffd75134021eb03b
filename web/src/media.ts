/**
 * Media types, sizes and file links: which content item and Type nibble a file becomes
 * (IM-PROTOCOL.md section 3), how its size reads, and which links are the broker's own
 * stored files (only those are loaded inline, with the user's credentials).
 */
import { ImItemType, ImMedia } from '../../src/im/index.js';
import { FILE_PATH } from './sw-protocol.js';

export interface FileKind {
  /** `ty` of the content item. */
  ty: number;
  /** Low nibble of the payload's Type byte. */
  media: number;
}

const WORD = new Set([
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
]);

/**
 * The item type and Type nibble for a file of this MIME type. The nibble has no value for
 * a generic file (6-15 are reserved), so such files say 0 there and are told apart by the
 * item's `ty` (5, file) and `fn`, which is what receivers read anyway.
 */
export function fileKind(mime: string): FileKind {
  const type = mime.split(';', 1)[0]!.trim().toLowerCase();
  if (type.startsWith('image/')) return { ty: ImItemType.IMAGE, media: ImMedia.IMAGE };
  if (type.startsWith('audio/')) return { ty: ImItemType.AUDIO, media: ImMedia.AUDIO };
  if (type.startsWith('video/')) return { ty: ImItemType.VIDEO, media: ImMedia.VIDEO };
  if (type === 'application/pdf') return { ty: ImItemType.DOCUMENT, media: ImMedia.PDF };
  if (WORD.has(type)) return { ty: ImItemType.DOCUMENT, media: ImMedia.WORD };
  return { ty: ImItemType.FILE, media: ImMedia.TEXT };
}

/** "512 B", "48.2 KB", "3.1 MB" (powers of 1024, as file managers show them). */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return '?';
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = bytes / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** The `size` of an item's `fn` (a string on the wire) as bytes, or NaN. */
export function sizeOf(fnSize: unknown): number {
  return typeof fnSize === 'string' && /^\d{1,15}$/.test(fnSize) ? Number(fnSize) : NaN;
}

/**
 * The path of a link to a file stored by a Switchboard broker (`.../files/{id}/{name}`),
 * or null. Links name the host the uploader used (or im.files.publicUrl), which need not
 * be this page's origin (localhost vs 127.0.0.1, http vs https behind a proxy); the path
 * is loaded from this page's broker, so the user's credentials never go elsewhere.
 */
export function brokerFilePath(link: string): string | null {
  let u: URL;
  try {
    u = new URL(link, 'http://placeholder.invalid');
  } catch {
    return null;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return null;
  return FILE_PATH.test(u.pathname) ? u.pathname : null;
}

/** A link that may be shown as a clickable external link (http/https only), or null. */
export function externalLink(link: string): string | null {
  try {
    const u = new URL(link);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : null;
  } catch {
    return null;
  }
}
