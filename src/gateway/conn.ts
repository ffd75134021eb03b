/**
 * One client connection as its gateway keeps it (gateway-actor.ts; its outbound path,
 * delivery.ts).
 */
import type mqttPacket from 'mqtt-packet';
import type { Packet } from 'mqtt-packet';
import type { ChannelState, Effect } from '../channel/index.js';
import type { Framer } from '../mqtt/framer.js';
import type { ConnIO } from '../transport/connection.js';
import type { OutboundTopicAliases } from './topic-aliases-out.js';

export interface CloseOptions {
  reason?: number;
  why: string;
  counter?: string;
  notifyShard?: boolean;
  text?: string;
}

export interface Conn {
  id: number;
  io: ConnIO;
  st: ChannelState;
  framer: Framer;
  /**
   * mqtt-packet's parser, only while needed: CONNECT, then now and then a SUBSCRIBE. A
   * live connection's publishes, acks and pings take the hand parser, so the general one
   * (about a KiB with its buffer list) is dropped after each use and made again on demand.
   */
  parser: ReturnType<typeof mqttPacket.parser> | undefined;
  out: Buffer[];
  outBytes: number;
  lastRead: number;
  opened: number;
  early: Packet[];
  closed: boolean;
  /**
   * Effects waiting for a restarting shard (its thread died; it comes back with its
   * sessions): applied in order once it is up, the socket paused meanwhile.
   */
  deferred?: Effect[][];
  /**
   * An MQTT 3.1.1 publisher with limits.maxInflight acks held (it has no Receive Maximum to
   * respect): not read until one is released.
   */
  ackPaused?: boolean;
  /** v5 Topic Aliases sent to this connection (topic-aliases-out.ts); made on the first one. */
  aliases?: OutboundTopicAliases;
}
