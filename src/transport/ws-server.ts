/**
 * MQTT over WebSocket on `/mqtt` (subprotocol `mqtt`) and the HTTP endpoints, with
 * uWebSockets.js on every gateway thread (SO_REUSEPORT spreads connections).
 * uWS hands out ArrayBuffers that are only valid during the callback, so incoming
 * data is copied before it leaves the callback.
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
}

interface UserData {
  sink?: ConnSink;
  closed: boolean;
  remote: string;
}

export function listenWs(
  opts: { host: string; port: number; path: string; maxPayloadLength: number },
  accept: Accept,
  routes: HttpRoutes,
): Promise<WsServer> {
  const app = uWS.App();
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
      const io: ConnIO = {
        transport: 'ws',
        remote: data.remote,
        write: (buf) => {
          if (!data.closed) ws.send(buf, true, false);
        },
        bufferedBytes: () => (data.closed ? 0 : ws.getBufferedAmount()),
        end: () => {
          if (data.closed) return;
          data.closed = true;
          ws.end(1000);
        },
        pause: () => {},
        resume: () => {},
      };
      const sink = accept(io);
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
  return new Promise((resolve, reject) => {
    app.listen(opts.host, opts.port, (token) => {
      if (!token) {
        app.close();
        reject(new Error(`WebSocket/HTTP listener could not bind ${opts.host}:${opts.port}`));
        return;
      }
      resolve({
        port: uWS.us_socket_local_port(token),
        close: () => {
          uWS.us_listen_socket_close(token);
          // Closes every remaining socket; required before the thread exits (a live uWS
          // handle at thread teardown aborts the process).
          app.close();
        },
      });
    });
  });
}
