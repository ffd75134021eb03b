/** Gateway (I/O) thread: wiring only. */
import { bootThread } from './thread-main.js';
import { startGatewayHost, type GatewayHost } from '../src/gateway/gateway-host.js';

let host: GatewayHost | undefined;
const { init, log, system, post } = bootThread(
  async () => host?.stop(),
  () => host?.closeNative(),
  async () => host?.reloadTls(),
);
try {
  host = await startGatewayHost({
    system,
    index: init.index,
    config: init.config,
    topology: init.topology,
    connCounter: init.connCounter,
    readiness: init.readiness,
    generation: init.generation,
    log,
    tcpFd: init.tcpFd,
    tcpPort: init.tcpPort,
    wsPort: init.wsPort,
    tlsFd: init.tlsFd,
    tlsPort: init.tlsPort,
    wssPort: init.wssPort,
  });
  post({ t: 'listening', tcpPort: host.tcpPort, tcpFd: host.tcpFd, wsPort: host.wsPort, tlsPort: host.tlsPort, tlsFd: host.tlsFd, wssPort: host.wssPort });
} catch (err) {
  log.fatal({ err }, 'gateway could not start');
  // Give uWS a turn to release what it opened before the thread exits.
  setTimeout(() => process.exit(1), 50);
}
