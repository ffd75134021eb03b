/**
 * The IM directory, pre-subscription templates and routing rules shared by the cluster
 * through a JetStream KV bucket (`{prefix}-im`, docs/cluster.md "Shared state").
 *
 * Keys: `templates` (the list), `rules` (the list: their order is their evaluation
 * order), `dir.{base64url uid}` (one directory entry; null once deleted, so a deletion is
 * a value like any other), `seeded` (set once by the node that seeded the bucket). Values
 * are JSON `{ f, by, v }` (format, writing node, value): readable with `nats kv get`.
 *
 * - An admin edit on any node is applied there (as on one node), then put in the bucket;
 *   the admin API answers once the bucket acknowledged it. Every other node sees it on
 *   its watch and applies it through the same paths an admin edit takes (pre-subscriptions
 *   refreshed, gateways' rules recompiled, live connections' IM view updated), and keeps
 *   it in its own store too. "Applied on the other nodes" is eventual: typically within
 *   milliseconds, as fast as the watch delivers.
 * - Concurrent edits of one key on two nodes end as the stream orders them, on every
 *   node (write-echo.ts).
 * - A node joining a cluster whose bucket was never seeded puts its own state in; a
 *   bucket with state wins over the node's own copy (its directory entries missing from
 *   the bucket are removed).
 * - `seen` (holdNewUsers: who ever connected) stays per node.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import { parseDirectoryEntry, parseTemplate, type DirectoryEntry } from '../im/presub.js';
import { parseRule, type RoutingRule } from '../im/rules.js';
import { uniqueRules } from '../coordinator/im-state.js';
import type { CoordinatorPort, ImChange } from './cluster-state.js';
import { deadline, decodeKey, encodeKey, MAX_KEY, watchBucket, type Watch } from './kv.js';
import { WriteEcho } from './write-echo.js';

const FORMAT = 1;
const TEMPLATES = 'templates';
const RULES = 'rules';
const SEEDED = 'seeded';
const DIR = 'dir.';

interface Stored {
  f: number;
  by: string;
  v: unknown;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export class SharedIm {
  private watch?: Watch;
  private readonly echo: WriteEcho;
  /** Before activate() (the shards are not running yet) values only change the state; then they go through the admin paths. */
  private live = false;
  private changedBeforeLive = false;

  constructor(
    private readonly kv: KV,
    private readonly port: CoordinatorPort,
    private readonly node: string,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.echo = new WriteEcho(node);
  }

  async start(loadDeadlineMs: number): Promise<void> {
    let seeded = false;
    const inBucket = new Set<string>();
    this.watch = await watchBucket(
      this.kv,
      (e, initial) => {
        if (e.key === SEEDED) {
          seeded = true;
          return;
        }
        if (initial && e.key.startsWith(DIR)) inBucket.add(e.key);
        this.onEntry(e);
      },
      this.log,
      loadDeadlineMs,
    );
    await this.watch.loaded;
    const st = this.port.imState;
    if (!seeded && (await this.claimSeed())) {
      await Promise.all([
        this.write(TEMPLATES, st.templates),
        this.write(RULES, st.rules),
        ...[...st.directory.values()].map((e) => this.write(dirKey(e.uid), e)),
      ]);
      this.log.info({ users: st.directory.size, rules: st.rules.length }, 'first node of the cluster: its IM directory, templates and rules are now shared');
    } else {
      for (const uid of [...st.directory.keys()]) {
        if (inBucket.has(dirKey(uid))) continue;
        st.directory.delete(uid);
        this.changedBeforeLive = true;
      }
      if (this.changedBeforeLive) this.log.info('IM directory, templates and rules loaded from the cluster (they win over this node\'s copy)');
    }
    if (this.changedBeforeLive) await st.save();
  }

  /** The shards run: from now on changes take the admin paths; what changed while loading is refreshed. */
  activate(): Promise<void> {
    this.live = true;
    return this.changedBeforeLive ? this.port.refreshAll() : Promise.resolve();
  }

  /** An admin edit on this node: into the bucket. Rejects (naming why) when the bucket did not take it. */
  async edited(change: ImChange): Promise<void> {
    const st = this.port.imState;
    if (change.kind === 'templates') return this.put(TEMPLATES, st.templates);
    if (change.kind === 'rules') return this.put(RULES, st.rules);
    return this.put(dirKey(change.uid), st.directory.get(change.uid) ?? null);
  }

  private async put(key: string, value: unknown): Promise<void> {
    if (key.length > MAX_KEY) throw new Error('the key is too long for the cluster bucket');
    if (!(await this.write(key, value)))
      throw new Error('the edit is applied on this node but could not be stored for the other nodes (JetStream did not acknowledge it); repeat it');
  }

  /** Writes and tracks the echo; resolves false when the bucket did not take it (the key is then reloaded). */
  private async write(key: string, value: unknown): Promise<boolean> {
    this.echo.wrote(key);
    const data = new TextEncoder().encode(JSON.stringify({ f: FORMAT, by: this.node, v: value } satisfies Stored));
    try {
      await deadline(this.kv.put(key, data), this.timeoutMs);
      return true;
    } catch (err) {
      this.metrics.inc('cluster_errors_total{op="kv_put"}');
      this.log.warn({ err, key }, 'IM state not stored in the cluster bucket');
      // Values of this key skipped while ours was pending: take the bucket's current one.
      if (this.echo.failed(key)) void this.reload(key);
      return false;
    }
  }

  private async reload(key: string): Promise<void> {
    try {
      const e = await deadline(this.kv.get(key), this.timeoutMs);
      if (e) this.onEntry(e);
    } catch {
      /* the watch brings the next change */
    }
  }

  private async claimSeed(): Promise<boolean> {
    try {
      await deadline(this.kv.create(SEEDED, new TextEncoder().encode(this.node)), this.timeoutMs);
      return true;
    } catch {
      return false;
    }
  }

  private onEntry(e: KvEntry): void {
    let s: Partial<Stored> = { v: null };
    if (e.operation === 'PUT') {
      try {
        s = JSON.parse(new TextDecoder().decode(e.value)) as Partial<Stored>;
      } catch {
        s = {};
      }
      if (s?.f !== FORMAT) {
        this.metrics.inc('cluster_errors_total{op="decode"}');
        this.log.warn({ key: e.key }, 'IM state in the cluster bucket has an unknown format; ignored');
        return;
      }
    }
    if (!this.echo.arrived(e.key, s.by)) return;
    try {
      if (e.key === TEMPLATES) this.templates(s.v);
      else if (e.key === RULES) this.rules(s.v);
      else if (e.key.startsWith(DIR)) this.user(decodeKey(e.key.slice(DIR.length)), s.v);
    } catch (err) {
      this.metrics.inc('cluster_errors_total{op="decode"}');
      this.log.error({ err, key: e.key }, 'invalid IM state in the cluster bucket; ignored');
    }
  }

  private templates(v: unknown): void {
    if (!Array.isArray(v)) throw new Error('templates: not a list');
    const t = v.map((x) => {
      if (typeof x !== 'string') throw new Error('templates: not a list of strings');
      return parseTemplate(x);
    });
    const st = this.port.imState;
    if (same(t, st.templates)) return;
    if (this.live) this.applying(this.port.applyTemplates(t));
    else {
      st.templates = t;
      this.changedBeforeLive = true;
    }
  }

  private rules(v: unknown): void {
    if (!Array.isArray(v)) throw new Error('rules: not a list');
    const r: RoutingRule[] = uniqueRules(v.map((x) => parseRule(x)));
    const st = this.port.imState;
    if (same(r, st.rules)) return;
    if (this.live) this.applying(this.port.applyRules(r));
    else {
      st.rules = r;
      this.changedBeforeLive = true;
    }
  }

  private user(uid: string, v: unknown): void {
    const entry: DirectoryEntry | undefined = v === null || v === undefined ? undefined : parseDirectoryEntry(v);
    const st = this.port.imState;
    if (same(entry ?? null, st.directory.get(uid) ?? null)) return;
    if (this.live) this.applying(this.port.applyUser(uid, entry));
    else {
      if (entry) st.directory.set(uid, entry);
      else st.directory.delete(uid);
      this.changedBeforeLive = true;
    }
  }

  /** Another node's edit being applied here: a failure (the store) is logged, not thrown into nowhere. */
  private applying(p: Promise<void>): void {
    p.catch((err: unknown) => this.log.error({ err }, 'could not apply another node\'s IM edit'));
  }

  close(): void {
    this.watch?.stop();
  }
}

const dirKey = (uid: string): string => `${DIR}${encodeKey(uid)}`;
