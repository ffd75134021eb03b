/**
 * MQTT over TCP with node:net. Every gateway thread accepts on one listening socket:
 * gateway 0 listens, the others `listen({ fd })` on its descriptor and the kernel spreads
 * accepted connections over the threads (Node 20 has no reusePort for net.Server).
 * Because the descriptor is shared, a per-thread listener must never be closed on its
 * own while the others live: see docs/architecture.md, "Listening from many threads".
 */
import net from 'node:net';
import type { Accept, ConnIO } from './connection.js';

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

/** Hands an accepted (for TLS: handshaken) socket to the gateway. */
export function serveSocket(socket: net.Socket, accept: Accept, extra?: { transport: 'tls'; certUsername?: string }): void {
  const sink = accept(wrapSocket(socket, extra));
  if (!sink) {
    socket.destroy();
    return;
  }
  socket.on('data', (chunk: Buffer) => sink.data(chunk));
  socket.on('drain', () => sink.drained());
  socket.on('error', () => {}); // 'close' follows; errors are counted by the gateway as disconnects
  socket.on('close', () => sink.closed());
}

function wrapSocket(socket: net.Socket, extra?: { transport: 'tls'; certUsername?: string }): ConnIO {
  let ended = false;
  return {
    transport: extra?.transport ?? 'tcp',
    ...(extra?.certUsername !== undefined ? { certUsername: extra.certUsername } : {}),
    remote: `${socket.remoteAddress}:${socket.remotePort}`,
    write: (data) => {
      if (!ended) socket.write(data);
    },
    bufferedBytes: () => socket.writableLength,
    end: () => {
      if (ended) return;
      ended = true;
      socket.end();
      // A peer that never reads must not keep the socket half-open forever.
      setTimeout(() => socket.destroy(), 2000).unref();
    },
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
}
