/**
 * uWebSockets.js shares a port between threads with SO_REUSEPORT, but Linux will not
 * let a second socket join a port the kernel picked for `port: 0`. So with several
 * gateway threads and port 0 (tests), the supervisor picks a free port first.
 */
import net from 'node:net';

export function findFreePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen({ host, port: 0, exclusive: true }, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
