/**
 * SIP SIMPLE (RFC 3428 MESSAGE) user agents written for this bench: plain UDP sockets, one
 * per user, that REGISTER with digest authentication, send MESSAGE requests through the
 * proxy and answer relayed MESSAGEs with 200 OK. Every datagram sent or received is counted
 * (UDP payload bytes) into the run's tally. Headers are the ones RFC 3261 8.1.1 requires
 * plus Contact/Expires (REGISTER) and Content-Type (MESSAGE); no User-Agent, Allow,
 * Supported or other optional headers a real phone adds, so the SIP numbers are a floor.
 */
import dgram from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { SIP_DOMAIN, SIP_PASSWORD } from './kamailio.js';
import type { Server } from './servers.js';
import { waitFor, type RunContext, type Tally, type Variant } from './types.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
/** Random token of `len` lowercase letters and digits. */
const token = (len: number): string => {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return [...randomBytes(len)].map((b) => abc[b % abc.length]).join('');
};

interface SipMessage {
  startLine: string;
  headers: [string, string][];
  body: string;
}

function parse(text: string): SipMessage {
  const end = text.indexOf('\r\n\r\n');
  const head = end < 0 ? text : text.slice(0, end);
  const [startLine = '', ...lines] = head.split('\r\n');
  const headers = lines.map((l): [string, string] => {
    const i = l.indexOf(':');
    return [l.slice(0, i).trim(), l.slice(i + 1).trim()];
  });
  return { startLine, headers, body: end < 0 ? '' : text.slice(end + 4) };
}

const header = (m: SipMessage, name: string): string | undefined =>
  m.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];

interface Challenge {
  realm: string;
  nonce: string;
  qop?: string;
  opaque?: string;
  /** 'Authorization' after 401, 'Proxy-Authorization' after 407. */
  header: string;
  nc: number;
  cnonce: string;
}

function parseChallenge(value: string, header: string): Challenge {
  const get = (k: string): string | undefined => new RegExp(`${k}="?([^",]+)"?`, 'i').exec(value)?.[1];
  return { realm: get('realm') ?? '', nonce: get('nonce') ?? '', qop: get('qop'), opaque: get('opaque'), header, nc: 0, cnonce: token(8) };
}

export class SipUa {
  private sock = dgram.createSocket('udp4');
  private pending = new Map<string, (m: SipMessage) => void>();
  /** One Call-ID (and CSeq counter) for the registration, one per peer for MESSAGEs. */
  private calls = new Map<string, { id: string; cseq: number }>();
  private readonly fromTag = token(10);
  /** Digest challenges by kind, kept to authorize later requests without a new round trip. */
  private creds = new Map<string, Challenge>();
  port = 0;
  received: string[] = [];

  constructor(
    readonly user: string,
    private readonly server: { host: string; port: number },
    private readonly tally: Tally,
  ) {}

  async open(): Promise<number> {
    await new Promise<void>((r) => this.sock.bind(0, '127.0.0.1', () => r()));
    this.port = this.sock.address().port;
    this.sock.on('message', (buf) => this.onDatagram(buf));
    return this.port;
  }

  close(): void {
    this.sock.close();
  }

  private send(text: string): void {
    const buf = Buffer.from(text, 'utf8');
    this.tally.add('up', buf.length, buf);
    this.sock.send(buf, this.server.port, this.server.host);
  }

  private onDatagram(buf: Buffer): void {
    this.tally.add('down', buf.length, buf);
    const m = parse(buf.toString('utf8'));
    if (m.startLine.startsWith('SIP/2.0 ')) {
      const branch = /branch=([^;,\s]+)/.exec(header(m, 'Via') ?? '')?.[1] ?? '';
      this.pending.get(branch)?.(m);
      return;
    }
    if (m.startLine.startsWith('MESSAGE ')) {
      this.received.push(m.body);
      const to = header(m, 'To') ?? '';
      // 200 OK: every Via in order, From, To with our tag, Call-ID, CSeq (RFC 3261 8.2.6.2).
      const vias = m.headers.filter(([k]) => k.toLowerCase() === 'via' || k === 'v').map(([, v]) => `Via: ${v}\r\n`);
      this.send(
        'SIP/2.0 200 OK\r\n' +
          vias.join('') +
          `From: ${header(m, 'From')}\r\n` +
          `To: ${to.includes(';tag=') ? to : `${to};tag=${this.fromTag}`}\r\n` +
          `Call-ID: ${header(m, 'Call-ID')}\r\n` +
          `CSeq: ${header(m, 'CSeq')}\r\n` +
          'Content-Length: 0\r\n\r\n',
      );
    }
  }

