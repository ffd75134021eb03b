/**
 * CORS for the HTTP endpoints a browser app calls from another origin (file upload and
 * download, the admin API): answered preflights, and `Access-Control-Allow-Origin` on the
 * responses, for the configured origins only (`listeners.ws.corsOrigins`; none = no CORS
 * headers, browsers then allow same-origin use only).
 *
 * Every response of those endpoints starts with `res.writeStatus` (http-util.ts sendJson,
 * files/download.ts), so the wrapper adds its headers right after the status line.
 */
import type uWS from 'uWebSockets.js';

export type RouteHandler = (res: uWS.HttpResponse, req: uWS.HttpRequest) => void;

const ALLOW_METHODS = 'GET, HEAD, POST, PUT, DELETE';
const ALLOW_HEADERS = 'authorization, content-type, range';
// Scripts may read what a download and an upload answer tell them.
const EXPOSE_HEADERS = 'content-length, content-range, accept-ranges, content-disposition';

export interface Cors {
  /** Wraps a route handler: allowed origins get the CORS headers on the response. */
  wrap(handler: RouteHandler): RouteHandler;
  /** Answers preflight requests (OPTIONS) under these URL patterns. */
  preflight(app: uWS.TemplatedApp, patterns: string[]): void;
}

export function createCors(origins: readonly string[]): Cors {
  const any = origins.includes('*');
  const allowed = new Set(origins);
  const allow = (origin: string): boolean => origin !== '' && (any || allowed.has(origin));
  return {
    wrap(handler) {
      if (origins.length === 0) return handler;
      return (res, req) => {
        const origin = req.getHeader('origin');
        if (allow(origin)) {
          const writeStatus = res.writeStatus.bind(res);
          res.writeStatus = (status: string) => {
            writeStatus(status);
            res.writeHeader('Access-Control-Allow-Origin', origin);
            res.writeHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
            res.writeHeader('Vary', 'Origin');
            return res;
          };
        }
        handler(res, req);
      };
    },
    preflight(app, patterns) {
      if (origins.length === 0) return;
      for (const pattern of patterns) {
        app.options(pattern, (res, req) => {
          const origin = req.getHeader('origin');
          if (!allow(origin)) {
            res.writeStatus('403 Forbidden').writeHeader('Vary', 'Origin').end();
            return;
          }
          res
            .writeStatus('204 No Content')
            .writeHeader('Access-Control-Allow-Origin', origin)
            .writeHeader('Access-Control-Allow-Methods', ALLOW_METHODS)
            .writeHeader('Access-Control-Allow-Headers', ALLOW_HEADERS)
            .writeHeader('Access-Control-Max-Age', '600')
            .writeHeader('Vary', 'Origin')
            .end();
        });
      }
    },
  };
}
