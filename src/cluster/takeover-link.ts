/**
 * Session takeover across nodes, the cluster link's part (docs/cluster.md, "Sessions
 * across nodes"; the shard's part is src/session/cluster-takeover.ts).
 *
 * Claiming: a shard's `claim` is sent to every other node (one broadcast per turn for
 * every claim of the turn) and waits for each node the membership knows, until they all
 * answered, left, or `takeoverTimeoutMs` passed; then the shard gets `claimed`. Its
 * `claimFinish` tells the winner to hand the messages over and the other holders to drop
 * their copies; the messages (in parts under NATS' max_payload) become `claimDone`.
 *
 * Releasing: a claim from another node goes to the shard that owns the client id here
 * (`release`); its answers and hand-overs go back on the claiming node's own subject.
 */
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import type { ClaimAnswer, ClusterMsg, SessionMessages, ShardMsg } from '../protocol/messages.js';
import type { ActorRef } from '../runtime/system.js';
import { shardOf } from '../runtime/sharding.js';
import type { Bus, BusSubscription } from './bus.js';
import { ClaimBook, type PendingClaim } from './claims.js';
import type { DirectChannel } from './direct.js';
import { decodeClaims, encodeClaims, splitMessages, type ClaimItem, type DirectItem } from './takeover-wire.js';
import { WireError } from './wire.js';

type LinkMsg = Extract<ClusterMsg, { t: 'claim' | 'claimFinish' | 'releaseReply' | 'releaseDone' }>;

export interface TakeoverLinkOptions {
  node: string;
  prefix: string;
  takeoverTimeoutMs: number;
  /** The other live nodes, now. */
  others(): string[];
}

