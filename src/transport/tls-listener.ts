/**
 * MQTT over TLS with node:tls, on every gateway thread, sharing one listening descriptor
 * exactly like TCP (tcp-listener.ts): gateway 0 binds a tls.Server (a net.Server), the
 * others `listen({ fd })` on its descriptor; each thread runs the handshakes of the
 * connections the kernel hands it. Once a handshake completes, the socket is served like a
 * TCP one (same ConnIO, transport "tls").
 *
 * Reload (SIGHUP): `reload()` reads the files again and installs a new SecureContext with
 * `server.setSecureContext()`: handshakes from then on use the new certificate, connections
 * already established keep theirs and are not disturbed.
 */
import tls from 'node:tls';
import type { TlsConfig } from '../config/schema.js';
import type { Accept } from './connection.js';
import { listenShared, serveSocket } from './tcp-listener.js';
import { certUsername, loadSecureContext, secureContextOptions } from './tls-context.js';

export interface TlsListener {
  port: number;
  fd: number;
  server: tls.Server;
  /** Re-reads the certificate files for new handshakes; throws (keeping the old ones) if they cannot be used. */
  reload(): void;
}

export interface TlsListenOptions {
  host: string;
  port: number;
  /** The descriptor gateway 0 bound, for the other gateways. */
  fd?: number;
  tls: TlsConfig;
  /** Milliseconds a client may take to complete the handshake. */
  handshakeTimeout: number;
  /** A handshake failed (plain TCP on the TLS port, an unknown CA, no client certificate...). */
  onHandshakeError?: (err: Error) => void;
}

export async function listenTls(opts: TlsListenOptions, accept: Accept): Promise<TlsListener> {
  const t = opts.tls;
  const { material } = loadSecureContext(t);
  const wantCert = t.requestClientCert || t.requireClientCert;
  const server = tls.createServer(
    {
      ...secureContextOptions(t, material),
      noDelay: true,
      handshakeTimeout: opts.handshakeTimeout,
      requestCert: wantCert,
      // Request mode: a certificate that does not verify is ignored (certUsername needs
      // `authorized`); require mode: no verified certificate, no handshake.
      rejectUnauthorized: t.requireClientCert,
    },
    (socket) => serveSocket(socket, accept, { transport: 'tls', certUsername: t.clientCertUsername ? certUsername(socket) : undefined }),
  );
  // A failed handshake destroys that socket and nothing else.
  server.on('tlsClientError', (err) => opts.onHandshakeError?.(err));
  const l = await listenShared(server, opts);
  return {
    ...l,
    reload() {
      const { material: m } = loadSecureContext(t);
      server.setSecureContext(secureContextOptions(t, m));
    },
  };
}
