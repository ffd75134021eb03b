/**
 * JetStream KV for the state a cluster shares (docs/cluster.md "Shared state"): retained
 * messages, the IM directory, templates and rules, presence. One place that knows how
 * buckets are named, created and watched, so the three users stay small.
 *
 * - JetStream must be enabled on the NATS server: a node checks at start and stops with
 *   an error naming the fix, rather than running with state it cannot share.
 * - Buckets are named after cluster.subjectPrefix: two clusters sharing a NATS never mix.
 *   Every node may create them at once at start; creation is idempotent (same config).
 * - File storage (survives a NATS restart), history 1 (only the current value matters).
 * - A watch feeds the initial values then every update, in the stream's order (which is
 *   the same on every node: what makes the nodes converge); `loaded` resolves once the
 *   initial values are in.
 */
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm, type KV, type KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/** KV keys allow `[-/_=.A-Za-z0-9]`; an MQTT topic or user id may hold anything: base64url (no `.`, no padding). */
export function encodeKey(s: string): string {
  return Buffer.from(s, 'utf8').toString('base64url');
}

export function decodeKey(k: string): string {
  return Buffer.from(k, 'base64url').toString('utf8');
}

/**
 * A key becomes the subject `$KV.{bucket}.{key}`; NATS' default max_control_line (4096
 * bytes) bounds it. Longer keys are refused by the caller (counted), not sent.
 */
export const MAX_KEY = 3800;

export type BucketKind = 'retained' | 'im' | 'presence';

/** `{prefix}-retained`, `{prefix}-im`, `{prefix}-presence` (the prefix is `[A-Za-z0-9_-]`, as bucket names need). */
export function bucketName(prefix: string, kind: BucketKind): string {
  return `${prefix}-${kind}`;
}

export class JetStreamMissing extends Error {}

/** Fails with an error naming the fix when the NATS server has no JetStream. */
export async function requireJetStream(nc: NatsConnection, server: string): Promise<void> {
  try {
    const jsm = await jetstreamManager(nc);
    await jsm.getAccountInfo();
  } catch (err) {
    if ((err as Error).name === 'JetStreamNotEnabled' || /jetstream.*not enabled/i.test((err as Error).message))
      throw new JetStreamMissing(
        `cluster.nats: JetStream is not enabled on the NATS server (${server}); the cluster keeps retained messages, ` +
          'the IM directory, templates, rules and presence in JetStream KV. Start nats-server with -js ' +
          '(and --store_dir DIR), or add `jetstream { store_dir: "DIR" }` to its configuration.',
      );
    throw new Error(`cluster.nats: JetStream check failed: ${(err as Error).message}`);
  }
}

/** Opens (creating if needed) a bucket of this cluster; API calls time out after `timeoutMs`. */
export async function openBucket(nc: NatsConnection, prefix: string, kind: BucketKind, timeoutMs: number): Promise<KV> {
  const kvm = new Kvm(jetstream(nc, { timeout: timeoutMs }));
  const name = bucketName(prefix, kind);
  const opts = { history: 1, storage: 'file' as const, description: `switchboard cluster "${prefix}": ${kind}` };
  try {
    return await kvm.create(name, opts);
  } catch (err) {
    // Another node created it between our lookup and our create: it exists now.
    if (/already in use|exist/i.test((err as Error).message)) return await kvm.create(name, opts);
    throw err;
  }
}

export interface Watch {
  /** Resolves once the bucket's values at the start of the watch were all delivered (or after the deadline). */
  loaded: Promise<void>;
  stop(): void;
}

/**
 * Watches every key: `onEntry(e, initial)` for each current value (initial = true) and
 * then every change, in stream order. A handler that throws is logged and skipped.
 * `loaded` resolves at the latest after `deadlineMs` (logged): a node never hangs at start.
 */
export async function watchBucket(
  kv: KV,
  onEntry: (e: KvWatchEntry, initial: boolean) => void,
  log: Logger,
  deadlineMs: number,
): Promise<Watch> {
  // The newest revision before the watch: every value up to it comes first.
  const st = await kv.status();
  const last = st.streamInfo.state.last_seq;
  let initial = last > 0;
  let markLoaded!: () => void;
  const loaded = new Promise<void>((r) => (markLoaded = r));
  if (!initial) markLoaded();
  const timer = setTimeout(() => {
    if (!initial) return;
    initial = false;
    log.warn({ bucket: st.bucket }, 'the shared state did not load in time; going on with what arrived');
    markLoaded();
  }, deadlineMs);
  timer.unref();
  const it = await kv.watch();
  void (async () => {
    for await (const e of it) {
      const wasInitial = initial;
      if (initial && (e.revision >= last || e.delta === 0)) initial = false;
      try {
        onEntry(e, wasInitial);
      } catch (err) {
        log.error({ err, key: e.key }, 'could not apply a shared-state change');
      }
      if (wasInitial && !initial) {
        clearTimeout(timer);
        markLoaded();
      }
    }
  })().catch((err: unknown) => log.error({ err }, 'shared-state watch ended'));
  return {
    loaded,
    stop: () => {
      clearTimeout(timer);
      it.stop();
    },
  };
}

/** The promise, or a rejection after `ms`: a JetStream call that never answers must not hold anything forever. */
export function deadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from JetStream within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
