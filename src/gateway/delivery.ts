/**
 * The gateway's outbound path: shard deliveries (one connection, or a fan-out encoded once
 * per shape), PUBLISH encoding with outbound Topic Aliases and the client's Maximum Packet
 * Size, and the write batching (everything queued for a socket in one turn goes in one
 * write). Split from gateway-actor.ts, which owns the connections; one thread, no
 * concurrency.
 */
import mqttPacket, { type Packet } from 'mqtt-packet';
import type { AppMessage, DeliverItem, Outbound, QoS, ShardMsg } from '../protocol/messages.js';
import { seriesByQos, type Metrics } from '../admin/metrics.js';
import { RC } from '../mqtt/reason-codes.js';
import { encodePublishFast, toPacket } from './encode.js';
import { MIN_ALIASED_TOPIC_LENGTH, OutboundTopicAliases } from './topic-aliases-out.js';
import type { Conn, CloseOptions } from './conn.js';

/** Series names per QoS, built once (hot path). */
const SENT = seriesByQos('messages_sent_total');
const SENT_BYTES = seriesByQos('payload_bytes_sent_total');
/** PUBLISHes sent with a Topic Alias: setting a new one, replacing the LRU topic's, or the alias alone. */
const ALIAS_NEW = 'topic_aliases_sent_total{kind="new"}';
const ALIAS_REPLACED = 'topic_aliases_sent_total{kind="replaced"}';
const ALIAS_REUSED = 'topic_aliases_sent_total{kind="reused"}';

/** A packet built from shard data that mqtt-packet (or the hand encoder) refused. */
export class EncodeError extends Error {
  constructor(cause: unknown) {
    // pino prints the cause's message after this one.
    super('cannot encode the packet', { cause });
  }
}

/** What the outbound path needs of its gateway. */
export interface DeliveryHost {
  readonly conns: Map<number, Conn>;
  readonly metrics: Metrics;
  readonly socketBufferHighWater: number;
  tellShard(c: Conn, m: ShardMsg): void;
  logFailure(kind: string, err: unknown, data: Record<string, unknown>): void;
  close(c: Conn, o: CloseOptions): void;
}

export class Delivery {
  /** Connections with bytes queued this turn. */
  private readonly dirty = new Set<Conn>();
  private flushScheduled = false;

  constructor(private readonly h: DeliveryHost) {}

  /** The connection is gone: nothing more is written to it. */
  forget(c: Conn): void {
    this.dirty.delete(c);
  }

  deliver(connId: number, out: Outbound[]): void {
    const c = this.h.conns.get(connId);
    if (!c || c.isClosed || c.st.phase !== 'connected') {
      // The connection went away while these were on their way. QoS 1/2 stay in the
      // session's inflight window (resent on resume, counted if the session ends); QoS 0
      // is lost here, and counted so the message accounting adds up.
      let qos0 = 0;
      for (const o of out) if (o.k === 'pub' && o.qos === 0) qos0++;
      if (qos0 > 0) this.h.metrics.inc('messages_dropped_total{reason="connection_closed"}', qos0);
      return;
    }
    // Each packet on its own: one that fails is dropped (and acknowledged to the shard),
    // the others go out.
    for (const o of out) {
      try {
        if (o.k === 'pubrel') this.write(c, { cmd: 'pubrel', messageId: o.packetId });
        else this.deliverPub(c, o.msg, o.qos, o.packetId, o.dup, o.retain, o.subIds);
      } catch (e) {
        this.dropDelivery(c, o.k === 'pub' ? o.qos : 2, o.packetId, e, o.k === 'pub' ? o.msg.topic : undefined);
      }
    }
  }

