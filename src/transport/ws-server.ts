/**
 * MQTT over WebSocket on `/mqtt` (subprotocol `mqtt`) and the HTTP endpoints, with
 * uWebSockets.js on every gateway thread (SO_REUSEPORT spreads connections).
 * uWS hands out ArrayBuffers that are only valid during the callback, so incoming
 * data is copied before it leaves the callback.
 *
 * With `ssl` the same routes are served by an `SSLApp` (wss:// and https://). uWS cannot
 * change the certificate of a listening app (its SNI contexts would need their own routes,
 * and removing one frees what live connections still use), so a reload builds a new
 * SSLApp with the files as they are now, listens on the same port (SO_REUSEPORT), then
 * closes the old app's listen socket: new connections get the new certificate, the old
 * app keeps serving the connections it has until the broker stops.
 */
import uWS from 'uWebSockets.js';
import type { Accept, ConnIO, ConnSink } from './connection.js';

export interface HttpRoutes {
  /** Asynchronous text responses (e.g. /metrics collected from every thread). */
  get: Record<string, (reply: (status: string, contentType: string, body: string) => void) => void>;
  /** Registers further routes (files, admin API) on the app, before the 404 catch-all. */
  configure?: (app: uWS.TemplatedApp) => void;
}

export interface WsServer {
  port: number;
  close(): void;
  /** SSL only: serve new connections with the certificate files as they are now (see above). */
  reload(): Promise<void>;
}

/** SSLApp options: uWS reads the files itself. */
export interface WsSsl {
  certFile: string;
  keyFile: string;
  passphrase?: string;
}

interface UserData {
  sink?: ConnSink;
  closed: boolean;
  remote: string;
}

export async function listenWs(
  opts: { host: string; port: number; path: string; maxPayloadLength: number; ssl?: WsSsl },
  accept: Accept,
  routes: HttpRoutes,
): Promise<WsServer> {
  const ssl = opts.ssl;
  const first = await listenApp(buildApp(opts, accept, routes), opts.host, opts.port, ssl ? 'WSS/HTTPS' : 'WebSocket/HTTP');
  const port = first.port;
  let current = first;
  /** SSL apps replaced by a reload: still serving the connections they accepted. */
  const retired: Listening[] = [];
  let closed = false;
  return {
    port,
    close: () => {
      if (closed) return;
      closed = true;
      uWS.us_listen_socket_close(current.token);
      // Closes every remaining socket; required before the thread exits (a live uWS
      // handle at thread teardown aborts the process).
      current.app.close();
      for (const r of retired.splice(0)) r.app.close();
    },
    reload: async () => {
      if (!ssl) return;
      if (closed) throw new Error('listener closed');
      // Same port: SO_REUSEPORT lets both listen for the moment of the switch.
      const next = await listenApp(buildApp(opts, accept, routes), opts.host, port, 'WSS/HTTPS');
      uWS.us_listen_socket_close(current.token);
      retired.push(current);
      current = next;
    },
  };
}

interface Listening {
  app: uWS.TemplatedApp;
  token: uWS.us_listen_socket;
  port: number;
}

function listenApp(app: uWS.TemplatedApp, host: string, port: number, what: string): Promise<Listening> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (token) => {
      if (!token) {
        app.close();
        reject(new Error(`${what} listener could not bind ${host}:${port}`));
        return;
      }
      resolve({ app, token, port: uWS.us_socket_local_port(token) });
    });
  });
}

/**
 * A WebSocket connection as the gateway sees it: one small object per connection (methods
 * on the prototype, no closures); its state (closed, remote) is the socket's UserData.
 */
class WsIO implements ConnIO {
  constructor(
    private readonly ws: uWS.WebSocket<UserData>,
    readonly transport: 'ws' | 'wss',
  ) {}

  get remote(): string {
    return this.ws.getUserData().remote;
  }

  write(buf: Buffer): void {
    if (!this.ws.getUserData().closed) this.ws.send(buf, true, false);
  }

  bufferedBytes(): number {
    return this.ws.getUserData().closed ? 0 : this.ws.getBufferedAmount();
  }

  end(): void {
    const data = this.ws.getUserData();
    if (data.closed) return;
    data.closed = true;
    this.ws.end(1000);
  }

  pause(): void {}
  resume(): void {}
}

/** An App (or SSLApp) with every route: MQTT over WebSocket, the GET endpoints, the rest, 404. */
function buildApp(opts: { path: string; maxPayloadLength: number; ssl?: WsSsl }, accept: Accept, routes: HttpRoutes): uWS.TemplatedApp {
  const ssl = opts.ssl;
  const transport = ssl ? 'wss' : 'ws';
  let app: uWS.TemplatedApp;
  if (ssl) {
    // uWS reads the files when the app is made; an unusable file makes an app that
    // cannot listen, or throws.
    app = uWS.SSLApp({ cert_file_name: ssl.certFile, key_file_name: ssl.keyFile, ...(ssl.passphrase ? { passphrase: ssl.passphrase } : {}) });
  } else {
    app = uWS.App();
  }
  app.ws<UserData>(opts.path, {
    compression: uWS.DISABLED,
    maxPayloadLength: opts.maxPayloadLength,
    // Keepalive is MQTT's job (1.5 x the client's interval), not the WebSocket layer's.
    idleTimeout: 0,
    maxBackpressure: 64 * 1024 * 1024,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      const protocols = (req.getHeader('sec-websocket-protocol') || '').split(',').map((s) => s.trim());
      const chosen = protocols.find((p) => p === 'mqtt' || p === 'mqttv3.1') ?? '';
      const remote = Buffer.from(res.getRemoteAddressAsText()).toString();
      res.upgrade<UserData>(
        { closed: false, remote },
        req.getHeader('sec-websocket-key'),
        chosen,
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      const data = ws.getUserData();
      const sink = accept(new WsIO(ws, transport));
      if (!sink) {
        data.closed = true;
        ws.end(1013);
        return;
      }
      data.sink = sink;
    },
    message: (ws, message, isBinary) => {
      const sink = ws.getUserData().sink;
      if (!isBinary) return sink?.textFrame();
      // Copy: the ArrayBuffer is neutered when this callback returns.
      sink?.data(Buffer.from(new Uint8Array(message)));
    },
    drain: (ws) => ws.getUserData().sink?.drained(),
    close: (ws) => {
      const data = ws.getUserData();
      data.closed = true;
      data.sink?.closed();
    },
  });
  for (const [path, handler] of Object.entries(routes.get)) {
    app.get(path, (res) => {
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      handler((status, contentType, body) => {
        if (aborted) return;
        res.cork(() => {
          res.writeStatus(status).writeHeader('Content-Type', contentType).end(body);
        });
      });
    });
  }
  routes.configure?.(app);
  app.any('/*', (res) => {
    res.writeStatus('404 Not Found').writeHeader('Content-Type', 'text/plain').end('not found\n');
  });
  return app;
}
