/**
 * A shard's sessions towards their clients: the bounded queue, the inflight window
 * (min(limits.maxInflight, the client's Receive Maximum)) and what moves between them
 * (docs/architecture.md, "Sessions"):
 *
 *   enqueue --> queue (bounded) --pump--> inflight --PUBACK/PUBCOMP--> done
 *                 |  full: dropped (queue_full, the publisher throttled) or parked (hold)
 *
 * Live deliveries of one publish are grouped per gateway while the shard matches it
 * (`group`): the message crosses to each gateway once, and the gateway encodes a QoS 0
 * packet once for all of them. Split from shard-actor.ts; one actor, one thread.
 */
import type { AppMessage, DeliverItem, GatewayMsg, QoS, ShardMsg } from '../protocol/messages.js';
import type { ActorRef } from '../runtime/system.js';
import type { Metrics } from '../admin/metrics.js';
import { gatewayOf } from '../gateway/conn-id.js';
import type { HeldPublishes, AckWait } from './held-publishes.js';
import type { Journal } from './journal.js';
import type { QueuedMessage } from './message-queue.js';
import type { Session } from './session.js';

/** How long a publisher that overflows a queue stops being read (flow control). */
const THROTTLE_MS = 20;

/** What the window needs of its shard. */
export interface WindowHost {
  readonly gateways: ActorRef<GatewayMsg>[];
  readonly sessions: Map<string, Session>;
  readonly metrics: Metrics;
  readonly journal: Journal;
  /** queueFullPolicy hold (null: drop). Read when used: the shard makes it after the window. */
  readonly held: HeldPublishes | null;
  readonly maxInflight: number;
  readonly storeKind: string;
}

export class OutboundWindow {
  /** While one publish is matched: its live deliveries per gateway (null outside `group`). */
  private grouped: Map<number, DeliverItem[]> | null = null;
  private groupMsg: AppMessage | null = null;
  /** Publishers paused for flow control, until when (ms). */
  private readonly throttled = new Map<number, number>();

  constructor(private readonly h: WindowHost) {}

  /** Runs `deliver` (which enqueues `msg` for its recipients), then sends its live deliveries, one message per gateway. */
  group(msg: AppMessage, deliver: () => void): void {
    const group = (this.grouped = new Map());
    this.groupMsg = msg;
    try {
      deliver();
    } finally {
      this.grouped = null;
      this.groupMsg = null;
    }
    for (const [gw, items] of group) {
      const ref = this.h.gateways[gw]!;
      if (items.length > 1) ref.tell({ t: 'deliverGroup', msg, items });
      else {
        const it = items[0]!;
        ref.tell({ t: 'deliver', connId: it.connId, out: [{ k: 'pub', msg, qos: it.qos, packetId: it.packetId, dup: false, retain: it.retain, subIds: it.subIds }] });
      }
    }
  }

  /** Resend unacknowledged messages in order with DUP set [MQTT-4.4.0-1], then the queue. */
  resume(s: Session): void {
    const gw = this.h.gateways[s.binding!.gw]!;
    const connId = s.binding!.connId;
    // The size first: reading `inflight` makes the window, and most sessions have none.
    if (s.inflightSize > 0) {
      for (const [packetId, e] of s.inflight.entriesInOrder()) {
        if (e.state === 'pubrel') gw.tell({ t: 'deliver', connId, out: [{ k: 'pubrel', packetId }] });
        else
          gw.tell({
            t: 'deliver',
            connId,
            out: [{ k: 'pub', msg: e.msg, qos: e.qos, packetId, dup: true, retain: e.retain, subIds: e.subIds }],
          });
      }
    }
    this.pump(s);
  }

