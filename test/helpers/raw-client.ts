/**
 * A tiny MQTT client with packet-level control for integration tests: a TCP socket
 * (node:net) or a WebSocket (ws, subprotocol `mqtt`) plus mqtt-packet's parser and
 * generator. Nothing happens behind the test's back: no pings, no acks, no retries.
 *
 *   const c = await RawClient.open(b.tcpUrl, 5);
 *   const connack = await c.connect({ clientId: 'x', properties: { sessionExpiryInterval: 60 } });
 *   c.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a/#', qos: 1 }] });
 *   const suback = await c.next('suback');
 *   c.destroy();
 */
import net from 'node:net';
import mqttPacket, { type IConnackPacket, type IConnectPacket, type Packet, type PacketCmd } from 'mqtt-packet';
import WebSocket from 'ws';

export type Version = 3 | 4 | 5;
type PacketOf<C extends PacketCmd> = Extract<Packet, { cmd: C }>;

interface Waiter {
  cmd?: PacketCmd;
  resolve: (p: Packet) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export class RawClient {
  /** Every packet received and not yet taken by next(), in arrival order. */
  readonly inbox: Packet[] = [];
  /** Every packet received, taken or not. */
  readonly received: Packet[] = [];
  /** Resolves when the connection is closed (by either side). */
  readonly closed: Promise<void>;
  isClosed = false;
  private readonly waiters: Waiter[] = [];
  private readonly parser: ReturnType<typeof mqttPacket.parser>;
  private parseError?: Error;

  private constructor(
    readonly version: Version,
    private readonly writeFn: (buf: Buffer) => void,
    private readonly destroyFn: () => void,
    onData: (cb: (buf: Buffer) => void) => void,
    onClose: (cb: () => void) => void,
  ) {
    this.parser = mqttPacket.parser({ protocolVersion: version });
    this.parser.on('packet', (p: Packet) => this.onPacket(p));
    this.parser.on('error', (err: Error) => {
      this.parseError = err;
      this.failWaiters(err);
    });
    onData((buf) => this.parser.parse(buf));
    this.closed = new Promise((resolve) => {
      onClose(() => {
        this.isClosed = true;
        this.failWaiters(new Error('connection closed'));
        resolve();
      });
    });
  }

  /** Opens a connection to `mqtt://host:port` or `ws://host:port/path`; no CONNECT yet. */
  static open(url: string, version: Version = 4): Promise<RawClient> {
    const u = new URL(url);
    if (u.protocol === 'mqtt:' || u.protocol === 'tcp:') {
      return new Promise((resolve, reject) => {
        const socket = net.connect({ host: u.hostname, port: Number(u.port) });
        socket.setNoDelay(true);
        socket.once('error', reject);
        socket.once('connect', () => {
          socket.off('error', reject);
          socket.on('error', () => {}); // 'close' follows
          resolve(
            new RawClient(
              version,
              (buf) => {
                if (!socket.destroyed) socket.write(buf);
              },
              () => socket.destroy(),
              (cb) => socket.on('data', cb),
              (cb) => socket.on('close', cb),
            ),
          );
        });
      });
    }
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, 'mqtt');
      ws.binaryType = 'nodebuffer';
      ws.once('error', reject);
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => {});
        resolve(
          new RawClient(
            version,
            (buf) => {
              if (ws.readyState === WebSocket.OPEN) ws.send(buf);
            },
            () => ws.terminate(),
            (cb) => ws.on('message', (data: Buffer) => cb(data)),
            (cb) => ws.on('close', cb),
          ),
        );
      });
    });
  }

  /** Sends CONNECT (defaults: clean, keepalive 0) and waits for CONNACK. */
  async connect(opts: Partial<IConnectPacket> = {}, timeoutMs = 3000): Promise<IConnackPacket> {
    this.send({
      cmd: 'connect',
      protocolId: this.version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: this.version,
      clean: true,
      keepalive: 0,
      clientId: '',
      ...opts,
    } as IConnectPacket);
    return this.next('connack', timeoutMs);
  }

  send(p: Packet): void {
    this.writeFn(mqttPacket.generate(p, { protocolVersion: this.version }));
  }

  /** Sends raw bytes (malformed packets and the like). */
  sendBytes(buf: Buffer): void {
    this.writeFn(buf);
  }

  /**
   * The next received packet (of type `cmd` when given; packets of other types stay in
   * the inbox for later calls). Rejects after `timeoutMs` or when the connection closes.
   */
  next<C extends PacketCmd>(cmd: C, timeoutMs?: number): Promise<PacketOf<C>>;
  next(cmd?: undefined, timeoutMs?: number): Promise<Packet>;
  next(cmd?: PacketCmd, timeoutMs = 2000): Promise<Packet> {
    const i = this.inbox.findIndex((p) => cmd === undefined || p.cmd === cmd);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    if (this.parseError) return Promise.reject(this.parseError);
    if (this.isClosed) return Promise.reject(new Error(`connection closed while waiting for ${cmd ?? 'a packet'}`));
    return new Promise((resolve, reject) => {
      const w: Waiter = {
        cmd,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`timeout after ${timeoutMs} ms waiting for ${cmd ?? 'a packet'}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** Waits `ms` and returns the packets (of type `cmd`, when given) that arrived meanwhile. */
  async collect(ms: number, cmd?: PacketCmd): Promise<Packet[]> {
    await new Promise((r) => setTimeout(r, ms));
    const out: Packet[] = [];
    for (let i = 0; i < this.inbox.length; ) {
      if (cmd === undefined || this.inbox[i]!.cmd === cmd) out.push(...this.inbox.splice(i, 1));
      else i++;
    }
    return out;
  }

  /** Resolves true if the connection closes within `ms`, false otherwise. */
  async closesWithin(ms: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      this.closed.then(() => true),
      new Promise<boolean>((res) => (timer = setTimeout(() => res(false), ms))),
    ]);
    clearTimeout(timer);
    return r;
  }

  /** Sends DISCONNECT and closes the socket after it was written. */
  async disconnect(p: Partial<Extract<Packet, { cmd: 'disconnect' }>> = {}): Promise<void> {
    if (this.isClosed) return;
    this.send({ cmd: 'disconnect', ...p } as Packet);
    // The broker closes on DISCONNECT; do not wait forever if it does not.
    if (!(await this.closesWithin(1000))) this.destroy();
    await this.closed;
  }

  /** Abrupt close: no DISCONNECT (the broker sees a lost connection). */
  destroy(): void {
    this.destroyFn();
  }

  private onPacket(p: Packet): void {
    this.received.push(p);
    const i = this.waiters.findIndex((w) => w.cmd === undefined || w.cmd === p.cmd);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      clearTimeout(w!.timer);
      w!.resolve(p);
      return;
    }
    this.inbox.push(p);
  }

  private failWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }
}
