/**
 * `switchboard cert`: a development certificate authority and a server certificate (and,
 * on request, client certificates) for the TLS listeners, made with the `openssl` command
 * (node:crypto makes keys but no X.509 certificates). Never for production: the CA key sits
 * next to the certificates, unencrypted.
 *
 * Files in the output directory (default ./certs, ignored by git):
 *   ca.pem, ca-key.pem                   the CA (kept and reused when present, so certificates
 *                                        made later are trusted by clients that have ca.pem)
 *   server.pem, server-key.pem           the server certificate (CN = first name; every name
 *                                        is a subjectAltName, DNS or IP), made anew each run
 *   client-NAME.pem, client-NAME-key.pem a client certificate with CN = NAME (--client NAME)
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const DEFAULT_CERT_DIR = './certs';
/** Names every development server certificate holds, so local clients verify it. */
const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'];
/** 825 days: the longest validity some clients (Apple) accept for a server certificate. */
const DAYS = 825;
const CA_DAYS = 3650;

export class DevCertError extends Error {
  readonly code = 'DEV_CERT_FAILED' as const;
  constructor(message: string) {
    super(message);
    this.name = 'DevCertError';
  }
}

export interface DevCertOptions {
  /** Output directory (created if needed). */
  outDir: string;
  /** Extra names (DNS names or IP addresses) of the server; localhost, 127.0.0.1, ::1 and the host name are always in. */
  hosts?: readonly string[];
  /** Common names of client certificates to make. */
  clients?: readonly string[];
  /** The openssl binary (default: `openssl` on PATH). */
  openssl?: string;
}

export interface DevCertFiles {
  dir: string;
  caCert: string;
  caKey: string;
  /** False when an existing CA in the directory was reused. */
  caCreated: boolean;
  serverCert: string;
  serverKey: string;
  /** The server certificate's names (the first is its CN). */
  hosts: string[];
  clients: Array<{ name: string; cert: string; key: string }>;
}

export const USAGE_CERT = [
  'Usage: switchboard cert [--out DIR] [--host NAME]... [--client NAME]...',
  '',
  'Makes a development CA and a server certificate for the TLS listeners with openssl:',
  `  --out DIR       output directory (default ${DEFAULT_CERT_DIR}); an existing ca.pem/ca-key.pem there is reused`,
  '  --host NAME     a DNS name or IP address of the server (repeatable, or comma-separated);',
  `                  ${LOCAL_NAMES.join(', ')} and this machine's host name are always included`,
  '  --client NAME   also make a client certificate with CN=NAME (repeatable)',
  '',
  'Then: listeners.tls.enabled / listeners.wss.enabled, tls.certFile DIR/server.pem,',
  'tls.keyFile DIR/server-key.pem; clients trust DIR/ca.pem. For development only.',
  '',
].join('\n');

/** Parses the arguments after `cert`; throws DevCertError on a bad one. `help`: --help was given. */
export function parseCertArgs(argv: readonly string[]): { help: boolean; options: DevCertOptions } {
  const options: { outDir: string; hosts: string[]; clients: string[] } = { outDir: DEFAULT_CERT_DIR, hosts: [], clients: [] };
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    const value = (): string => {
      if (eq >= 0) return arg.slice(eq + 1);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new DevCertError(`cert: ${name} needs a value`);
      i++;
      return next;
    };
    const list = (v: string) => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (name === '--out' || name === '-o') options.outDir = value();
    else if (name === '--host') options.hosts.push(...list(value()));
    else if (name === '--client') options.clients.push(...list(value()));
    else throw new DevCertError(`cert: unknown argument "${arg}" (run "switchboard cert --help")`);
  }
  for (const c of options.clients) if (/[\u0000-\u001f]/.test(c)) throw new DevCertError(`cert: --client ${JSON.stringify(c)} has control characters`);
  for (const h of options.hosts) if (!net.isIP(h) && !/^[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?$/.test(h)) throw new DevCertError(`cert: --host "${h}" is neither a DNS name nor an IP address`);
  return { help, options };
}

function run(openssl: string, args: string[]): Promise<void> {
  return new Promise((resolveRun, reject) => {
    execFile(openssl, args, { timeout: 30_000 }, (err, _stdout, stderr) => {
      if (!err) return resolveRun();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new DevCertError(`cert: the "${openssl}" command was not found; install OpenSSL (Debian/Ubuntu: apt-get install openssl)`));
        return;
      }
      reject(new DevCertError(`cert: ${openssl} ${args[0]} failed: ${String(stderr).trim() || err.message}`));
    });
  });
}