  /** A live delivery of a new message: grouped while a publish is matched, else sent at once. */
  private emit(gw: number, connId: number, msg: AppMessage, qos: QoS, packetId: number, retain: boolean, subIds: number[] | undefined): void {
    if (this.grouped && msg === this.groupMsg) {
      let items = this.grouped.get(gw);
      if (!items) this.grouped.set(gw, (items = []));
      const it: DeliverItem = { connId, qos, packetId, retain };
      if (subIds !== undefined) it.subIds = subIds;
      items.push(it);
      return;
    }
    this.h.gateways[gw]!.tell({ t: 'deliver', connId, out: [{ k: 'pub', msg, qos, packetId, dup: false, retain, subIds }] });
  }

  /** `wait`: the publisher waits for its ack (queueFullPolicy hold); a copy that finds the queue full parks. */
  enqueue(s: Session, msg: AppMessage, qos: QoS, retain: boolean, subIds?: number[], share?: string, wait?: AckWait): void {
    if (msg.props?.expiresAt !== undefined && msg.props.expiresAt <= Date.now()) {
      this.h.metrics.inc('messages_dropped_total{reason="expired"}');
      return;
    }
    // Messages parked for this session go first: a QoS 1/2 message parks behind them.
    const behind = qos > 0 && this.h.held !== null && this.h.held.has(s);
    if (s.binding && !s.connackPending) {
      if (qos === 0) {
        this.emit(s.binding.gw, s.binding.connId, msg, 0, 0, retain, subIds);
        return;
      }
      if (s.queueSize === 0 && s.inflightSize < this.window(s) && !behind) {
        this.send(s, share === undefined ? { msg, qos, retain, subIds } : { msg, qos, retain, subIds, share });
        return;
      }
    } else if (s.evicted && qos > 0) {
      // Offline with its messages on disk: this one goes there too, bounded the same way.
      const q: QueuedMessage = share === undefined ? { msg, qos, retain, subIds } : { msg, qos, retain, subIds, share };
      if (behind || s.evicted.queued >= s.queueLimit) this.overflow(s, q, wait, behind);
      else this.h.journal.queuedEvicted(s, q);
      return;
    } else if (qos === 0 && !s.binding) {
      // QoS 0 messages are not kept for offline sessions (the spec allows either); a
      // session about to get its CONNACK keeps them, it is online.
      this.h.metrics.inc('messages_dropped_total{reason="offline_qos0"}');
      return;
    }
    const q: QueuedMessage = { msg, qos, retain, subIds };
    if (share !== undefined) q.share = share;
    if (behind || !s.queue.push(q)) return this.overflow(s, q, wait, behind);
    this.h.journal.queued(s, q);
  }

  /**
   * A message the session's queue cannot take now. With queueFullPolicy hold, a QoS 1/2 one
   * whose publisher waits for its ack parks (so does any behind already parked ones, to
   * keep the order); anything else, or beyond limits.maxHeldPerSession, is dropped and
   * counted as before, and its publisher throttled.
   */
  private overflow(s: Session, q: QueuedMessage, wait: AckWait | undefined, behind: boolean): void {
    if ((wait !== undefined || behind) && q.qos > 0 && this.h.held!.park(s, q, wait)) return;
    this.h.metrics.inc('messages_dropped_total{reason="queue_full"}');
    this.throttle(q.msg);
  }

  /**
   * A parked message enters the session's queue (held-publishes.ts), or goes out at once
   * when the queue is empty and the window has room (limits.maxQueuedMessages may be 0):
   * false when there is no room.
   */
  admit(s: Session, q: QueuedMessage): boolean {
    if (s.binding && !s.connackPending && s.queueSize === 0 && s.inflightSize < this.window(s)) {
      this.send(s, q);
      return true;
    }
    if (s.evicted) {
      if (s.evicted.queued >= s.queueLimit) return false;
      this.h.journal.queuedEvicted(s, q);
      return true;
    }
    if (!s.queue.push(q)) return false;
    this.h.journal.queued(s, q);
    return true;
  }

