/**
 * A minimal MQTT connection for holding many mostly idle subscribers (bench/lib/conn-worker.ts)
 * and for the one publisher of the conns scenario.
 *
 * Smaller per connection than LeanClient (which keeps a 64 KiB packet-id table and an
 * mqtt-packet parser per client): a socket, a few fields and a hand-written parser for the
 * packets a client receives (CONNACK, SUBACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP,
 * PINGRESP, DISCONNECT). CONNECT, SUBSCRIBE and the publisher's PUBLISH are encoded with
 * mqtt-packet (once per connection or per push, not on a hot path). Receives QoS 0, 1
 * and 2 (answers PUBACK, PUBREC/PUBCOMP), publishes QoS 0, 1 and 2.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt-packet';

export type MiniQoS = 0 | 1 | 2;

/** Wall-clock time in ms with sub-ms resolution, comparable across processes on one machine. */
export const epochNow = (): number => performance.timeOrigin + performance.now();

export interface MiniConnOptions {
  host: string;
  port: number;
  /** Source address to bind (omit: no bind, the kernel chooses). */
  localAddress?: string;
  clientId: string;
  protocolVersion: 4 | 5;
  keepalive: number;
}

type Waiter = { resolve: (body: Buffer) => void; reject: (e: Error) => void };

const PINGREQ = Buffer.from([0xc0, 0x00]);
/**
 * Every socket of a process reads into this one buffer (net.connect's `onread`): no Buffer
 * per read and no stream 'data' event, which at 100,000 receipts per push is a good part
 * of a conn-worker's CPU. Bytes in it are valid only during the callback: a partial
 * packet is copied (`rest`), and so is the body of anything awaited.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);
const DISCONNECT = Buffer.from([0xe0, 0x00]);

function ack(type: number, id: number): Buffer {
  return Buffer.from([type, 2, id >>> 8, id & 0xff]);
}

/** Encodes a SUBSCRIBE (packet id 1); cache it, it is the same for many clients. */
export function encodeSubscribe(filters: string[], qos: MiniQoS, protocolVersion: 4 | 5): Buffer {
  return mqtt.generate(
    { cmd: 'subscribe', messageId: 1, subscriptions: filters.map((topic) => ({ topic, qos })) } as mqtt.ISubscribePacket,
    { protocolVersion },
  );
}

export class MiniConn {
  socket: net.Socket | undefined;
  closed = false;
  /** close() or disconnect() was called: a close is not unexpected. */
  closing = false;
  /** Why the socket ended, if it ended with an error. */
  error: string | undefined;
  /** Reason code of a DISCONNECT sent by the server. */
  serverDisconnect: number | undefined;
  protocolError: string | undefined;

  /** A PUBLISH arrived; `at` = epochNow() when its bytes were read. */
  onPublish: ((payload: Buffer, qos: number, at: number) => void) | undefined;
  onClose: ((unexpected: boolean) => void) | undefined;

  private rest: Buffer | undefined;
  /** Pending requests by (packet type << 16 | packet id): CONNACK is (2 << 16). */
  private waiters: Map<number, Waiter> | undefined;
  private nextId = 1;

  constructor(readonly opts: MiniConnOptions) {}

