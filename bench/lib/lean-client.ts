/**
 * A lean MQTT client for load generation: a raw net.Socket, mqtt-packet's parser for
 * everything inbound and mqtt-packet's generate() for control packets. PUBLISH and
 * PUBACK, the hot packets, are encoded by hand (byte-identical to mqtt-packet's output,
 * checked by selfCheckEncoder()) so that the generator spends its CPU on sockets rather
 * than on object churn.
 *
 * Features: CONNECT (3.1.1 = protocolVersion 4, or 5; clean session, or a persistent one
 * with `clean: false` and, in v5, a Session Expiry Interval), SUBSCRIBE,
 * PUBLISH QoS 0/1 with own packet ids and a bounded inflight window, automatic PUBACK
 * of received QoS 1, counters, and write batching: everything a client writes during
 * one turn of the event loop goes to the socket as a single write (flushed from one
 * shared setImmediate for all clients).
 */
import net from 'node:net';
import mqtt from 'mqtt-packet';
import type { Duplex } from 'node:stream';
import { WebSocket, createWebSocketStream } from 'ws';

export type ProtocolVersion = 4 | 5;
export type QoS = 0 | 1 | 2;

export interface LeanClientOptions {
  host: string;
  port: number;
  clientId: string;
  /** Username (the IM uid on Switchboard); none by default. */
  username?: string;
  /** MQTT over WebSocket on this path (subprotocol "mqtt") instead of plain TCP. */
  wsPath?: string;
  /** Source address for TCP (127.0.0.x spreads many connections over more ephemeral ports). */
  localAddress?: string;
  /** 4 = MQTT 3.1.1 (default), 5 = MQTT 5.0. */
  protocolVersion?: ProtocolVersion;
  keepalive?: number;
  /** Max unacknowledged outbound QoS 1 publishes (default 100). */
  maxInflight?: number;
  connectTimeoutMs?: number;
  /** QoS 0 publishers stop when this many bytes wait in user space + the socket (default 64 KiB). */
  highWaterBytes?: number;
  /** false: resume/keep the session (3.1.1 CleanSession=0, v5 Clean Start=0); default true. */
  clean?: boolean;
  /** v5 Session Expiry Interval in seconds (sent when > 0; 3.1.1 has none). */
  sessionExpiry?: number;
  /**
   * A slow consumer: received QoS 1/2 PUBLISHes are acknowledged at most this many per
   * second, in order (the broker's window towards it then fills); absent = at once.
   */
  ackRate?: number;
}

export interface CloseInfo {
  clientId: string;
  at: number;
  error?: string;
  /** Reason code of a DISCONNECT the server sent before closing (MQTT 5), if any. */
  serverDisconnect?: number;
}

// ---------------------------------------------------------------------------
// Hand encoders for the hot path.

function varintLength(n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4;
}

/** PUBLISH, no retain/dup, no properties (an empty property block in v5). */
export function encodePublish(topic: Buffer, payload: Buffer, qos: QoS, messageId: number, v5: boolean): Buffer {
  const rem = 2 + topic.length + (qos ? 2 : 0) + (v5 ? 1 : 0) + payload.length;
  const buf = Buffer.allocUnsafe(1 + varintLength(rem) + rem);
  let o = 0;
  buf[o++] = 0x30 | (qos << 1);
  let x = rem;
  do {
    let b = x & 0x7f;
    x >>>= 7;
    if (x) b |= 0x80;
    buf[o++] = b;
  } while (x);
  buf[o++] = topic.length >>> 8;
  buf[o++] = topic.length & 0xff;
  o += topic.copy(buf, o);
  if (qos) {
    buf[o++] = messageId >>> 8;
    buf[o++] = messageId & 0xff;
  }
  if (v5) buf[o++] = 0;
  payload.copy(buf, o);
  return buf;
}

/** PUBREC (0x50), PUBREL (0x62) or PUBCOMP (0x70) with reason Success. */
export function encodeAck(first: number, messageId: number): Buffer {
  return Buffer.from([first, 2, messageId >>> 8, messageId & 0xff]);
}

/** PUBACK with reason Success (in v5 the reason code may be omitted, as mqtt-packet does). */
export function encodePuback(messageId: number): Buffer {
  const buf = Buffer.allocUnsafe(4);
  buf[0] = 0x40;
  buf[1] = 2;
  buf[2] = messageId >>> 8;
  buf[3] = messageId & 0xff;
  return buf;
}

