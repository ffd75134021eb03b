/**
 * GET /im/contacts: the logged-in user's namespace, groups and contacts (contacts.ts), for
 * clients that have no admin token, such as the web client. Authenticated like `/files`
 * (Basic, Bearer, or `?access_token=` with a JWT).
 */
import type uWS from 'uWebSockets.js';
import { sendJson, type ResponseState } from '../transport/http-util.js';
import type { RouteHandler } from '../transport/cors.js';
import { contactsFor } from './contacts.js';
import type { HttpAuth } from './files/types.js';
import { WWW_AUTHENTICATE } from './files/upload.js';
import type { DirectoryEntry } from './presub.js';

/** The directory as the coordinator holds it now; rejects when it cannot be had. */
export type DirectorySource = () => Promise<DirectoryEntry[]>;

export function registerContactsRoute(
  app: uWS.TemplatedApp,
  defaultNamespace: string,
  auth: HttpAuth,
  directory: DirectorySource,
  log: { warn(obj: object, msg: string): void },
  wrap: (h: RouteHandler) => RouteHandler = (h) => h,
): void {
  app.get('/im/contacts', wrap((res, req) => {
    const state: ResponseState = { aborted: false };
    res.onAborted(() => (state.aborted = true));
    const authorization = req.getHeader('authorization') || undefined;
    const accessToken = new URLSearchParams(req.getQuery() ?? '').get('access_token') ?? undefined;
    const answer = async (): Promise<void> => {
      const who = await auth(authorization, accessToken);
      if (who === null) {
        sendJson(res, state, 401, { error: 'authentication required' }, { 'WWW-Authenticate': WWW_AUTHENTICATE });
        return;
      }
      sendJson(res, state, 200, contactsFor(who.uid, await directory(), defaultNamespace));
    };
    answer().catch((err: unknown) => {
      log.warn({ err }, 'GET /im/contacts failed');
      sendJson(res, state, 503, { error: 'directory unavailable' });
    });
  }));
}

/**
 * The directory through the admin API's request path to the coordinator, which owns it
 * (the token check is the HTTP side's, so this internal call needs none); a reused path
 * rather than a new thread message for one read.
 */
export function directoryViaAdmin(
  forward: (req: { method: string; path: string; query: Record<string, string>; body: unknown }, reply: (status: number, body: unknown) => void) => void,
): DirectorySource {
  return () =>
    new Promise((resolve, reject) => {
      forward({ method: 'GET', path: '/directory', query: {}, body: undefined }, (status, body) => {
        const users = (body as { users?: unknown } | null)?.users;
        if (status === 200 && Array.isArray(users)) resolve(users as DirectoryEntry[]);
        else reject(new Error(`directory request answered ${status}`));
      });
    });
}
