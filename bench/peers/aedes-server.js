// Aedes as a bench peer: `node bench/peers/aedes-server.js --host 127.0.0.1 --port N [--ws-port M]`.
// With --ws-port, MQTT over WebSocket too (the `ws` package, one stream per connection,
// as Aedes' own documentation does it).
// Default Aedes options (in-memory persistence and MQEmitter), plain net.createServer.
// Plain JavaScript so the broker process carries no TypeScript loader.
// Exits on SIGTERM/SIGINT, and when the parent's IPC channel closes (parent died).
import net from 'node:net';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : fallback;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '1883'));

const aedes = await Aedes.createBroker();
let clientErrors = 0;
let connectionErrors = 0;
const samples = [];
aedes.on('clientError', (client, err) => {
  clientErrors++;
  if (samples.length < 5 && err?.code !== 'ECONNRESET') samples.push(`${client?.id}: ${err?.message}`);
});
aedes.on('connectionError', () => connectionErrors++);

// TCP_NODELAY like every broker in the bench (Switchboard and Mosquitto set it too):
// otherwise Nagle's algorithm and delayed ACKs add ~40 ms to small messages.
const server = net.createServer({ noDelay: true }, aedes.handle);
server.listen(port, host, () => {
  process.stderr.write(`aedes listening on ${host}:${port}\n`);
});

let wss;
const wsPort = arg('--ws-port', undefined);
if (wsPort !== undefined) {
  wss = new WebSocketServer({ host, port: Number(wsPort), handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : false) });
  wss.on('connection', (ws, req) => aedes.handle(createWebSocketStream(ws), req));
}

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  if (clientErrors || connectionErrors) {
    process.stderr.write(`aedes: clientErrors=${clientErrors} connectionErrors=${connectionErrors} ${samples.join(' | ')}\n`);
  }
  server.close();
  wss?.close();
  aedes.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', () => process.exit(0));