  /**
   * Flow control towards publishers: one whose messages overflow a session's queue (the
   * limit drops them, counted) has its socket paused for a moment, so a fast publisher
   * slows to what the slow subscriber takes instead of losing more. At most one notice
   * per publisher per pause.
   */
  private throttle(msg: AppMessage): void {
    const connId = msg.originConn;
    if (connId === undefined) return;
    const now = Date.now();
    if ((this.throttled.get(connId) ?? 0) > now) return;
    if (this.throttled.size > 10_000) for (const [id, until] of this.throttled) if (until <= now) this.throttled.delete(id);
    this.throttled.set(connId, now + THROTTLE_MS);
    this.h.gateways[gatewayOf(connId)]!.tell({ t: 'throttle', connId, ms: THROTTLE_MS });
  }

  private window(s: Session): number {
    return Math.min(this.h.maxInflight, s.receiveMaximum);
  }

  private send(s: Session, q: QueuedMessage): void {
    const e = { msg: q.msg, qos: q.qos, retain: q.retain, subIds: q.subIds, share: q.share, state: 'publish' as const, seq: q.seq, body: q.body };
    const packetId = s.inflight.add(e);
    this.h.journal.sent(s, e, packetId);
    if (q.qos === 2 && e.seq !== undefined && this.h.storeKind !== 'memory') {
      // A stored QoS 2 PUBLISH goes out once its packet id is committed: a client that
      // PUBRECs it keeps the id until PUBREL, so after a crash the broker must resend it
      // under that id, never give the id to another message [MQTT-4.3.3-2][MQTT-2.2.1-3].
      const { gw, connId } = s.binding!;
      this.h.journal.afterCommit(() => {
        if (s.isBoundTo(connId) && s.inflight.get(packetId) === e)
          this.h.gateways[gw]!.tell({ t: 'deliver', connId, out: [{ k: 'pub', msg: q.msg, qos: 2, packetId, dup: false, retain: q.retain, subIds: q.subIds }] });
      });
      return;
    }
    this.emit(s.binding!.gw, s.binding!.connId, q.msg, q.qos, packetId, q.retain, q.subIds);
  }

  pump(s: Session): void {
    do {
      while (s.binding && s.queueSize > 0 && s.inflightSize < this.window(s)) {
        const q = s.queue.shift()!;
        if (q.msg.props?.expiresAt !== undefined && q.msg.props.expiresAt <= Date.now()) {
          this.h.metrics.inc('messages_dropped_total{reason="expired"}');
          this.h.journal.done(s, q);
          continue;
        }
        if (q.qos === 0) {
          this.h.gateways[s.binding.gw]!.tell({
            t: 'deliver',
            connId: s.binding.connId,
            out: [{ k: 'pub', msg: q.msg, qos: 0, packetId: 0, dup: false, retain: q.retain, subIds: q.subIds }],
          });
        } else this.send(s, q);
      }
      // Room in the queue: parked messages enter it (their publishers get their acks), and
      // go out at once when the window has room too.
    } while (this.h.held?.refill(s));
  }

  ack(m: Extract<ShardMsg, { t: 'ack' }>): void {
    const s = this.h.sessions.get(m.clientId);
    if (!s || !s.isBoundTo(m.connId)) return;
    const e = s.inflight.get(m.packetId);
    if (!e) return;
    if (m.kind === 'pubrec' && e.qos === 2) {
      // QoS 2, second step: keep the id until PUBCOMP [MQTT-4.3.3-3].
      e.state = 'pubrel';
      this.h.journal.released(s, e, m.packetId);
      const gw = this.h.gateways[s.binding!.gw]!;
      const pubrel = (): void => {
        if (s.isBoundTo(m.connId) && s.inflight.get(m.packetId) === e) gw.tell({ t: 'deliver', connId: m.connId, out: [{ k: 'pubrel', packetId: m.packetId }] });
      };
      // A stored session's PUBREL goes once the new state is durable; a connection gone by
      // then gets it on resume.
      if (e.seq === undefined) pubrel();
      else this.h.journal.afterCommit(pubrel);
      return;
    }
    s.inflight.delete(m.packetId);
    this.h.journal.done(s, e);
    this.pump(s);
  }
}
