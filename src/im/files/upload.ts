// POST /files?name=...: the raw request body is the file.
//
// Decisions:
// - The body is held back (res.pause) until the uploader is authenticated and the
//   request checked, so nothing from a stranger or an oversized request reaches the
//   disk. uWS delivers body bytes only to a data handler registered inside the route
//   handler, so the handler is registered at once and parks the few bytes that arrive
//   with the headers (at most one socket read, as the socket is paused).
// - The file streams to `${id}.part` and becomes visible under its id only when complete
//   (rename), with its sidecar; an aborted or refused upload leaves nothing behind.
// - Disk speed drives the client: when the write stream's buffer is full the socket is
//   paused until it drains, so memory per upload stays around one highWaterMark.
// - Content-Length is required: the limit is then enforced before reading anything, and
//   a truncated upload cannot pass for a complete one. The running count is still
//   checked against the limit in case a body ever arrives without that framing.
import { createWriteStream } from 'node:fs';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import type uWS from 'uWebSockets.js';
import { sendJson, type ResponseState } from '../../transport/http-util.js';
import {
  baseUrl,
  cleanFileName,
  dataPath,
  metaPath,
  newFileId,
  partPath,
  uploadType,
} from './meta.js';
import type { FileHooks, FileMeta, FileStoreOptions, HttpAuth } from './types.js';

type RefuseReason = 'unauthenticated' | 'too_large' | 'bad_request';

/** Largest unread remainder of a refused upload that is read and discarded rather than cut off. */
const DRAIN_LIMIT = 1024 * 1024;

/** Bytes buffered towards the disk before the client is paused. */
const WRITE_BUFFER = 512 * 1024;

export const WWW_AUTHENTICATE = 'Basic realm="switchboard", Bearer';

function ignore(): void {}

async function removeQuietly(...paths: string[]): Promise<void> {
  await Promise.all(paths.map((p) => unlink(p).catch(ignore)));
}

