/**
 * A throwaway Kamailio (Debian's package) as a SIP SIMPLE registrar and proxy on loopback
 * UDP: usrloc in memory (db_mode 0), REGISTER authenticated with HTTP digest (qop=auth)
 * against a password in the config (auth module, no database), MESSAGE looked up in the
 * location table and relayed statefully (tm) to the registered contact. With `authMessage`
 * the proxy also challenges MESSAGE (407) as a typical deployment does.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import { freePort, spawnServer, stopChild, type Server } from './servers.js';
import { sleep } from './types.js';

export const SIP_PASSWORD = 'secret';
export const SIP_DOMAIN = 'localhost';
const MODULES = '/usr/lib/x86_64-linux-gnu/kamailio/modules';

export function kamailioCfg(port: number, authMessage: boolean): string {
  return `#!KAMAILIO
# Throwaway Kamailio for bench/fig6 (written by bench/fig6/kamailio.ts)
debug=0
log_stderror=yes
fork=yes
children=1
disable_tcp=yes
auto_aliases=no
alias="${SIP_DOMAIN}"
listen=udp:127.0.0.1:${port}
mpath="${MODULES}/"

loadmodule "kex.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "sanity.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

modparam("usrloc", "db_mode", 0)
modparam("auth", "nonce_expire", 600)

request_route {
  if (!mf_process_maxfwd_header("10")) {
    sl_send_reply("483", "Too Many Hops");
    exit;
  }
  if (!sanity_check()) exit;
  force_rport();
  if (is_method("REGISTER")) {
    if (!pv_www_authenticate("$td", "${SIP_PASSWORD}", "0")) {
      www_challenge("$td", "1");
      exit;
    }
    consume_credentials();
    if (!save("location")) sl_reply_error();
    exit;
  }
  if (is_method("MESSAGE")) {
${
  authMessage
    ? `    if (!pv_proxy_authenticate("$fd", "${SIP_PASSWORD}", "0")) {
      proxy_challenge("$fd", "1");
      exit;
    }
    consume_credentials();
`
    : ''
}    if (!lookup("location")) {
      sl_send_reply("404", "Not Found");
      exit;
    }
    if (!t_relay()) sl_reply_error();
    exit;
  }
  sl_send_reply("405", "Method Not Allowed");
}
`;
}

/** Resolves once Kamailio answers an OPTIONS on its UDP port (with 405 from this config). */
async function waitSip(port: number, ms: number, alive: () => boolean): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  let answered = false;
  sock.on('message', () => (answered = true));
  const lp = sock.address().port;
  const start = Date.now();
  try {
    while (!answered) {
      if (!alive()) throw new Error('kamailio exited');
      if (Date.now() - start > ms) throw new Error(`no SIP answer on udp ${port} after ${ms} ms`);
      const probe =
        `OPTIONS sip:${SIP_DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bKprobe${Date.now()}\r\n` +
        `Max-Forwards: 70\r\nFrom: <sip:probe@${SIP_DOMAIN}>;tag=p\r\nTo: <sip:${SIP_DOMAIN}>\r\nCall-ID: probe${Date.now()}\r\n` +
        `CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      sock.send(probe, port, '127.0.0.1');
      await sleep(200);
    }
  } finally {
    sock.close();
  }
}

export async function startKamailio(o: { authMessage: boolean }): Promise<Server> {
  const dir = await mkdtemp(join(tmpdir(), 'fig6-kamailio-'));
  const port = await freePort();
  const cfg = join(dir, 'kamailio.cfg');
  await writeFile(cfg, kamailioCfg(port, o.authMessage));
  const { child, output } = spawnServer('kamailio', ['-f', cfg, '-DD', '-E', '-m', '32', '-M', '4', '-Y', dir, '-P', join(dir, 'kamailio.pid'), '-w', dir]);
  try {
    await waitSip(port, 15_000, () => child.exitCode === null);
  } catch (err) {
    await stopChild(child);
    throw new Error(`kamailio did not start: ${(err as Error).message}\n${output()}`);
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