const exists = (file: string) => stat(file).then(() => true, () => false);
/** A -subj value: `/CN=...` with openssl's special characters escaped. */
const subject = (cn: string) => `/CN=${cn.replace(/[\\/=+,]/g, (c) => `\\${c}`)}`;
/** A positive random 127-bit serial number. */
const serial = () => {
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return `0x${b.toString('hex')}`;
};
const safeFileName = (name: string) => name.replace(/[^A-Za-z0-9._-]/g, '_');

const OPENSSL_CNF = `[req]
distinguished_name = dn
prompt = no
[dn]
CN = switchboard
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
`;

const extFile = (sans: string) => `[server_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = ${sans}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
`;

/** Makes (or reuses) the CA, then the server certificate and any client certificates. */
export async function generateDevCerts(opts: DevCertOptions): Promise<DevCertFiles> {
  const openssl = opts.openssl ?? 'openssl';
  const dir = resolve(opts.outDir);
  const hosts = [...new Set([...(opts.hosts ?? []), ...LOCAL_NAMES, hostname()].filter((h) => h.length > 0))];
  const files: DevCertFiles = {
    dir,
    caCert: join(dir, 'ca.pem'),
    caKey: join(dir, 'ca-key.pem'),
    caCreated: false,
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server-key.pem'),
    hosts,
    clients: [],
  };
  await mkdir(dir, { recursive: true });
  const work = await mkdtemp(join(tmpdir(), 'switchboard-cert-'));
  try {
    const cnf = join(work, 'openssl.cnf');
    const ext = join(work, 'ext.cnf');
    const sans = hosts.map((h) => (net.isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
    await writeFile(cnf, OPENSSL_CNF);
    await writeFile(ext, extFile(sans));
    const newKey = async (file: string) => {
      await run(openssl, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file]);
      await chmod(file, 0o600);
    };
    const caThere = (await exists(files.caCert)) && (await exists(files.caKey));
    if (!caThere) {
      await newKey(files.caKey);
      await run(openssl, ['req', '-x509', '-new', '-key', files.caKey, '-config', cnf, '-extensions', 'ca_ext', '-subj', subject(`Switchboard development CA ${hostname()}`), '-days', String(CA_DAYS), '-out', files.caCert]);
      files.caCreated = true;
    }
    const issue = async (cn: string, cert: string, key: string, extensions: 'server_ext' | 'client_ext') => {
      await newKey(key);
      const csr = join(work, 'req.csr');
      await run(openssl, ['req', '-new', '-key', key, '-config', cnf, '-subj', subject(cn), '-out', csr]);
      await run(openssl, [
        'x509', '-req', '-in', csr, '-CA', files.caCert, '-CAkey', files.caKey, '-set_serial', serial(),
        '-days', String(DAYS), '-extfile', ext, '-extensions', extensions, '-out', cert,
      ]);
    };
    await issue(hosts[0]!, files.serverCert, files.serverKey, 'server_ext');
    for (const name of opts.clients ?? []) {
      const base = join(dir, `client-${safeFileName(name)}`);
      const c = { name, cert: `${base}.pem`, key: `${base}-key.pem` };
      await issue(name, c.cert, c.key, 'client_ext');
      files.clients.push(c);
    }
    return files;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** What `switchboard cert` prints: the files and the settings that use them. */
export function describeDevCerts(f: DevCertFiles): string {
  const lines = [
    `${f.caCreated ? 'made' : 'reused'} CA       ${f.caCert} (key ${f.caKey})`,
    `server certificate  ${f.serverCert} (key ${f.serverKey}) for ${f.hosts.join(', ')}`,
    ...f.clients.map((c) => `client certificate  ${c.cert} (key ${c.key}) CN=${c.name}`),
    '',
    'Broker settings (YAML):',
    '  listeners: { tls: { enabled: true }, wss: { enabled: true } }',
    `  tls: { certFile: ${f.serverCert}, keyFile: ${f.serverKey}${f.clients.length > 0 ? `, caFile: ${f.caCert}, requestClientCert: true, clientCertUsername: true` : ''} }`,
    'Clients trust the CA, e.g.:',
    `  mosquitto_sub -h localhost -p 8883 --cafile ${f.caCert} -t '#' -v`,
    'For development only: the CA key is not protected.',
    '',
  ];
  return lines.join('\n');
}