export function handleUpload(
  res: uWS.HttpResponse,
  req: uWS.HttpRequest,
  opts: FileStoreOptions,
  auth: HttpAuth,
  hooks: FileHooks,
): void {
  // Until the body has been read the connection cannot carry another request; answers
  // close it unless releaseBody or a completed upload says otherwise.
  const state: ResponseState = { aborted: false, closeConnection: true };
  // uWS's getQuery(key) decoding of '+' and bad escapes is unspecified; URLSearchParams is not.
  const query = new URLSearchParams(req.getQuery() ?? '');
  const authorization = req.getHeader('authorization') || undefined;
  const accessToken = query.get('access_token') ?? undefined;
  const rawName = query.get('name');
  const declared = req.getHeader('content-length');
  const contentType = req.getHeader('content-type');
  const host = req.getHeader('host');
  const declaredSize = /^\d{1,15}$/.test(declared) ? Number(declared) : null;

  const early: Buffer[] = [];
  let earlyBytes = 0;
  let bodyComplete = false;
  let onChunk: ((chunk: Buffer, last: boolean) => void) | null = null;
  let onAbort: () => void = ignore;

  res.onAborted(() => {
    state.aborted = true;
    onAbort();
  });
  res.onData((ab, isLast) => {
    if (isLast) bodyComplete = true;
    if (onChunk !== null) {
      // Copy: uWS neuters the ArrayBuffer when this callback returns.
      onChunk(Buffer.from(new Uint8Array(ab)), isLast);
      return;
    }
    // Parked until the request is accepted; beyond the limit it will be refused anyway.
    earlyBytes += ab.byteLength;
    if (earlyBytes <= opts.maxBytes) early.push(Buffer.from(new Uint8Array(ab)));
  });
  res.pause();

  // Before answering early, decide what becomes of the unread rest of the body: a modest
  // remainder is read and discarded so the connection stays usable (and the client,
  // still sending, is not hit by a reset before it sees the answer); a large one is not
  // worth the bandwidth, so the connection is closed instead.
  const releaseBody = (received: number): void => {
    onChunk = ignore;
    if (state.aborted) return;
    const rest = declaredSize === null ? Infinity : declaredSize - received;
    // rest < 0: more bytes than declared, the framing is broken; never reuse that.
    if (rest >= 0 && (bodyComplete || rest <= DRAIN_LIMIT)) {
      state.closeConnection = false;
      res.resume();
    } else {
      state.closeConnection = true;
    }
  };

  const refuse = (status: number, reason: RefuseReason, error: string, headers?: Record<string, string>): void => {
    hooks.count(`file_upload_refused_total{reason="${reason}"}`);
    sendJson(res, state, status, { error }, headers);
  };

  const accept = async (): Promise<void> => {
    let who: { uid: string } | null;
    try {
      who = await auth(authorization, accessToken);
    } catch (err) {
      // The credential check itself failed (e.g. hash pool busy): not the client's fault.
      hooks.log.warn({ err }, 'file upload: authentication unavailable');
      releaseBody(earlyBytes);
      sendJson(res, state, 503, { error: 'authentication unavailable' });
      return;
    }
    if (state.aborted) return;
    const rejected = (status: number, reason: RefuseReason, error: string, headers?: Record<string, string>): void => {
      releaseBody(earlyBytes);
      refuse(status, reason, error, headers);
    };
    if (who === null) {
      rejected(401, 'unauthenticated', 'authentication required', { 'WWW-Authenticate': WWW_AUTHENTICATE });
      return;
    }
    const name = cleanFileName(rawName);
    if (name === null) {
      rejected(400, 'bad_request', 'query parameter "name" missing or not a valid file name');
      return;
    }
    if (declared === '') {
      rejected(411, 'bad_request', 'Content-Length required');
      return;
    }
    if (declaredSize === null) {
      rejected(400, 'bad_request', 'malformed Content-Length');
      return;
    }
    const size = declaredSize;
    if (size > opts.maxBytes) {
      rejected(413, 'too_large', `file larger than ${opts.maxBytes} bytes`);
      return;
    }
    const type = uploadType(contentType, name);
    if (type === 'multipart') {
      rejected(415, 'bad_request', 'send the file itself as the request body, not a multipart form');
      return;
    }
    if (type === 'invalid') {
      rejected(400, 'bad_request', 'malformed Content-Type');
      return;
    }
    store(who.uid, name, type, size);
  };

  const store = (uid: string, name: string, type: string, size: number): void => {
    const id = newFileId();
    const part = partPath(opts.dir, id);
    const data = dataPath(opts.dir, id);
    const meta = metaPath(opts.dir, id);
    // 'wx': ids are random, but never overwrite whatever might already be there.
    const out = createWriteStream(part, { flags: 'wx', highWaterMark: WRITE_BUFFER });
    let received = 0;
    let failed = false;
    let waitingDrain = false;
    let completing = false;

    // Unlinking before the stream has closed could race its open() and leave a file behind.
    const dropPart = (): void => {
      if (out.closed) void removeQuietly(part);
      else out.once('close', () => void removeQuietly(part));
    };
    const fail = (status: number | null, reason: RefuseReason | null, error: string, err?: unknown): void => {
      if (failed) return;
      failed = true;
      onChunk = ignore;
      out.destroy();
      dropPart();
      if (status === null) {
        hooks.log.debug({ id, uid, received }, `file upload dropped: ${error}`);
        return;
      }
      if (status >= 500) hooks.log.error({ err, id, uid }, `file upload failed: ${error}`);
      // After a storage error the client would only be sending into the void.
      if (status >= 500) state.closeConnection = true;
      else releaseBody(received);
      if (reason !== null) refuse(status, reason, error);
      else sendJson(res, state, status, { error });
    };
    onAbort = () => fail(null, null, 'client aborted');
    out.on('error', (err) => fail(500, null, 'could not store the file', err));

    const complete = async (): Promise<void> => {
      onChunk = ignore;
      completing = true;
      // The whole body is in: let uWS read again (the next request on this connection),
      // or the connection would stay paused forever after this response.
      if (!state.aborted) res.resume();
      if (received !== size) {
        fail(400, 'bad_request', 'body shorter or longer than Content-Length');
        return;
      }
      try {
        out.end();
        await finished(out);
        if (failed) return;
        await rename(part, data);
        const sidecar: FileMeta = { name, type, size, uid, created: new Date().toISOString() };
        await writeFile(meta, JSON.stringify(sidecar));
      } catch (err) {
        if (!failed) fail(500, null, 'could not store the file', err);
        await removeQuietly(data, meta);
        return;
      }
      // The uploader vanished before learning the id: nobody can ever link to the file.
      if (failed || state.aborted) {
        await removeQuietly(data, meta);
        return;
      }
      state.closeConnection = false;
      hooks.count('files_uploaded_total');
      hooks.count('file_bytes_uploaded_total', size);
      hooks.log.info({ id, uid, size, type }, 'file uploaded');
      const url = `${baseUrl(opts.publicUrl, host)}/files/${id}/${encodeURIComponent(name)}`;
      sendJson(res, state, 201, { id, url, name, size, type });
    };

    onChunk = (chunk, last) => {
      received += chunk.length;
      if (received > size || received > opts.maxBytes) {
        fail(413, 'too_large', `file larger than ${Math.min(size, opts.maxBytes)} bytes`);
        return;
      }
      if (chunk.length > 0 && !out.write(chunk) && !last && !waitingDrain && !state.aborted) {
        waitingDrain = true;
        res.pause();
        out.once('drain', () => {
          waitingDrain = false;
          // Once completing, the response may already be sent and `res` gone.
          if (!state.aborted && !failed && !completing) res.resume();
        });
      }
      if (last) void complete();
    };

    for (const chunk of early.splice(0)) onChunk(chunk, false);
    // An empty body may never produce a data callback.
    if (bodyComplete || size === 0) onChunk(Buffer.alloc(0), true);
    else if (!waitingDrain) res.resume();
  };

  accept().catch((err: unknown) => {
    hooks.log.error({ err }, 'file upload: unexpected error');
    sendJson(res, state, 500, { error: 'internal error' });
  });
}
