/**
 * A JetStream KV bucket in memory, for the shared-state unit tests: put / delete / create
 * / get / status / watch with one stream order (revisions), history 1, and watchers fed
 * asynchronously (one setImmediate per entry, like a network) in that order. Only what
 * src/cluster/kv.ts and shared-*.ts use. `fail` makes writes reject (JetStream down).
 */
import type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv';

interface Stored {
  key: string;
  value: Uint8Array;
  revision: number;
  operation: 'PUT' | 'DEL' | 'PURGE';
}

export class MemoryKv {
  private seq = 0;
  private readonly last = new Map<string, Stored>();
  private readonly watchers = new Set<(s: Stored) => void>();
  fail = false;

  private append(key: string, value: Uint8Array, operation: Stored['operation']): number {
    if (this.fail) throw new Error('JetStream is down (test)');
    const s: Stored = { key, value, revision: ++this.seq, operation };
    this.last.set(key, s);
    for (const w of this.watchers) w(s);
    return s.revision;
  }

  /** The KV interface over this bucket (several "nodes" may share one MemoryKv). */
  kv(): KV {
    const entry = (s: Stored, delta: number, isUpdate: boolean): KvWatchEntry =>
      ({ bucket: 'mem', key: s.key, rawKey: s.key, value: s.value, revision: s.revision, operation: s.operation, delta, isUpdate, created: new Date(), length: s.value.length, json: () => JSON.parse(new TextDecoder().decode(s.value)), string: () => new TextDecoder().decode(s.value) }) as KvWatchEntry;
    const kv = {
      put: async (k: string, data: Uint8Array) => this.append(k, data, 'PUT'),
      create: async (k: string, data: Uint8Array) => {
        const have = this.last.get(k);
        if (have && have.operation === 'PUT') throw new Error('wrong last sequence: key exists');
        return this.append(k, data, 'PUT');
      },
      delete: async (k: string) => {
        this.append(k, new Uint8Array(0), 'DEL');
      },
      get: async (k: string): Promise<KvEntry | null> => {
        const s = this.last.get(k);
        return s ? entry(s, 0, false) : null;
      },
      status: async () => ({ bucket: 'mem', values: this.last.size, streamInfo: { state: { last_seq: this.seq } } }),
      watch: async () => {
        const initial = [...this.last.values()].sort((a, b) => a.revision - b.revision);
        const queue: KvWatchEntry[] = initial.map((s, i) => entry(s, initial.length - 1 - i, false));
        let wake: (() => void) | undefined;
        let stopped = false;
        const onNew = (s: Stored) => {
          queue.push(entry(s, 0, true));
          wake?.();
        };
        this.watchers.add(onNew);
        const it = {
          stop: () => {
            stopped = true;
            this.watchers.delete(onNew);
            wake?.();
          },
          async *[Symbol.asyncIterator]() {
            for (;;) {
              while (queue.length > 0) {
                await new Promise((r) => setImmediate(r));
                if (stopped) return;
                yield queue.shift()!;
              }
              if (stopped) return;
              await new Promise<void>((r) => (wake = r));
              wake = undefined;
            }
          },
        };
        return it;
      },
    };
    return kv as unknown as KV;
  }

  /** The current value of a key (undefined: none or deleted). */
  value(key: string): Uint8Array | undefined {
    const s = this.last.get(key);
    return s && s.operation === 'PUT' ? s.value : undefined;
  }

  keys(): string[] {
    return [...this.last.values()].filter((s) => s.operation === 'PUT').map((s) => s.key);
  }
}
