// HTTP file transfer for IM media (protocol section 6): clients upload over HTTP, get a
// link, and send that link in a message; downloads are authenticated like uploads and
// support Range requests so players can seek.
import { mkdirSync } from 'node:fs';
import type uWS from 'uWebSockets.js';
import { sendJson } from '../../transport/http-util.js';
import { handleDownload } from './download.js';
import type { FileHooks, FileStoreOptions, HttpAuth } from './types.js';
import { handleUpload } from './upload.js';
import type { RouteHandler } from '../../transport/cors.js';

export type { FileHooks, FileMeta, FileStoreOptions, HttpAuth } from './types.js';

function methodNotAllowed(res: uWS.HttpResponse, req: uWS.HttpRequest, allow: string): void {
  // Answered synchronously, so no abort bookkeeping is needed. A request body is not
  // read, and a connection with one still in flight cannot be reused.
  const length = req.getHeader('content-length');
  const hasBody = (length !== '' && length !== '0') || req.getHeader('transfer-encoding') !== '';
  sendJson(res, { aborted: false, closeConnection: hasBody }, 405, { error: 'method not allowed' }, { Allow: allow });
}

export function registerFileRoutes(
  app: uWS.TemplatedApp,
  opts: FileStoreOptions,
  auth: HttpAuth,
  hooks: FileHooks,
  wrap: (h: RouteHandler) => RouteHandler = (h) => h,
): void {
  // Synchronous on purpose: this runs once at start, and a directory we cannot create
  // should stop the broker with that error rather than fail every upload.
  mkdirSync(opts.dir, { recursive: true });
  app.post('/files', wrap((res, req) => handleUpload(res, req, opts, auth, hooks)));
  app.get('/files/:id/:name', wrap((res, req) => handleDownload(res, req, false, opts, auth, hooks)));
  app.head('/files/:id/:name', wrap((res, req) => handleDownload(res, req, true, opts, auth, hooks)));
  app.any('/files', (res, req) => methodNotAllowed(res, req, 'POST'));
  app.any('/files/:id/:name', (res, req) => methodNotAllowed(res, req, 'GET, HEAD'));
}
