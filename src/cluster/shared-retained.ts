/**
 * Retained messages shared by the cluster through a JetStream KV bucket
 * (`{prefix}-retained`, docs/cluster.md "Shared state").
 *
 * - Every retained message published on a node (clients, wills, presence, admin; `$SYS`
 *   aside, which stays per node) is put in the bucket under its topic (base64url); an
 *   empty payload deletes the key. A held PUBACK waits for the bucket's acknowledgement,
 *   at most `timeoutMs` (then it goes anyway, counted: nothing hangs on JetStream).
 * - Every node watches the bucket and hands each value to its coordinator: at start the
 *   current ones (a node that joins late or restarts has every retained message), then
 *   every change, its own included. The watch runs in the stream's order, the same on
 *   every node, so concurrent publishes on one topic from two nodes end with the same
 *   message everywhere.
 * - Live delivery is not the bucket's job: the message still goes on `{prefix}.r`
 *   (cluster-actor.ts), in order with the publisher's other messages, exactly once per node.
 * - The first node of a new cluster (bucket never seeded) puts its own retained messages
 *   in; later nodes take the bucket's content over their own store's (the bucket wins).
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { AppMessage } from '../protocol/messages.js';
import type { CoordinatorPort } from './cluster-state.js';
import { deadline, decodeKey, encodeKey, MAX_KEY, watchBucket, type Watch } from './kv.js';

/** Stored format (not the wire protocol version: stored values outlive upgrades). */
const FORMAT = 1;
/** Set once by the node that seeded the bucket. `.` never occurs in a base64url topic key. */
const SEEDED = 'x.seeded';

export function encodeRetained(msg: AppMessage): Uint8Array {
  // originConn names a connection of the publishing node: meaningless anywhere else.
  const { originConn: _local, ...portable } = msg;
  return pack({ f: FORMAT, msg: portable });
}

/** The stored message, or null when it is not one this version can use. */
export function decodeRetained(data: Uint8Array): AppMessage | null {
  let v: { f?: unknown; msg?: Partial<AppMessage> };
  try {
    v = unpack(data) as typeof v;
  } catch {
    return null;
  }
  const m = v?.msg;
  if (v?.f !== FORMAT || !m || typeof m.topic !== 'string' || !(m.payload instanceof Uint8Array) || ![0, 1, 2].includes(m.qos as number)) return null;
  return { ...(m as AppMessage), retain: true };
}

const shared = (topic: string): boolean => !topic.startsWith('$SYS/');

export class SharedRetained {
  private watch?: Watch;

  constructor(
    private readonly kv: KV,
    private readonly port: CoordinatorPort,
    private readonly node: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {}

  /** Loads the bucket into the coordinator (seeding it if this is the first node); resolves once done. */
  async start(loadDeadlineMs: number): Promise<void> {
    let seeded = false;
    const inBucket = new Set<string>();
    let n = 0;
    this.watch = await watchBucket(
      this.kv,
      (e, initial) => {
        if (e.key === SEEDED) {
          seeded = true;
          return;
        }
        const msg = this.apply(e);
        if (initial && msg && msg.payload.length > 0) {
          inBucket.add(msg.topic);
          n++;
        }
      },
      this.log,
      loadDeadlineMs,
    );
    await this.watch.loaded;
    if (!seeded && (await this.claimSeed())) {
      // In batches: one round trip each would make a large store slow to seed.
      const todo = this.port.retainedMessages().filter((m) => !inBucket.has(m.topic));
      for (let i = 0; i < todo.length; i += 256) await Promise.all(todo.slice(i, i + 256).map((m) => this.put(m)));
      const put = todo.length;
      if (put > 0) this.log.info({ retained: put }, 'first node of the cluster: its retained messages are now shared');
    } else {
      // The cluster's retained messages win over what this node's store had (deleted or
      // replaced while it was away).
      let dropped = 0;
      for (const msg of this.port.retainedMessages()) {
        if (inBucket.has(msg.topic)) continue;
        this.port.keepRetained({ topic: msg.topic, payload: new Uint8Array(0), qos: 0, retain: true });
        dropped++;
      }
      if (n > 0 || dropped > 0) this.log.info({ retained: n, dropped }, 'retained messages loaded from the cluster');
    }
  }

  private async claimSeed(): Promise<boolean> {
    try {
      await deadline(this.kv.create(SEEDED, new TextEncoder().encode(this.node)), this.timeoutMs);
      return true;
    } catch {
      return false; // another node did (or JetStream did not answer: the bucket wins then)
    }
  }

  /** One value of the bucket into the coordinator; returns what it kept. */
  private apply(e: KvWatchEntry): AppMessage | null {
    let msg: AppMessage | null;
    if (e.operation === 'PUT') {
      msg = decodeRetained(e.value);
      if (!msg) {
        this.metrics.inc('cluster_errors_total{op="decode"}');
        return null;
      }
      if (msg.props?.expiresAt !== undefined && msg.props.expiresAt <= Date.now()) return null;
    } else {
      let topic: string;
      try {
        topic = decodeKey(e.key);
      } catch {
        return null;
      }
      msg = { topic, payload: new Uint8Array(0), qos: 0, retain: true };
    }
    if (!shared(msg.topic)) return null;
    this.port.keepRetained(msg);
    return msg;
  }

  /**
   * Puts a retained message (or deletes it: empty payload) in the bucket. Resolves once
   * JetStream acknowledged it, or failed, or after the timeout (counted): never rejects.
   * undefined for what is not shared ($SYS).
   */
  put(msg: AppMessage): Promise<void> | undefined {
    if (!shared(msg.topic)) return undefined;
    const key = encodeKey(msg.topic);
    if (key.length > MAX_KEY) {
      this.metrics.inc('cluster_errors_total{op="kv_key_too_long"}');
      this.log.warn({ topic: msg.topic.slice(0, 80) }, 'retained topic too long for the cluster bucket: kept on this node only');
      return undefined;
    }
    const op = msg.payload.length === 0 ? this.kv.delete(key) : this.kv.put(key, encodeRetained(msg));
    return deadline(Promise.resolve(op), this.timeoutMs).then(
      () => undefined,
      (err: unknown) => {
        this.metrics.inc('cluster_errors_total{op="kv_put"}');
        this.log.warn({ err, topic: msg.topic }, 'retained message not stored in the cluster bucket');
      },
    );
  }

  close(): void {
    this.watch?.stop();
  }
}