  /** Opens the socket, sends CONNECT (clean session), resolves on CONNACK 0. */
  connect(): Promise<void> {
    const o = this.opts;
    const onread = {
      buffer: READ_BUFFER,
      callback: (n: number, buf: Uint8Array): boolean => {
        this.onData((buf as Buffer).subarray(0, n));
        return true;
      },
    };
    const s = net.connect(o.localAddress ? { host: o.host, port: o.port, localAddress: o.localAddress, onread } : { host: o.host, port: o.port, onread });
    this.socket = s;
    s.setNoDelay(true);
    s.on('error', (e) => {
      this.error ??= e.message;
    });
    s.on('close', () => this.handleClose());
    const packet = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: o.protocolVersion, clientId: o.clientId, clean: true, keepalive: o.keepalive };
    s.write(mqtt.generate(packet as mqtt.IConnectPacket, { protocolVersion: o.protocolVersion }));
    return this.await(2 << 16).then((body) => {
      const rc = body[1] ?? 0;
      if (rc !== 0) {
        this.close();
        throw new Error(`CONNACK refused, code 0x${rc.toString(16)}`);
      }
    });
  }

  /** Sends an encoded SUBSCRIBE with packet id 1 (encodeSubscribe) and resolves with the granted codes. */
  subscribeEncoded(encoded: Buffer): Promise<number[]> {
    this.write(encoded);
    return this.await((9 << 16) | 1).then((body) => {
      let p = 2;
      if (this.opts.protocolVersion === 5) p = skipProperties(body, p);
      return Array.from(body.subarray(p));
    });
  }

  /** Publishes; resolves when written (QoS 0), on PUBACK (QoS 1) or on PUBCOMP (QoS 2). */
  publish(topic: string, payload: Buffer, qos: MiniQoS): Promise<void> {
    const v = this.opts.protocolVersion;
    if (qos === 0) {
      this.write(mqtt.generate({ cmd: 'publish', topic, payload, qos, dup: false, retain: false } as mqtt.IPublishPacket, { protocolVersion: v }));
      return Promise.resolve();
    }
    const id = this.nextId;
    this.nextId = id === 65535 ? 1 : id + 1;
    const done = this.await(((qos === 1 ? 4 : 7) << 16) | id).then((body) => {
      if (v === 5 && body.length > 2 && body[2]! >= 0x80) throw new Error(`publish refused, reason 0x${body[2]!.toString(16)}`);
    });
    this.write(mqtt.generate({ cmd: 'publish', topic, payload, qos, messageId: id, dup: false, retain: false } as mqtt.IPublishPacket, { protocolVersion: v }));
    return done;
  }

  ping(): void {
    this.write(PINGREQ);
  }

  /**
   * Sends DISCONNECT and lets the broker close the connection (so that the broker's side,
   * not the client's port, goes through TIME_WAIT); destroys the socket after graceMs.
   */
  disconnect(graceMs = 3000): Promise<void> {
    const s = this.socket;
    this.closing = true;
    if (!s || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => s.destroy(), graceMs);
      s.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      s.write(DISCONNECT);
    });
  }

  /** Immediate close without DISCONNECT. */
  close(reason?: string): void {
    this.closing = true;
    if (reason) this.error ??= reason;
    this.socket?.destroy();
  }

  private write(b: Buffer): void {
    if (!this.closed) this.socket?.write(b);
  }

  private await(key: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error(this.error ?? 'socket closed'));
    return new Promise((resolve, reject) => {
      (this.waiters ??= new Map()).set(key, { resolve, reject });
    });
  }

  private settle(key: number, body: Buffer): void {
    const w = this.waiters?.get(key);
    if (!w) return;
    this.waiters!.delete(key);
    // The body lives in READ_BUFFER: the waiter runs later.
    w.resolve(Buffer.from(body));
  }

  private onData(d: Buffer): void {
    const at = epochNow();
    let buf = d;
    if (this.rest) {
      buf = Buffer.concat([this.rest, d]);
      this.rest = undefined;
    }
    let o = 0;
    while (buf.length - o >= 2) {
      // Remaining length: 1 to 4 bytes of 7 bits, least significant first.
      let len = 0;
      let mul = 1;
      let i = o + 1;
      let complete = false;
      for (let n = 0; n < 4 && i < buf.length; n++) {
        const b = buf[i++]!;
        len += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
        if (n === 3) return this.fail('malformed remaining length');
      }
      if (!complete || buf.length - i < len) break;
      this.handle(buf[o]!, buf.subarray(i, i + len), at);
      if (this.closed) return;
      o = i + len;
    }
    if (o < buf.length) this.rest = Buffer.from(buf.subarray(o));
  }

  private handle(header: number, body: Buffer, at: number): void {
    switch (header >> 4) {
      case 3: {
        // PUBLISH: topic, packet id (QoS > 0), properties (v5), payload.
        const qos = (header >> 1) & 3;
        let p = 2 + body.readUInt16BE(0);
        let id = 0;
        if (qos > 0) {
          id = body.readUInt16BE(p);
          p += 2;
        }
        if (this.opts.protocolVersion === 5) p = skipProperties(body, p);
        if (qos === 1) this.write(ack(0x40, id));
        else if (qos === 2) this.write(ack(0x50, id));
        this.onPublish?.(body.subarray(p), qos, at);
        return;
      }
      case 2:
        return this.settle(2 << 16, body);
      case 9:
        return this.settle((9 << 16) | body.readUInt16BE(0), body);
      case 4:
        return this.settle((4 << 16) | body.readUInt16BE(0), body);
      case 5: {
        const id = body.readUInt16BE(0);
        if (this.opts.protocolVersion === 5 && body.length > 2 && body[2]! >= 0x80) return this.settle((7 << 16) | id, body);
        this.write(ack(0x62, id));
        return;
      }
      case 6:
        this.write(ack(0x70, body.readUInt16BE(0)));
        return;
      case 7:
        return this.settle((7 << 16) | body.readUInt16BE(0), body);
      case 13:
        return;
      case 14:
        this.serverDisconnect = body[0] ?? 0;
        return;
      default:
        this.fail(`unexpected packet type ${header >> 4}`);
    }
  }

  private fail(msg: string): void {
    this.protocolError ??= msg;
    this.error ??= msg;
    this.socket?.destroy();
  }

  private handleClose(): void {
    this.closed = true;
    this.rest = undefined;
    if (this.waiters) {
      const e = new Error(this.error ?? 'socket closed');
      for (const w of this.waiters.values()) w.reject(e);
      this.waiters = undefined;
    }
    this.onClose?.(!this.closing);
  }
}

/** Skips an MQTT 5 property block (varint length + properties) starting at p. */
function skipProperties(body: Buffer, p: number): number {
  let len = 0;
  let mul = 1;
  for (let n = 0; n < 4; n++) {
    const b = body[p++] ?? 0;
    len += (b & 0x7f) * mul;
    mul *= 128;
    if ((b & 0x80) === 0) break;
  }
  return p + len;
}
