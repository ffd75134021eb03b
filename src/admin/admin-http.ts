/**
 * The admin API's HTTP side, on every gateway's uWS app: token check, JSON body, then
 * the request travels to the coordinator (which owns the state) and the answer back.
 * Routing and validation of the API itself live in src/coordinator/admin-api.ts.
 */
import { timingSafeEqual } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import { HttpError, readBody, sendJson, type ResponseState } from '../transport/http-util.js';
import type { RouteHandler } from '../transport/cors.js';

export const ADMIN_PREFIX = '/api/v1/';
const MAX_BODY = 1024 * 1024;

export type AdminForward = (
  req: { method: string; path: string; query: Record<string, string>; body: unknown },
  reply: (status: number, body: unknown) => void,
) => void;

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  // Constant time over the token's length, so the comparison leaks nothing but the length.
  return a.length === b.length && timingSafeEqual(a, b);
}

function parseQuery(q: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of new URLSearchParams(q)) out[k] = v;
  return out;
}

export function registerAdminRoutes(
  app: uWS.TemplatedApp,
  token: string | null,
  forward: AdminForward,
  count: (series: string) => void,
  wrap: (h: RouteHandler) => RouteHandler = (h) => h,
): void {
  app.any(`${ADMIN_PREFIX}*`, wrap((res, req) => {
    const state: ResponseState = { aborted: false };
    const method = req.getMethod().toUpperCase();
    // Raw path: client ids may contain '/', which clients percent-encode in one segment.
    const path = req.getUrl().slice(ADMIN_PREFIX.length - 1);
    const query = parseQuery(req.getQuery() ?? '');
    const auth = req.getHeader('authorization');
    const fail = (status: number, error: string): void => {
      count(`admin_requests_total{status="${status}"}`);
      sendJson(res, state, status, { error }, status === 401 ? { 'WWW-Authenticate': 'Bearer realm="switchboard-admin"' } : undefined);
    };
    if (token === null) {
      res.onAborted(() => (state.aborted = true));
      return fail(404, 'admin API disabled: set admin.token');
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (!m || !sameToken(m[1]!, token)) {
      res.onAborted(() => (state.aborted = true));
      return fail(401, 'missing or wrong admin token (Authorization: Bearer ...)');
    }
    const hasBody = method === 'POST' || method === 'PUT' || method === 'PATCH';
    const contentType = req.getHeader('content-type');
    const body: Promise<unknown> = hasBody
      ? readBody(res, req, MAX_BODY, state).then((buf) => {
          if (buf.length === 0) return undefined;
          if (contentType !== '' && !/^application\/json\b/i.test(contentType)) throw new HttpError(415, 'request body must be application/json');
          try {
            return JSON.parse(buf.toString('utf8')) as unknown;
          } catch (err) {
            throw new HttpError(400, `request body is not valid JSON: ${(err as Error).message}`);
          }
        })
      : (res.onAborted(() => (state.aborted = true)), Promise.resolve(undefined));
    body.then(
      (json) =>
        forward({ method, path, query, body: json }, (status, out) => {
          count(`admin_requests_total{status="${status}"}`);
          sendJson(res, state, status, out);
        }),
      (err: unknown) => fail(err instanceof HttpError ? err.status : 500, (err as Error).message),
    );
  }));
}