/** Throws if the hand encoders disagree with mqtt-packet's generate(). */
export function selfCheckEncoder(): void {
  const payloads = [Buffer.alloc(0), Buffer.alloc(64, 7), Buffer.alloc(300, 1), Buffer.alloc(20000, 2)];
  for (const protocolVersion of [4, 5] as const) {
    for (const qos of [0, 1] as const) {
      for (const payload of payloads) {
        const topic = '/bench/im/u/ü-42';
        const messageId = qos ? 65535 : undefined;
        const ref = mqtt.generate(
          { cmd: 'publish', topic, payload, qos, dup: false, retain: false, messageId } as mqtt.IPublishPacket,
          { protocolVersion },
        );
        const mine = encodePublish(Buffer.from(topic), payload, qos, messageId ?? 0, protocolVersion === 5);
        if (!ref.equals(mine)) throw new Error(`encodePublish mismatch v${protocolVersion} qos${qos} len${payload.length}`);
      }
    }
    // reasonCode 0: mqtt-packet then omits the reason code and properties, as we do.
    const ack = mqtt.generate({ cmd: 'puback', messageId: 513, reasonCode: 0 } as mqtt.IPubackPacket, { protocolVersion });
    if (!ack.equals(encodePuback(513))) throw new Error(`encodePuback mismatch v${protocolVersion}`);
  }
}

// ---------------------------------------------------------------------------
// One flush for all clients per turn of the event loop.

let dirty: LeanClient[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  const list = dirty;
  dirty = [];
  for (const c of list) c.flush();
}

function markDirty(c: LeanClient): void {
  dirty.push(c);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flushAll);
  }
}

// ---------------------------------------------------------------------------

type Pending = { resolve: (p: mqtt.Packet) => void; reject: (e: Error) => void };

export class LeanClient {
  readonly clientId: string;
  readonly opts: Required<Omit<LeanClientOptions, 'username' | 'wsPath' | 'localAddress' | 'sessionExpiry' | 'ackRate'>> &
    Pick<LeanClientOptions, 'username' | 'wsPath' | 'localAddress' | 'sessionExpiry' | 'ackRate'>;
  readonly v5: boolean;
  socket: Duplex | undefined;

  // counters
  received = 0;
  receivedQos1 = 0;
  published = 0;
  acked = 0;
  unexpectedAcks = 0;
  bytesOut = 0;

  /** Outbound QoS 1 messages awaiting PUBACK. */
  inflight = 0;
  /** The socket refused a write (write() returned false) and has not drained yet. */
  backpressured = false;

  onMessage: ((topic: string, payload: Buffer, qos: number) => void) | undefined;
  onAck: (() => void) | undefined;
  onDrain: (() => void) | undefined;
  onUnexpectedClose: ((info: CloseInfo) => void) | undefined;

  closing = false;
  closed = false;
  closeInfo: CloseInfo | undefined;
  lastError: Error | undefined;
  serverDisconnect: number | undefined;
  protocolErrors: string[] = [];

  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private queued = false;
  private readonly idsInUse = new Uint8Array(65536);
  private nextId = 1;
  private readonly waiting = new Map<number, Pending>();
  private connackWaiter: Pending | undefined;
  private parser: mqtt.Parser;
  /** ackRate: acknowledgements not sent yet ([first byte, packet id]), and the pacing timer. */
  private ackBacklog: Array<[number, number]> = [];
  private ackTimer: NodeJS.Timeout | undefined;
  private ackBudget = 0;
  private ackLast = 0;

  constructor(opts: LeanClientOptions) {
    this.opts = {
      protocolVersion: 4,
      keepalive: 60,
      maxInflight: 100,
      connectTimeoutMs: 10_000,
      highWaterBytes: 64 * 1024,
      clean: true,
      ...opts,
    };
    this.clientId = opts.clientId;
    this.v5 = this.opts.protocolVersion === 5;
    this.parser = mqtt.parser({ protocolVersion: this.opts.protocolVersion });
    this.parser.on('packet', (p) => this.handle(p));
    this.parser.on('error', (e: Error) => {
      this.protocolErrors.push(e.message);
      this.lastError = e;
      this.socket?.destroy(e);
    });
  }