/** NATS' default max_payload is 1 MiB; a hand-over part stays well below what the server allows. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export class TakeoverLink {
  private readonly book = new ClaimBook();
  /** Settled claims waiting for the shard's `claimFinish`: who holds a copy. */
  private readonly holders = new Map<number, string[]>();
  /** Hand-overs this node waits for, by claim id. */
  private readonly handovers = new Map<number, { shard: number; reqId: number; clientId: string; deadline: number; got: SessionMessages }>();
  private claimsOut: ClaimItem[] = [];
  private claimsQueued = false;
  private readonly sub: BusSubscription;
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly o: TakeoverLinkOptions,
    private readonly bus: Bus,
    private readonly channel: DirectChannel,
    private readonly shards: ActorRef<ShardMsg>[],
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.sub = bus.subscribe(`${o.prefix}.claim`, (data) => this.guard(() => this.fromClaims(data)));
    this.sweep = setInterval(() => this.expire(Date.now()), Math.min(250, o.takeoverTimeoutMs));
    this.sweep.unref();
  }

  receive(m: LinkMsg): void {
    switch (m.t) {
      case 'claim': {
        const { claim, settled } = this.book.open(m.shard, m.reqId, m.clientId, this.o.others(), Date.now() + this.o.takeoverTimeoutMs);
        if (settled) return this.settled(claim);
        this.claimsOut.push({ id: claim.id, clientId: m.clientId, clean: m.clean, ...(m.owner !== undefined ? { owner: m.owner } : {}) });
        return this.queueClaims();
      }
      case 'claimFinish': {
        const holders = this.holders.get(m.claim) ?? [];
        this.holders.delete(m.claim);
        for (const node of holders) this.direct(node, { k: 'finish', id: m.claim, clientId: m.clientId, take: node === m.winner });
        if (m.winner !== null) {
          if (holders.includes(m.winner))
            this.handovers.set(m.claim, { shard: m.shard, reqId: m.reqId, clientId: m.clientId, deadline: Date.now() + this.o.takeoverTimeoutMs, got: { inflight: [], queue: [] } });
          else this.shards[m.shard]!.tell({ t: 'claimDone', reqId: m.reqId, clientId: m.clientId, state: null });
        }
        return;
      }
      case 'releaseReply':
        return this.direct(m.to, { k: 'answer', id: m.claim, answer: { ...m.answer, node: this.o.node } });
      case 'releaseDone': {
        const max = Math.floor((this.bus.maxPayload ?? DEFAULT_MAX_PAYLOAD) / 2);
        const parts = splitMessages(m.state, max);
        parts.forEach((state, i) => this.direct(m.to, { k: 'moved', id: m.claim, state, more: i < parts.length - 1 }));
        this.metrics.inc('cluster_sessions_moved_out_total');
        return;
      }
    }
  }

  /** A node left the cluster: claims stop waiting for it. */
  nodeGone(node: string): void {
    for (const c of this.book.nodeGone(node)) this.settled(c);
  }

  close(): void {
    clearInterval(this.sweep);
    this.sub.unsubscribe();
  }

  // ------------------------------------------------------------ claiming
  private settled(c: PendingClaim): void {
    const holders = c.answers.filter((a) => a.has).map((a) => a.node);
    if (holders.length > 0) this.holders.set(c.id, holders);
    this.shards[c.shard]!.tell({ t: 'claimed', reqId: c.reqId, claim: c.id, clientId: c.clientId, answers: c.answers });
  }

  private expire(now: number): void {
    for (const { claim, missing } of this.book.expire(now)) {
      this.metrics.inc('cluster_errors_total{op="claim_timeout"}');
      this.log.warn({ clientId: claim.clientId, missing }, 'nodes did not answer the claim of a client id in time: going on without them');
      this.settled(claim);
    }
    for (const [id, h] of this.handovers) {
      if (h.deadline > now) continue;
      this.handovers.delete(id);
      this.log.warn({ clientId: h.clientId }, 'the session\'s messages did not come from its old node in time: they stay there');
      this.shards[h.shard]!.tell({ t: 'claimDone', reqId: h.reqId, clientId: h.clientId, state: null });
    }
  }

  // ------------------------------------------------------------ from other nodes
  private fromClaims(data: Uint8Array): void {
    const b = decodeClaims(data);
    if (b.from === this.o.node) return;
    for (const c of b.claims)
      this.shardFor(c.clientId).tell({ t: 'release', claim: c.id, from: b.from, clientId: c.clientId, clean: c.clean, ...(c.owner !== undefined ? { owner: c.owner } : {}) });
  }

  /** Takeover items on this node's own subject (direct.ts). */
  fromDirect(from: string, items: DirectItem[]): void {
    for (const i of items) {
      if (i.k === 'share') continue;
      if (i.k === 'answer') {
        const answer: ClaimAnswer = { ...i.answer, node: from };
        const c = this.book.answer(i.id, answer);
        if (c) this.settled(c);
      } else if (i.k === 'finish') {
        this.shardFor(i.clientId).tell({ t: 'releaseFinish', claim: i.id, from, clientId: i.clientId, take: i.take });
      } else {
        const h = this.handovers.get(i.id);
        if (!h) continue; // timed out: counted there
        h.got.inflight.push(...i.state.inflight);
        h.got.queue.push(...i.state.queue);
        if (i.more) continue;
        this.handovers.delete(i.id);
        this.shards[h.shard]!.tell({ t: 'claimDone', reqId: h.reqId, clientId: h.clientId, state: h.got });
      }
    }
  }

  private shardFor(clientId: string): ActorRef<ShardMsg> {
    return this.shards[shardOf(clientId, this.shards.length)]!;
  }

  private guard(run: () => void): void {
    try {
      run();
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      this.metrics.inc('cluster_errors_total{op="decode"}');
      this.log.warn({ err: err.message }, 'dropped a takeover message from another node');
    }
  }

  // ------------------------------------------------------------ out, once per turn
  private direct(node: string, item: DirectItem): void {
    this.channel.send(node, item);
  }

  private queueClaims(): void {
    if (this.claimsQueued) return;
    this.claimsQueued = true;
    setImmediate(() => {
      this.claimsQueued = false;
      const claims = this.claimsOut;
      this.claimsOut = [];
      try {
        this.bus.publish(`${this.o.prefix}.claim`, encodeClaims(this.o.node, claims));
      } catch (err) {
        // NATS down past the reconnect buffer: the claims time out and settle without the others.
        this.metrics.inc('cluster_errors_total{op="publish"}');
        this.log.error({ err }, 'could not send claims to the other nodes');
      }
    });
  }
}
