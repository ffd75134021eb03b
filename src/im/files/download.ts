// GET and HEAD /files/:id/:name, with single byte ranges for media seeking.
//
// Decisions:
// - The :name segment is decoration for the user (and for "save as"); the id alone
//   selects the file, so a renamed link still works and no name ever becomes a path.
// - The file is streamed from disk in chunks and never loaded whole. uWS accepts a
//   chunk only as far as the socket allows; the rest waits in `pending` while the read
//   stream is paused, and onWritable continues from the offset uWS reports. Memory per
//   download is thus about one read chunk however slow the client.
// - Responses carry `nosniff` and a sandboxing CSP: uploads are arbitrary bytes with a
//   type chosen by the uploader, and must not run as HTML/script in the broker's origin.
import { open, type FileHandle } from 'node:fs/promises';
import type uWS from 'uWebSockets.js';
import { sendJson, statusLine, type ResponseState } from '../../transport/http-util.js';
import { contentDisposition, dataPath, isFileId, readMeta } from './meta.js';
import { parseRange } from './range.js';
import type { FileHooks, FileStoreOptions, HttpAuth } from './types.js';
import { WWW_AUTHENTICATE } from './upload.js';

const READ_CHUNK = 256 * 1024;

export function handleDownload(
  res: uWS.HttpResponse,
  req: uWS.HttpRequest,
  head: boolean,
  opts: FileStoreOptions,
  auth: HttpAuth,
  hooks: FileHooks,
): void {
  const state: ResponseState = { aborted: false };
  const authorization = req.getHeader('authorization') || undefined;
  const accessToken = new URLSearchParams(req.getQuery() ?? '').get('access_token') ?? undefined;
  const range = req.getHeader('range');
  const id = req.getParameter(0) ?? '';
  let onAbort: () => void = () => {};
  res.onAborted(() => {
    state.aborted = true;
    onAbort();
  });

  const serve = async (): Promise<void> => {
    let who: { uid: string } | null;
    try {
      who = await auth(authorization, accessToken);
    } catch (err) {
      hooks.log.warn({ err }, 'file download: authentication unavailable');
      sendJson(res, state, 503, { error: 'authentication unavailable' });
      return;
    }
    if (who === null) {
      sendJson(res, state, 401, { error: 'authentication required' }, { 'WWW-Authenticate': WWW_AUTHENTICATE });
      return;
    }
    const meta = isFileId(id) ? await readMeta(opts.dir, id) : null;
    let fh: FileHandle | null = null;
    if (meta !== null) fh = await open(dataPath(opts.dir, id), 'r').catch(() => null);
    if (meta === null || fh === null) {
      sendJson(res, state, 404, { error: 'no such file' });
      return;
    }
    // The handle owns the file from here on; every path below closes it exactly once.
    let size: number;
    try {
      size = (await fh.stat()).size;
    } catch (err) {
      await fh.close().catch(() => {});
      throw err;
    }
    if (state.aborted) {
      await fh.close().catch(() => {});
      return;
    }
    const r = parseRange(range, size);
    if (r.kind === 'unsatisfiable') {
      await fh.close().catch(() => {});
      sendJson(res, state, 416, { error: 'range not satisfiable' }, { 'Content-Range': `bytes */${size}` });
      return;
    }
    const start = r.kind === 'partial' ? r.start : 0;
    const end = r.kind === 'partial' ? r.end : size - 1;
    const length = end - start + 1;
    res.cork(() => {
      res.writeStatus(statusLine(r.kind === 'partial' ? 206 : 200));
      res.writeHeader('Content-Type', meta.type);
      res.writeHeader('Accept-Ranges', 'bytes');
      res.writeHeader('Content-Disposition', contentDisposition(meta.name));
      res.writeHeader('X-Content-Type-Options', 'nosniff');
      res.writeHeader('Content-Security-Policy', "default-src 'none'; sandbox");
      // Ids are never reused, so the bytes behind a URL never change; but they are
      // private to authenticated users, so shared caches must not keep them.
      res.writeHeader('Cache-Control', 'private, max-age=31536000, immutable');
      if (r.kind === 'partial') res.writeHeader('Content-Range', `bytes ${start}-${end}/${size}`);
      // uWS writes Content-Length itself (from tryEnd's total, or the reported length).
      if (head) res.endWithoutBody(length);
      else if (length === 0) res.end();
    });
    if (head || length === 0) {
      await fh.close().catch(() => {});
      if (!head) hooks.count('files_downloaded_total');
      return;
    }
    hooks.count('files_downloaded_total');
    stream(fh, start, end, length);
  };

  const stream = (fh: FileHandle, start: number, end: number, length: number): void => {
    const input = fh.createReadStream({ start, end, highWaterMark: READ_CHUNK, autoClose: true });
    let pending: Buffer | null = null;
    let pendingOffset = 0;
    let done = false;
    const finish = (): void => {
      done = true;
      input.destroy();
    };
    onAbort = finish;
    // Returns false when uWS could not take all of it (the rest is kept in `pending`).
    const push = (chunk: Buffer, offset: number): boolean => {
      const [ok, responded] = res.tryEnd(chunk, length);
      if (responded) {
        finish();
        return true;
      }
      if (!ok) {
        pending = chunk;
        pendingOffset = offset;
      }
      return ok;
    };
    input.on('data', (chunk: Buffer | string) => {
      if (done || state.aborted) return;
      const buf = chunk as Buffer;
      let ok = true;
      res.cork(() => {
        ok = push(buf, res.getWriteOffset());
      });
      if (!ok) input.pause();
    });
    res.onWritable((offset) => {
      if (pending === null) return true;
      const rest = pending.subarray(offset - pendingOffset);
      const base = offset;
      pending = null;
      const ok = push(rest, base);
      if (ok && !done) input.resume();
      return ok;
    });
    input.on('error', (err) => {
      if (done) return;
      done = true;
      hooks.log.error({ err, id }, 'file download: read failed');
      // Headers (and maybe part of the body) are out; closing is the only honest signal.
      if (!state.aborted) res.close();
    });
    // A file that shrank under us would leave the response short: close rather than hang.
    input.on('end', () => {
      if (!done && pending === null && !state.aborted) {
        done = true;
        hooks.log.error({ id }, 'file download: file shorter than expected');
        res.close();
      }
    });
  };

  serve().catch((err: unknown) => {
    hooks.log.error({ err, id }, 'file download: unexpected error');
    sendJson(res, state, 500, { error: 'internal error' });
  });
}