  /** A fan-out: the same message to many connections; a QoS 0 packet is encoded once per shape. */
  deliverGroup(msg: AppMessage, items: DeliverItem[]): void {
    // By (MQTT 5?, RETAIN): the four QoS 0 packets this message can become here.
    const shared: Array<Buffer | undefined> = [undefined, undefined, undefined, undefined];
    for (const it of items) {
      const c = this.h.conns.get(it.connId);
      if (!c || c.isClosed || c.st.phase !== 'connected') {
        if (it.qos === 0) this.h.metrics.inc('messages_dropped_total{reason="connection_closed"}');
        continue;
      }
      // Each recipient on its own: a delivery that fails is dropped (and acknowledged to the
      // shard), never the rest of the group.
      try {
        let pre: Buffer | undefined;
        // A client sent Topic Aliases gets bytes of its own (its map decides the alias).
        if (it.qos === 0 && it.subIds === undefined && this.aliasesFor(c, msg.topic) === undefined) {
          const k = (c.st.version === 5 ? 2 : 0) + (it.retain ? 1 : 0);
          pre = shared[k] ??= this.encodePub(c, msg, 0, 0, false, it.retain, undefined);
        }
        this.deliverPub(c, msg, it.qos, it.packetId, false, it.retain, it.subIds, pre);
      } catch (e) {
        this.dropDelivery(c, it.qos, it.packetId, e, msg.topic);
      }
    }
  }

  private deliverPub(c: Conn, msg: AppMessage, qos: QoS, packetId: number, dup: boolean, retain: boolean, subIds: number[] | undefined, pre?: Buffer): void {
    if (qos === 0 && c.io.bufferedBytes() + c.outBytes > this.h.socketBufferHighWater) {
      // A slow consumer: QoS 0 is dropped rather than buffered without bound.
      this.h.metrics.inc('messages_dropped_total{reason="slow_consumer"}');
      return;
    }
    let buf: Buffer;
    // Topic Alias: > 0 one the client knows, < 0 minus one this PUBLISH sets, 0 none.
    let alias = 0;
    const aliases = pre === undefined ? this.aliasesFor(c, msg.topic) : undefined;
    if (aliases === undefined) buf = pre ?? this.encodePub(c, msg, qos, packetId, dup, retain, subIds);
    else {
      alias = aliases.resolve(msg.topic);
      // Known: an empty Topic Name with the alias; new: the topic with it (section 3.3.2.3.4).
      buf = this.encodePub(c, msg, qos, packetId, dup, retain, subIds, Math.abs(alias), alias > 0 ? '' : msg.topic);
      if (alias < 0 && buf.length > c.st.maxPacketSizeOut) {
        // Setting an alias adds 3 bytes: never what makes a message too large to send.
        alias = 0;
        buf = this.encodePub(c, msg, qos, packetId, dup, retain, subIds);
      }
    }
    // The size of the bytes that would be written, alias or not.
    if (buf.length > c.st.maxPacketSizeOut) {
      // Too large for this client [MQTT-3.1.2-25]: discard, as if delivered.
      this.h.metrics.inc('messages_dropped_total{reason="client_max_packet_size"}');
      if (qos > 0) this.h.tellShard(c, { t: 'ack', connId: c.id, clientId: c.st.clientId, kind: 'pubcomp', packetId });
      return;
    }
    // The map learns a new alias only with the PUBLISH that tells the client, written now.
    if (alias < 0) this.h.metrics.inc(aliases!.assign(msg.topic, -alias) ? ALIAS_REPLACED : ALIAS_NEW);
    else if (alias > 0) this.h.metrics.inc(ALIAS_REUSED);
    this.writeBuf(c, buf);
    this.h.metrics.inc(SENT[qos]!);
    this.h.metrics.inc(SENT_BYTES[qos]!, msg.payload.length);
  }

  /**
   * The connection's outbound Topic Alias map when `topic` is to go by an alias: a v5 client
   * that allows them (ChannelState.topicAliasMaxOut > 0) and a topic long enough to gain
   * (MIN_ALIASED_TOPIC_LENGTH). Undefined, for everyone else, costs two comparisons.
   */
  private aliasesFor(c: Conn, topic: string): OutboundTopicAliases | undefined {
    if (c.st.topicAliasMaxOut === 0 || topic.length < MIN_ALIASED_TOPIC_LENGTH) return undefined;
    return (c.aliases ??= new OutboundTopicAliases(c.st.topicAliasMaxOut));
  }

