/**
 * Small helpers for the plain-HTTP endpoints served by uWebSockets.js (file transfer,
 * admin API). uWS is callback-driven and strict about lifetimes: a response must be
 * ended or have an abort handler before the route handler returns, it must not be
 * touched once aborted, and writes made outside the handler's synchronous part must be
 * corked. These helpers encode those rules once.
 */
import type uWS from 'uWebSockets.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/**
 * Per-response bookkeeping shared by readBody and sendJson. uWS keeps a single abort
 * handler per response, so whoever registers it must record the abort here for everyone.
 */
export interface ResponseState {
  aborted: boolean;
  /**
   * Set when the request body was not (fully) read. The connection cannot carry another
   * request cleanly and the client may still be sending megabytes we would only discard,
   * so the answer is sent with `Connection: close`.
   */
  closeConnection?: boolean;
}

const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  201: 'Created',
  204: 'No Content',
  206: 'Partial Content',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  411: 'Length Required',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The status line uWS expects in writeStatus, e.g. '404 Not Found'. */
export function statusLine(status: number): string {
  const text = STATUS_TEXT[status];
  return text === undefined ? String(status) : `${status} ${text}`;
}

/**
 * Reads a whole request body up to maxBytes (Content-Length checked first when present).
 * Rejects with HttpError(413) when larger, HttpError(400) on abort or a malformed
 * Content-Length. Call synchronously inside the uWS handler (before any await): it
 * registers the response's onData and onAborted handlers, and uWS drops body bytes that
 * arrive while no data handler is registered.
 *
 * Because it owns the abort handler, pass the ResponseState you later give to sendJson
 * (a fresh one is used otherwise, and the caller cannot learn about a later abort).
 */
export function readBody(
  res: uWS.HttpResponse,
  req: uWS.HttpRequest,
  maxBytes: number,
  state: ResponseState = { aborted: false },
): Promise<Buffer> {
  const declared = req.getHeader('content-length');
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    const settle = (err: HttpError | null, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      if (err) reject(err);
      else resolve(body!);
    };
    res.onAborted(() => {
      state.aborted = true;
      settle(new HttpError(400, 'request aborted'));
    });
    if (declared !== '') {
      if (!/^\d{1,15}$/.test(declared)) {
        state.closeConnection = true;
        settle(new HttpError(400, 'malformed Content-Length'));
        return;
      }
      if (Number(declared) > maxBytes) {
        state.closeConnection = true;
        settle(new HttpError(413, `body larger than ${maxBytes} bytes`));
        return;
      }
    }
    state.closeConnection = true;
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((ab, isLast) => {
      if (settled) return;
      size += ab.byteLength;
      if (size > maxBytes) {
        // Chunked bodies have no Content-Length to check up front.
        chunks.length = 0;
        settle(new HttpError(413, `body larger than ${maxBytes} bytes`));
        return;
      }
      // Copy: uWS neuters the ArrayBuffer when this callback returns.
      chunks.push(Buffer.from(new Uint8Array(ab)));
      if (isLast) {
        state.closeConnection = false;
        settle(null, Buffer.concat(chunks, size));
      }
    });
  });
}

/**
 * Writes status + JSON body. Safe to call after an await: the writes are corked, and
 * nothing is written once the request was aborted (the response object is dead then).
 */
export function sendJson(
  res: uWS.HttpResponse,
  state: ResponseState,
  status: number,
  body: unknown,
  headers?: Record<string, string>,
): void {
  if (state.aborted) return;
  const json = JSON.stringify(body);
  res.cork(() => {
    res.writeStatus(statusLine(status));
    res.writeHeader('Content-Type', 'application/json');
    res.writeHeader('Cache-Control', 'no-store');
    if (headers) for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    res.end(json, state.closeConnection === true);
  });
}

/** Parses 'Basic base64(user:pass)' and 'Bearer token' Authorization headers. */
export function parseAuthorization(
  h: string | undefined,
): { kind: 'basic'; username: string; password: string } | { kind: 'bearer'; token: string } | null {
  if (h === undefined) return null;
  const m = /^\s*([A-Za-z]+)[ \t]+(\S+)\s*$/.exec(h);
  if (!m) return null;
  const scheme = m[1]!.toLowerCase(); // auth schemes are case-insensitive (RFC 9110 11.1)
  const value = m[2]!;
  if (scheme === 'bearer') return { kind: 'bearer', token: value };
  if (scheme !== 'basic') return null;
  // Buffer's base64 decoder silently skips junk; insist on the real alphabet so a
  // garbled header is "no credentials" rather than some other username.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return null;
  const decoded = Buffer.from(value, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  return { kind: 'basic', username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
