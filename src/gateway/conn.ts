/**
 * One client connection as its gateway keeps it (gateway-actor.ts; its outbound path,
 * delivery.ts).
 *
 * Memory: a gateway holds tens of thousands of mostly idle connections, so a connection is
 * one compact object: it is itself the transport's ConnSink (methods on the prototype that
 * call its gateway, no closures per connection), and what only some connections need
 * (write list, packets before CONNACK, deferred effects, outbound Topic Aliases) is made on
 * first use. It keeps the start of an incomplete packet itself (FrameState), and no parser:
 * the gateway's one mqtt-packet parser serves every connection (gateway-actor.ts, parseFrame).
 */
import type { ChannelState, Effect } from '../channel/index.js';
import type { FrameState } from '../mqtt/framer.js';
import type { Packet } from 'mqtt-packet';
import type { ConnIO, ConnSink } from '../transport/connection.js';
import type { OutboundTopicAliases } from './topic-aliases-out.js';
import { smallInt } from './conn-id.js';

const CLOCK_EPOCH = Date.now();

/**
 * Date.now() less the time this module was loaded: what Conn keeps (lastRead, opened). A
 * small integer is stored in the object itself, where a Date.now() value (past 2^31) takes
 * a 16-byte number box per field per connection (so would the difference, unless made a
 * small integer again: smallInt; past 2^30 ms, 12 days, it is a plain number). Same clock,
 * same arithmetic.
 */
export function connClock(): number {
  return smallInt(Date.now() - CLOCK_EPOCH);
}

export interface CloseOptions {
  reason?: number;
  why: string;
  counter?: string;
  notifyShard?: boolean;
  text?: string;
}

/** What a connection's transport events go to: its gateway (gateway-actor.ts). */
export interface ConnHost {
  connData(c: Conn, chunk: Buffer): void;
  connTextFrame(c: Conn): void;
  connClosed(c: Conn): void;
}

export class Conn implements ConnSink, FrameState {
  /** The start of a packet whose rest has not arrived yet (framer.ts, pushFrames). */
  pending: Buffer | null = null;
  /** Encoded packets to write at the end of this turn (delivery.ts); null when none. */
  out: Buffer[] | null = null;
  outBytes = 0;
  /** Packets the client sent after CONNECT, before CONNACK (gateway-actor.ts); null when none. */
  early: Packet[] | null = null;
  /** Closed (or closing): nothing more is read, handled or written. */
  isClosed = false;
  /**
   * An MQTT 3.1.1 publisher with limits.maxInflight acks held (it has no Receive Maximum to
   * respect): not read until one is released.
   */
  ackPaused = false;
  /**
   * Effects waiting for a restarting shard (its thread died; it comes back with its
   * sessions): applied in order once it is up, the socket paused meanwhile.
   */
  deferred: Effect[][] | undefined = undefined;
  /** v5 Topic Aliases sent to this connection (topic-aliases-out.ts); made on the first one. */
  aliases: OutboundTopicAliases | undefined = undefined;

  constructor(
    private readonly host: ConnHost,
    readonly id: number,
    readonly io: ConnIO,
    public st: ChannelState,
    /** When the last bytes were read (connClock, ms): keepalive. */
    public lastRead: number,
    /** When the socket was accepted (connClock, ms): the CONNECT timeout. */
    readonly opened: number,
  ) {}

  // ConnSink: the transport's events.
  data(chunk: Buffer): void {
    this.host.connData(this, chunk);
  }
  textFrame(): void {
    this.host.connTextFrame(this);
  }
  closed(): void {
    this.host.connClosed(this);
  }
  drained(): void {}
}