  /**
   * Throws EncodeError when the message cannot become a PUBLISH for this client. `alias` > 0:
   * with that Topic Alias and `topic` as Topic Name (the message's, or '' for a known alias).
   */
  private encodePub(c: Conn, msg: AppMessage, qos: QoS, packetId: number, dup: boolean, retain: boolean, subIds: number[] | undefined, alias = 0, topic = msg.topic): Buffer {
    const v = c.st.version;
    const hasProps = msg.props !== undefined || (subIds !== undefined && subIds.length > 0);
    try {
      return (
        encodePublishFast(topic, msg.payload, qos, packetId, dup, retain, v === 5, hasProps, alias) ??
        mqttPacket.generate(toPacket({ k: 'pub', msg, qos, packetId, dup, retain, subIds }, v, alias, topic), { protocolVersion: v })
      );
    } catch (err) {
      throw new EncodeError(err);
    }
  }

  /**
   * Encodes now, writes at the end of the turn: many packets to one socket, one write.
   * A packet that cannot be encoded is counted and logged; the connection, which would
   * wait for it (a SUBACK, a CONNACK...), is closed, except for a PUBREL, whose message is
   * discarded at the shard like an undeliverable one. 0 when nothing was queued.
   */
  write(c: Conn, packet: Packet): number {
    let buf: Buffer;
    try {
      buf = mqttPacket.generate(packet, { protocolVersion: c.st.version });
      const props = (packet as { properties?: { reasonString?: string } }).properties;
      if (buf.length > c.st.maxPacketSizeOut && props?.reasonString !== undefined) {
        // The Reason String is optional: it is left out rather than exceed the client's
        // Maximum Packet Size [MQTT-3.4.2-2][MQTT-3.5.2-2][MQTT-3.14.2-3].
        const { reasonString: _, ...rest } = props;
        buf = mqttPacket.generate({ ...packet, properties: rest } as Packet, { protocolVersion: c.st.version });
      }
    } catch (e) {
      if (packet.cmd === 'pubrel') {
        this.dropDelivery(c, 2, packet.messageId!, new EncodeError(e));
        return 0;
      }
      this.h.metrics.inc(`internal_errors_total{op="encode_${packet.cmd}"}`);
      this.h.logFailure(`encode_${packet.cmd}`, e, { clientId: c.st.clientId });
      // The DISCONNECT that close() writes is not tried again.
      if (packet.cmd !== 'disconnect') this.h.close(c, { reason: RC.UNSPECIFIED_ERROR, why: `could not encode ${packet.cmd}` });
      return 0;
    }
    return this.writeBuf(c, buf);
  }

  /**
   * A delivery that failed (`encode_error`: the packet could not be encoded, EncodeError;
   * else a bug on the way, `internal_error`): counted as dropped and logged; a QoS 1/2
   * message is acknowledged to the shard like a discarded one (as for
   * client_max_packet_size), so that it does not stay in the session's inflight window
   * for ever. The other deliveries of the batch go on.
   */
  dropDelivery(c: Conn, qos: QoS, packetId: number, err: unknown, topic?: string): void {
    const reason = err instanceof EncodeError ? 'encode_error' : 'internal_error';
    this.h.metrics.inc(`messages_dropped_total{reason="${reason}"}`);
    if (qos > 0) this.h.tellShard(c, { t: 'ack', connId: c.id, clientId: c.st.clientId, kind: 'pubcomp', packetId });
    this.h.logFailure(reason, err, { clientId: c.st.clientId, topic });
  }

  /** Queues encoded bytes for the socket; everything queued in one turn goes out in one write. */
  private writeBuf(c: Conn, buf: Buffer): number {
    (c.out ??= []).push(buf);
    c.outBytes += buf.length;
    this.dirty.add(c);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushAll);
    }
    return buf.length;
  }

  private readonly flushAll = (): void => {
    this.flushScheduled = false;
    for (const c of this.dirty) this.flushConn(c);
    this.dirty.clear();
  };

  flushConn(c: Conn): void {
    const out = c.out;
    if (out === null || out.length === 0) return;
    const buf = out.length === 1 ? out[0]! : Buffer.concat(out, c.outBytes);
    this.h.metrics.inc('bytes_sent_total', buf.length);
    c.out = null;
    c.outBytes = 0;
    c.io.write(buf);
  }
}