  private authorization(method: string, uri: string): string {
    const c = this.creds.get(method === 'REGISTER' ? 'www' : 'proxy');
    if (!c) return '';
    c.nc++;
    const nc = c.nc.toString(16).padStart(8, '0');
    const ha1 = md5(`${this.user}:${c.realm}:${SIP_PASSWORD}`);
    const ha2 = md5(`${method}:${uri}`);
    const response = c.qop ? md5(`${ha1}:${c.nonce}:${nc}:${c.cnonce}:auth:${ha2}`) : md5(`${ha1}:${c.nonce}:${ha2}`);
    return (
      `${c.header}: Digest username="${this.user}", realm="${c.realm}", nonce="${c.nonce}", uri="${uri}", ` +
      `response="${response}", algorithm=MD5` +
      (c.qop ? `, cnonce="${c.cnonce}", qop=auth, nc=${nc}` : '') +
      (c.opaque ? `, opaque="${c.opaque}"` : '') +
      '\r\n'
    );
  }

  /** Sends a request and resolves with its final response, answering one digest challenge. */
  async request(method: 'REGISTER' | 'MESSAGE', o: { to: string; expires?: number; body?: string }): Promise<SipMessage> {
    const uri = method === 'REGISTER' ? `sip:${SIP_DOMAIN}` : `sip:${o.to}@${SIP_DOMAIN}`;
    const key = method === 'REGISTER' ? 'REGISTER' : o.to;
    let call = this.calls.get(key);
    if (!call) this.calls.set(key, (call = { id: token(16), cseq: 0 }));
    for (let attempt = 0; ; attempt++) {
      const branch = `z9hG4bK${token(10)}`;
      const body = o.body ?? '';
      const text =
        `${method} ${uri} SIP/2.0\r\n` +
        `Via: SIP/2.0/UDP 127.0.0.1:${this.port};rport;branch=${branch}\r\n` +
        'Max-Forwards: 70\r\n' +
        `From: <sip:${this.user}@${SIP_DOMAIN}>;tag=${this.fromTag}\r\n` +
        `To: <sip:${o.to}@${SIP_DOMAIN}>\r\n` +
        `Call-ID: ${call.id}\r\n` +
        `CSeq: ${++call.cseq} ${method}\r\n` +
        (method === 'REGISTER' ? `Contact: <sip:${this.user}@127.0.0.1:${this.port}>\r\nExpires: ${o.expires ?? 3600}\r\n` : '') +
        this.authorization(method, uri) +
        (body ? 'Content-Type: text/plain\r\n' : '') +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body;
      const res = await new Promise<SipMessage>((resolve, reject) => {
        const t = setTimeout(() => {
          this.pending.delete(branch);
          reject(new Error(`${this.user}: no final response to ${method}`));
        }, 5000);
        this.pending.set(branch, (m) => {
          const code = Number(m.startLine.split(' ')[1]);
          if (code < 200) return; // provisional
          clearTimeout(t);
          this.pending.delete(branch);
          resolve(m);
        });
        this.send(text);
      });
      const code = Number(res.startLine.split(' ')[1]);
      if ((code === 401 || code === 407) && attempt === 0) {
        const www = code === 401;
        const value = header(res, www ? 'WWW-Authenticate' : 'Proxy-Authenticate') ?? '';
        this.creds.set(www ? 'www' : 'proxy', parseChallenge(value, www ? 'Authorization' : 'Proxy-Authorization'));
        continue;
      }
      if (code !== 200) throw new Error(`${this.user}: ${method} answered ${res.startLine}`);
      return res;
    }
  }
}

export function sipVariant(server: Server, o: { authMessage: boolean }): Variant {
  return {
    id: o.authMessage ? 'sip-auth' : 'sip',
    label: o.authMessage ? 'SIP SIMPLE (MESSAGE authenticated)' : 'SIP SIMPLE',
    protocol: 'SIP',
    transport: 'UDP',
    notes:
      'Kamailio 5.6 (Debian) registrar + stateful proxy over UDP; own UAs: REGISTER (401 digest challenge, REGISTER with ' +
      'Authorization, 200), MESSAGE text/plain relayed to bob, 200 OK back; unREGISTER (Expires: 0) at the end' +
      (o.authMessage
        ? '; the proxy challenges MESSAGE too (407 on the first one; later ones carry Proxy-Authorization with the cached nonce)'
        : '; MESSAGE is not challenged (a lower bound for SIP)'),
    server,
    async run(n, ctx) {
      const target = { host: ctx.host, port: ctx.port };
      const bob = new SipUa('bob', target, ctx.tally);
      const alice = new SipUa('alice', target, ctx.tally);
      ctx.addClientPort(await bob.open());
      ctx.addClientPort(await alice.open());
      try {
        await bob.request('REGISTER', { to: 'bob' });
        await alice.request('REGISTER', { to: 'alice' });
        await ctx.endSetup();
        const sent: Promise<unknown>[] = [];
        for (let i = 0; i < n; i++) {
          const p = alice.request('MESSAGE', { to: 'bob', body: ctx.text });
          if (ctx.pace === 'lockstep') await p;
          else sent.push(p);
        }
        await Promise.all(sent);
        await waitFor(() => bob.received.length >= n, 10_000, `${n} SIP messages`);
        await ctx.endMessages();
        await Promise.all([alice.request('REGISTER', { to: 'alice', expires: 0 }), bob.request('REGISTER', { to: 'bob', expires: 0 })]);
        return bob.received.filter((b) => b === ctx.text).length;
      } finally {
        alice.close();
        bob.close();
      }
    },
  };
}
