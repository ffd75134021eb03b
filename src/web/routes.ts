/**
 * The web IM client on the WebSocket/HTTP port (docs/web-client.md): the page at `/`, its
 * service worker at `/sw.js` (it must sit at the root to see `/files/...` requests), the
 * content-hashed bundle under `/assets/`, and `/web/config`, what the page needs to know
 * about this broker before anyone logs in.
 */
import { join } from 'node:path';
import type uWS from 'uWebSockets.js';
import type { Config } from '../config/schema.js';
import { sendJson } from '../transport/http-util.js';
import { PAGE_CSP, serveFile, type ServeOptions } from './static-files.js';

/** What GET /web/config answers (web/src/api.ts reads it). */
export interface WebClientConfig {
  /** WebSocket paths of MQTT: `ws` for a page loaded over http:, `wss` over https:. */
  mqttPath: { ws: string; wss: string };
  /** Any user name logs in without a password (no users file, anonymous logins allowed): the page says so. */
  openLogin: boolean;
  /** JWT logins are configured: the page offers a token field. */
  jwt: boolean;
  /** File upload is on, and its size limit. */
  files: { enabled: boolean; maxBytes: number };
}

export function webClientConfig(config: Config): WebClientConfig {
  const { auth, im, listeners } = config;
  return {
    mqttPath: { ws: listeners.ws.path, wss: listeners.wss.path },
    openLogin: auth.allowAnonymous && auth.usersFile === null,
    jwt: auth.jwt.secret !== null || auth.jwt.publicKeyFile !== null || auth.jwt.jwksFile !== null,
    files: { enabled: im.enabled && im.files.enabled, maxBytes: im.files.maxBytes },
  };
}

const NOT_BUILT =
  'The web client is not built.\n' +
  'Run `npm run build` in the Switchboard directory (it bundles web/ into dist/web; `npm start` does it too), then reload this page.\n';

/** One path segment of the bundle's alphabet: no separator, no leading dot, so never `..`. */
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/** The page: no framing, no referrer to the media links, the CSP of static-files.ts. */
const PAGE_HEADERS = {
  'Content-Security-Policy': PAGE_CSP,
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

export function registerWebRoutes(app: uWS.TemplatedApp, dir: string, client: WebClientConfig): void {
  const both = (pattern: string, handler: (res: uWS.HttpResponse, req: uWS.HttpRequest, head: boolean) => void): void => {
    app.get(pattern, (res, req) => handler(res, req, false));
    app.head(pattern, (res, req) => handler(res, req, true));
  };
  const page: Omit<ServeOptions, 'head'> = { cache: 'revalidate', headers: PAGE_HEADERS, missing: { status: 503, text: NOT_BUILT } };
  both('/', (res, req, head) => serveFile(res, req, join(dir, 'index.html'), { ...page, head }));
  both('/index.html', (res, req, head) => serveFile(res, req, join(dir, 'index.html'), { ...page, head }));
  both('/sw.js', (res, req, head) => serveFile(res, req, join(dir, 'sw.js'), { cache: 'revalidate', head }));
  both('/manifest.webmanifest', (res, req, head) => serveFile(res, req, join(dir, 'manifest.webmanifest'), { cache: 'revalidate', head }));
  both('/assets/:file', (res, req, head) => {
    const name = req.getParameter(0) ?? '';
    if (!ASSET_NAME.test(name)) {
      res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n');
      return;
    }
    serveFile(res, req, join(dir, 'assets', name), { cache: 'immutable', head });
  });
  app.get('/web/config', (res) => sendJson(res, { aborted: false }, 200, client));
}
