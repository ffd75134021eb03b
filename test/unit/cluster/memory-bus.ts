/**
 * An in-memory NATS for the cluster tests: subject matching with `*` and `>` as NATS does
 * it, several connections (one per node), no echo to the publishing connection.
 */
import type { Bus } from '../../../src/cluster/bus.js';

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
export function natsMatch(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}

interface Sub {
  conn: number;
  pattern: string;
  cb: (data: Uint8Array, subject: string) => void;
}

export class MemoryNats {
  private subs = new Set<Sub>();
  private nextConn = 0;
  published: Array<{ conn: number; subject: string }> = [];

  connect(): Bus & { readonly subjects: string[] } {
    const conn = this.nextConn++;
    const mine = new Set<Sub>();
    return {
      subscribe: (pattern, cb) => {
        const sub = { conn, pattern, cb };
        this.subs.add(sub);
        mine.add(sub);
        return {
          unsubscribe: () => {
            this.subs.delete(sub);
            mine.delete(sub);
          },
        };
      },
      publish: (subject, data) => {
        this.published.push({ conn, subject });
        for (const s of this.subs) if (s.conn !== conn && natsMatch(s.pattern, subject)) queueMicrotask(() => s.cb(data, subject));
      },
      flush: () => Promise.resolve(),
      close: async () => {
        for (const s of mine) this.subs.delete(s);
      },
      get subjects() {
        return [...mine].map((s) => s.pattern);
      },
    };
  }
}