  /** Opens the socket, sends CONNECT and resolves on a successful CONNACK (`sessionPresent` tells whether a session was resumed). */
  connect(): Promise<mqtt.IConnackPacket> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        fail(new Error(`connect timeout after ${this.opts.connectTimeoutMs} ms`));
        this.socket?.destroy();
      }, this.opts.connectTimeoutMs);
      const fail = (e: Error) => {
        clearTimeout(timer);
        if (this.connackWaiter) {
          this.connackWaiter = undefined;
          reject(e);
        }
      };
      this.connackWaiter = {
        resolve: (p) => {
          clearTimeout(timer);
          const ack = p as mqtt.IConnackPacket;
          const rc = (this.v5 ? ack.reasonCode : ack.returnCode) ?? 0;
          if (rc !== 0) {
            reject(new Error(`CONNACK refused, code ${rc}`));
            this.close();
          } else resolve(ack);
        },
        reject: fail,
      };
      let s: Duplex;
      let opened: string;
      if (this.opts.wsPath !== undefined) {
        // One binary WebSocket message per write; the stream adapter gives the same
        // write()/drain backpressure as a TCP socket.
        const ws = new WebSocket(`ws://${this.opts.host}:${this.opts.port}${this.opts.wsPath}`, 'mqtt', { perMessageDeflate: false });
        s = createWebSocketStream(ws);
        ws.on('open', () => s.emit('mqtt-open'));
        opened = 'mqtt-open';
      } else {
        const t = net.connect({ host: this.opts.host, port: this.opts.port, localAddress: this.opts.localAddress });
        t.setNoDelay(true);
        s = t;
        opened = 'connect';
      }
      this.socket = s;
      s.on(opened, () => {
        const connect: mqtt.IConnectPacket = {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: this.opts.protocolVersion,
          clientId: this.clientId,
          clean: this.opts.clean,
          keepalive: this.opts.keepalive,
          ...(this.opts.username !== undefined ? { username: this.opts.username } : {}),
          ...(this.v5 && this.opts.sessionExpiry ? { properties: { sessionExpiryInterval: this.opts.sessionExpiry } } : {}),
        };
        this.write(mqtt.generate(connect, { protocolVersion: this.opts.protocolVersion }));
      });
      s.on('data', (d: Buffer) => this.parser.parse(d));
      s.on('drain', () => {
        this.backpressured = false;
        const cb = this.onDrain;
        this.onDrain = undefined;
        cb?.();
      });
      s.on('error', (e) => {
        this.lastError = e;
      });
      s.on('close', () => this.handleClose());
    });
  }

  subscribe(filters: { topic: string; qos: QoS }[], timeoutMs = 10_000): Promise<number[]> {
    const id = this.allocId();
    if (id === 0) return Promise.reject(new Error('no free packet id'));
    const packet: mqtt.ISubscribePacket = { cmd: 'subscribe', messageId: id, subscriptions: filters };
    return new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`SUBACK timeout after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (p) => {
          clearTimeout(timer);
          resolve(((p as mqtt.ISubackPacket).granted as number[]).map((g) => (typeof g === 'number' ? g : 0x80)));
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.write(mqtt.generate(packet, { protocolVersion: this.opts.protocolVersion }));
    });
  }

  /** True while a QoS 0 publisher may add more data without running ahead of the socket. */
  canSendQos0(): boolean {
    if (this.closed || this.backpressured) return false;
    return this.pendingBytes + (this.socket?.writableLength ?? 0) < this.opts.highWaterBytes;
  }

  /** True while the QoS 1 window has room. */
  canSendQos1(): boolean {
    return !this.closed && this.inflight < this.opts.maxInflight;
  }

  /**
   * Publishes; `topic` is the UTF-8 encoded topic (encode once, reuse). Returns false
   * (and sends nothing) when a QoS 1 window is full or no packet id is free.
   */
  publish(topic: Buffer, payload: Buffer, qos: QoS): boolean {
    if (this.closed) return false;
    let id = 0;
    if (qos > 0) {
      if (this.inflight >= this.opts.maxInflight) return false;
      id = this.allocId();
      if (id === 0) return false;
      this.inflight++;
    }
    this.published++;
    this.write(encodePublish(topic, payload, qos, id, this.v5));
    return true;
  }

  /** Sends DISCONNECT, ends the socket and resolves once it is closed (destroyed after timeoutMs). */
  disconnect(timeoutMs = 3000): Promise<void> {
    const s = this.socket;
    if (!s || this.closed) return Promise.resolve();
    this.closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        s.destroy();
      }, timeoutMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      // A paced consumer (ackRate) acknowledges what it got before it goes: the broker would
      // count those messages as undelivered when the session ends.
      for (const [f, id] of this.ackBacklog.splice(0)) this.write(f === 0x40 ? encodePuback(id) : encodeAck(f, id));
      this.write(mqtt.generate({ cmd: 'disconnect' } as mqtt.IDisconnectPacket, { protocolVersion: this.opts.protocolVersion }));
      this.flush();
      s.end();
    });
  }

  /** Immediate close without DISCONNECT. */
  close(): void {
    this.closing = true;
    this.socket?.destroy();
  }

  write(buf: Buffer): void {
    if (this.closed) return;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (!this.queued) {
      this.queued = true;
      markDirty(this);
    }
  }

  /** Writes everything queued this turn as one socket write. */
  flush(): void {
    this.queued = false;
    const s = this.socket;
    if (this.pending.length === 0 || !s || this.closed || s.destroyed) {
      this.pending = [];
      this.pendingBytes = 0;
      return;
    }
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.bytesOut += data.length;
    this.pending = [];
    this.pendingBytes = 0;
    if (!s.write(data)) this.backpressured = true;
  }

  private allocId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.nextId;
      this.nextId = id === 65535 ? 1 : id + 1;
      if (!this.idsInUse[id]) {
        this.idsInUse[id] = 1;
        return id;
      }
    }
    return 0;
  }

  private handle(p: mqtt.Packet): void {
    switch (p.cmd) {
      case 'publish': {
        this.received++;
        if (p.qos === 1) {
          this.receivedQos1++;
          this.ack(0x40, p.messageId!);
        } else if (p.qos === 2) {
          // Method "deliver on PUBLISH": PUBREC now, PUBCOMP when the PUBREL comes.
          this.receivedQos1++;
          this.ack(0x50, p.messageId!);
        }
        this.onMessage?.(p.topic, p.payload as Buffer, p.qos);
        return;
      }
      case 'pubrec': {
        // Our QoS 2 publish, step 2: release it (the id stays in use until PUBCOMP).
        if (this.idsInUse[p.messageId!]) this.write(encodeAck(0x62, p.messageId!));
        else this.unexpectedAcks++;
        return;
      }
      case 'pubrel':
        this.write(encodeAck(0x70, p.messageId!));
        return;
      case 'pubcomp':
      case 'puback': {
        const id = p.messageId!;
        if (this.idsInUse[id] && !this.waiting.has(id)) {
          this.idsInUse[id] = 0;
          this.inflight--;
          this.acked++;
          if (p.reasonCode !== undefined && p.reasonCode >= 0x80) this.protocolErrors.push(`PUBACK reason ${p.reasonCode}`);
          this.onAck?.();
        } else {
          this.unexpectedAcks++;
        }
        return;
      }
      case 'suback': {
        const w = this.waiting.get(p.messageId!);
        if (w) {
          this.waiting.delete(p.messageId!);
          this.idsInUse[p.messageId!] = 0;
          w.resolve(p);
        }
        return;
      }
      case 'connack': {
        const w = this.connackWaiter;
        this.connackWaiter = undefined;
        w?.resolve(p);
        return;
      }
      case 'disconnect':
        this.serverDisconnect = p.reasonCode ?? 0;
        return;
      case 'pingresp':
        return;
      default:
        this.protocolErrors.push(`unexpected ${p.cmd}`);
    }
  }

  /** PUBACK (0x40) or PUBREC (0x50) for a received PUBLISH: now, or paced (ackRate). */
  private ack(first: number, messageId: number): void {
    const rate = this.opts.ackRate;
    if (rate === undefined) {
      this.write(first === 0x40 ? encodePuback(messageId) : encodeAck(first, messageId));
      return;
    }
    this.ackBacklog.push([first, messageId]);
    if (this.ackTimer) return;
    this.ackLast = performance.now();
    this.ackBudget = 0;
    this.ackTimer = setInterval(() => {
      const now = performance.now();
      // At most 100 ms of credit: a late timer (a busy generator) does not lower the rate,
      // and an idle consumer does not save up a long burst.
      this.ackBudget = Math.min(this.ackBudget + ((now - this.ackLast) / 1000) * rate, Math.max(1, rate / 10));
      this.ackLast = now;
      while (this.ackBudget >= 1 && this.ackBacklog.length > 0) {
        const [f, id] = this.ackBacklog.shift()!;
        this.write(f === 0x40 ? encodePuback(id) : encodeAck(f, id));
        this.ackBudget--;
      }
      if (this.ackBacklog.length === 0 || this.closed) {
        clearInterval(this.ackTimer);
        this.ackTimer = undefined;
      }
    }, 5);
  }

  private handleClose(): void {
    clearInterval(this.ackTimer);
    this.ackTimer = undefined;
    this.closed = true;
    this.pending = [];
    this.pendingBytes = 0;
    const err = this.lastError ?? new Error('socket closed');
    this.connackWaiter?.reject(err);
    this.connackWaiter = undefined;
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
    if (!this.closing) {
      const info: CloseInfo = { clientId: this.clientId, at: Date.now() };
      if (this.lastError) info.error = this.lastError.message;
      if (this.serverDisconnect !== undefined) info.serverDisconnect = this.serverDisconnect;
      this.closeInfo = info;
      this.onUnexpectedClose?.(info);
    }
  }
}
