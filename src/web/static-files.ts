/**
 * Serves files of the built web client (dist/web) over uWS: content type by extension,
 * validators (ETag) and caching headers, and the page's security headers.
 *
 * Decisions:
 * - Files are read from disk per request (no in-memory copy): a rebuild (`npm run build`)
 *   is served at once without a restart, and browsers re-download little anyway, since
 *   hashed assets are immutable and the rest revalidates with an ETag.
 * - Only names the caller has checked reach this module (routes.ts: fixed names, or one
 *   path segment of a strict alphabet), so no request can name a path outside the bundle.
 * - Unknown extensions are served as application/octet-stream with nosniff rather than
 *   guessed: a bundle file must never run as something its name does not say.
 */
import { readFile, stat } from 'node:fs/promises';
import { extname } from 'node:path';
import type uWS from 'uWebSockets.js';
import { statusLine } from '../transport/http-util.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export function contentTypeOf(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * How long a browser may keep a file: `immutable` for content-hashed assets (a new build
 * has new names), `revalidate` for fixed names (the page, the service worker), which are
 * checked against their ETag on every use.
 */
export type CachePolicy = 'immutable' | 'revalidate';

const CACHE_CONTROL: Record<CachePolicy, string> = {
  immutable: 'public, max-age=31536000, immutable',
  revalidate: 'no-cache',
};

/**
 * The page may load its own scripts, styles and workers only; media come from the broker
 * (`/files`, authenticated through the service worker) or from blob: URLs made by the app;
 * MQTT may go to any ws:/wss: endpoint (the WSS port is another origin than HTTPS's).
 */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob: data:",
  "media-src 'self' blob:",
  "connect-src 'self' ws: wss:",
  // MQTT.js runs its keepalive timers in a blob: worker (background tabs throttle page timers).
  "worker-src 'self' blob:",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export interface ServeOptions {
  cache: CachePolicy;
  /** Extra headers (e.g. the page's CSP). */
  headers?: Record<string, string>;
  /** Answer when the file does not exist (default: 404 "not found"). */
  missing?: { status: number; text: string };
  head?: boolean;
}

/** A weak validator from size and modification time: cheap, and changes with every rebuild. */
function etagOf(size: number, mtimeMs: number): string {
  return `W/"${size.toString(16)}-${Math.floor(mtimeMs).toString(16)}"`;
}

/** Call synchronously from the uWS handler: it reads the request's headers before any await. */
export function serveFile(res: uWS.HttpResponse, req: uWS.HttpRequest, file: string, o: ServeOptions): void {
  const ifNoneMatch = req.getHeader('if-none-match');
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const text = (status: number, body: string): void => {
    if (aborted) return;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('Content-Type', 'text/plain; charset=utf-8').writeHeader('Cache-Control', 'no-store');
      res.writeHeader('X-Content-Type-Options', 'nosniff').end(body);
    });
  };
  const load = async (): Promise<{ body: Buffer | null; etag: string } | null> => {
    let st;
    try {
      st = await stat(file);
    } catch {
      return null;
    }
    if (!st.isFile()) return null;
    const etag = etagOf(st.size, st.mtimeMs);
    // Not modified: no need to read the file at all.
    if (ifNoneMatch !== '' && ifNoneMatch.split(',').some((t) => t.trim() === etag)) return { body: null, etag };
    return { body: await readFile(file), etag };
  };
  load().then(
    (found) => {
      if (aborted) return;
      if (found === null) {
        const m = o.missing ?? { status: 404, text: 'not found\n' };
        return text(m.status, m.text);
      }
      res.cork(() => {
        // statusLine has no text for 304; a status line needs one (RFC 9112 4).
        res.writeStatus(found.body === null ? '304 Not Modified' : statusLine(200));
        res.writeHeader('Content-Type', contentTypeOf(file));
        res.writeHeader('Cache-Control', CACHE_CONTROL[o.cache]);
        res.writeHeader('ETag', found.etag);
        res.writeHeader('X-Content-Type-Options', 'nosniff');
        for (const [k, v] of Object.entries(o.headers ?? {})) res.writeHeader(k, v);
        if (found.body === null) res.endWithoutBody();
        else if (o.head) res.endWithoutBody(found.body.length);
        else res.end(found.body);
      });
    },
    (err: unknown) => text(500, `could not read ${extname(file) || 'the file'}: ${(err as Error).message}\n`),
  );
}
