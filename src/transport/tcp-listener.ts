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
  const server = net.createServer({ noDelay: true }, (socket) => {
    const sink = accept(wrapSocket(socket));
    if (!sink) {
      socket.destroy();
      return;
    }
    socket.on('data', (chunk: Buffer) => sink.data(chunk));
    socket.on('drain', () => sink.drained());
    socket.on('error', () => {}); // 'close' follows; errors are counted by the gateway as disconnects
    socket.on('close', () => sink.closed());
  });
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

function wrapSocket(socket: net.Socket): ConnIO {
  let ended = false;
  return {
    transport: 'tcp',
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
