/**
 * XMPP: a throwaway Prosody (Debian's package) with its own config and data dir in a temp
 * dir, virtual host `localhost`, users alice and bob registered with prosodyctl, c2s on a
 * free loopback port, no TLS (no certificate, so no STARTTLS is offered; SCRAM-SHA-1 over
 * plain TCP, like the MQTT and SIP clients which also run without TLS). @xmpp/client logs in
 * (SASL, bind), sends initial presence and no roster request, and alice sends
 * `<message type="chat">` stanzas to bob's bare JID.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { client, xml, type XmppClient, type Element } from '@xmpp/client';
import { execFileP, freePort, spawnServer, stopChild, waitTcp, type Server } from './servers.js';
import { waitFor, type RunContext, type Variant } from './types.js';

const PASSWORD = 'secret';
const DOMAIN = 'localhost';

export interface ProsodyOptions {
  /** Enable XEP-0198 stream management (mod_smacks) on the server. */
  smacks: boolean;
}

function config(dir: string, port: number, o: ProsodyOptions): string {
  const modules = ['roster', 'saslauth', 'disco', 'ping', 'time', 'version', 'uptime'];
  if (o.smacks) modules.push('smacks');
  return `-- Throwaway Prosody for bench/fig6 (written by bench/fig6/xmpp.ts)
run_as_root = true
data_path = "${dir}/data"
certificates = "${dir}/certs"
pidfile = "${dir}/prosody.pid"
interfaces = { "127.0.0.1" }
c2s_ports = { ${port} }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
modules_enabled = { ${modules.map((m) => `"${m}"`).join('; ')} }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
log = { { levels = { min = "warn" }, to = "console" } }
VirtualHost "${DOMAIN}"
`;
}

export async function startProsody(o: ProsodyOptions): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), 'fig6-prosody-'));
  await mkdir(join(dir, 'data'));
  await mkdir(join(dir, 'certs'));
  const port = await freePort();
  const cfg = join(dir, 'prosody.cfg.lua');
  await writeFile(cfg, config(dir, port, o));
  for (const u of ['alice', 'bob']) await execFileP('prosodyctl', ['--config', cfg, 'register', u, DOMAIN, PASSWORD]);
  const { child, output } = spawnServer('prosody', ['--config', cfg, '-F']);
  try {
    await waitTcp('127.0.0.1', port, 15_000, child);
  } catch (err) {
    await stopChild(child);
    throw new Error(`prosody did not start: ${(err as Error).message}\n${output()}`);
  }
  return {
    host: '127.0.0.1',
    port,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function login(ctx: RunContext, user: string, sm: boolean): Promise<XmppClient> {
  const c = client({
    service: `xmpp://${ctx.host}:${ctx.port}`,
    domain: DOMAIN,
    resource: 'phone',
    username: user,
    password: PASSWORD,
  });
  c.on('error', () => {});
  if (!sm) c.streamManagement.enabled = false;
  await c.start();
  if (c.socket?.localPort) ctx.addClientPort(c.socket.localPort);
  // Initial presence: without it the server does not route messages for the bare JID to
  // this resource (RFC 6121 8.5.3.2.1), so every real client sends it after login.
  await c.send(xml('presence'));
  return c;
}

/** Random message ids like those clients put on stanzas (8 characters). */
const newId = (): string => Math.random().toString(36).slice(2, 10).padEnd(8, '0');

export function xmppVariant(server: Server, o: ProsodyOptions): Variant {
  return {
    id: o.smacks ? 'xmpp-sm' : 'xmpp',
    label: o.smacks ? 'XMPP + XEP-0198 acks' : 'XMPP',
    protocol: 'XMPP',
    transport: 'TCP',
    notes:
      'Prosody 0.12 (Debian), @xmpp/client 0.14: stream, SASL SCRAM-SHA-1 (no TLS offered), stream restart, ' +
      'resource bind, initial <presence/>, no roster fetch; <message type="chat" to="bob@localhost" id="8 chars"><body>…' +
      (o.smacks
        ? '; stream management (XEP-0198) enabled by the client because the server offers it, acks <r/>/<a/> as the client library and server send them'
        : '; no stream management offered'),
    server,
    async run(n, ctx) {
      let received = 0;
      const bob = await login(ctx, 'bob', o.smacks);
      bob.on('stanza', (st: Element) => {
        if (st.is('message') && st.getChildText('body') === ctx.text) received++;
      });
      const alice = await login(ctx, 'alice', o.smacks);
      await ctx.endSetup();
      const sent: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const msg = xml('message', { type: 'chat', to: `bob@${DOMAIN}`, id: newId() }, xml('body', {}, ctx.text));
        const p = alice.send(msg);
        if (ctx.pace === 'lockstep') {
          await p;
          await waitFor(() => received > i, 5000, `XMPP message ${i + 1}`);
        } else sent.push(p);
      }
      await Promise.all(sent);
      await waitFor(() => received >= n, 10_000, `${n} XMPP messages`);
      await ctx.endMessages();
      await Promise.all([alice.stop(), bob.stop()]);
      return received;
    },
  };
}
