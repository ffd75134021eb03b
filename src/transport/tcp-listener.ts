/**
 * MQTT over TCP with node:net. Every gateway thread accepts on one listening socket:
 * gateway 0 listens, the others `listen({ fd })` on its descriptor and the kernel spreads
 * accepted connections over the threads (Node 20 has no reusePort for net.Server).
 * Because the descriptor is shared, a per-thread listener must never be closed on its
 * own while the others live: see docs/architecture.md, "Listening from many threads".
 */
import net from 'node:net';
import type { Accept, ConnIO, ConnSink } from './connection.js';

export interface TcpListener {
  port: number;
  fd: number;
  server: net.Server;
}

export function listenTcp(opts: { host: string; port: number; fd?: number }, accept: Accept): Promise<TcpListener> {
  const server = net.createServer({ noDelay: true }, (socket) => serveSocket(socket, accept));
  return listenShared(server, opts);
}

/**
 * Listens on host:port, or on the descriptor another gateway thread bound (`fd`); resolves
 * with the port and the descriptor to hand to the other threads. Also used by the TLS
 * listener (a tls.Server is a net.Server).
 */
export function listenShared<S extends net.Server>(server: S, opts: { host: string; port: number; fd?: number }): Promise<{ server: S; port: number; fd: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      const addr = server.address();
      const handle = (server as unknown as { _handle: { fd: number } })._handle;
      resolve({ server, port: typeof addr === 'object' && addr ? addr.port : opts.port, fd: handle.fd });
    };
    if (opts.fd !== undefined) server.listen({ fd: opts.fd }, done);
    else server.listen({ host: opts.host, port: opts.port, backlog: 4096 }, done);
  });
}

/**
 * Hands an accepted (for TLS: handshaken) socket to the gateway.
 *
 * Memory: tens of thousands of idle sockets per thread, so nothing here is made per
 * connection but one small TcpIO: the socket's listeners are shared functions that find
 * the connection's sink on the socket (kSink), and the remote address is read only when
 * asked for (Node caches the peer name on the socket once read).
 */
export function serveSocket(socket: net.Socket, accept: Accept, extra?: { transport: 'tls'; certUsername?: string }): void {
  const sink = accept(extra ? new TlsIO(socket, extra.certUsername) : new TcpIO(socket));
  if (!sink) {
    socket.destroy();
    return;
  }
  (socket as SinkSocket)[kSink] = sink;
  socket.on('data', onSocketData);
  socket.on('drain', onSocketDrain);
  socket.on('error', ignore); // 'close' follows; errors are counted by the gateway as disconnects
  socket.on('close', onSocketClose);
}

const kSink = Symbol('switchboard.sink');
type SinkSocket = net.Socket & { [kSink]?: ConnSink };

function onSocketData(this: SinkSocket, chunk: Buffer): void {
  this[kSink]!.data(chunk);
}
function onSocketDrain(this: SinkSocket): void {
  this[kSink]!.drained();
}
function onSocketClose(this: SinkSocket): void {
  this[kSink]!.closed();
}
function ignore(): void {}

function destroySocket(socket: net.Socket): void {
  socket.destroy();
}

class TcpIO implements ConnIO {
  private ended = false;

  constructor(protected readonly socket: net.Socket) {}

  get transport(): 'tcp' | 'tls' {
    return 'tcp';
  }

  get certUsername(): string | undefined {
    return undefined;
  }

  get remote(): string {
    const s = this.socket;
    return s.remoteAddress === undefined ? 'unknown' : `${s.remoteAddress}:${s.remotePort}`;
  }

  write(data: Buffer): void {
    if (!this.ended) this.socket.write(data);
  }

  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.end();
    // A peer that never reads must not keep the socket half-open forever.
    setTimeout(destroySocket, 2000, this.socket).unref();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }
}

/** A TLS socket once handshaken: served like TCP, with the client certificate's username (tls.clientCertUsername). */
class TlsIO extends TcpIO {
  constructor(
    socket: net.Socket,
    private readonly certName: string | undefined,
  ) {
    super(socket);
  }

  override get transport(): 'tcp' | 'tls' {
    return 'tls';
  }

  override get certUsername(): string | undefined {
    return this.certName;
  }
}
