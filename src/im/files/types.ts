import type { Logger } from 'pino';

export interface FileStoreOptions {
  dir: string;
  maxBytes: number;
  /** base URL for links, e.g. 'https://im.example.com'; null = `http://${Host header}` */
  publicUrl: string | null;
}

/**
 * Who is asking: the Authorization header and the `access_token` query parameter (for
 * browser <img>/<audio> tags that cannot send headers). null = not authenticated.
 */
export type HttpAuth = (
  authorization: string | undefined,
  accessToken: string | undefined,
) => Promise<{ uid: string } | null>;

export interface FileHooks {
  count(series: string, n?: number): void;
  log: Logger;
}

/** What the sidecar `${id}.json` holds next to each stored file. */
export interface FileMeta {
  name: string;
  type: string;
  size: number;
  uid: string;
  created: string;
}
