/**
 * A transparent counting TCP proxy: clients connect to it, it opens one connection to the
 * server per client and copies bytes both ways unchanged, counting the TCP payload bytes
 * (what the application wrote, no TCP/IP headers) into the current run's Tally.
 */
import net from 'node:net';
import { Tally } from './types.js';

export class CountingProxy {
  tally = new Tally();
  /** Called with the local port of the client side of each accepted connection. */
  onClient: (port: number) => void = () => {};
  private server: net.Server;
  private sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  private accept(client: net.Socket): void {
    const tally = this.tally;
    if (client.remotePort) this.onClient(client.remotePort);
    client.setNoDelay(true);
    const upstream = net.connect(this.target.port, this.target.host);
    upstream.setNoDelay(true);
    this.sockets.add(client).add(upstream);
    client.on('data', (d) => {
      tally.add('up', d.length, d);
      upstream.write(d);
    });
    upstream.on('data', (d) => {
      tally.add('down', d.length, d);
      client.write(d);
    });
    // Half-close and errors travel to the other side, like a real connection would.
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', () => (upstream.writableEnded ? undefined : upstream.end()));
    upstream.on('error', drop).on('close', () => (client.writableEnded ? undefined : client.end()));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
