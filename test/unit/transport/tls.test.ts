// TLS material checks, the development certificates (with openssl) and the TLS listener
// on its own: accepted connections as ConnIO, client certificate CN, reload.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { ConfigError } from '../../../src/config/load.js';
import { DEFAULTS, type TlsConfig } from '../../../src/config/schema.js';
import { DevCertError, generateDevCerts, parseCertArgs, type DevCertFiles } from '../../../src/transport/dev-cert.js';
import { loadSecureContext } from '../../../src/transport/tls-context.js';
import { listenTls, type TlsListener } from '../../../src/transport/tls-listener.js';
import type { ConnIO } from '../../../src/transport/connection.js';

const HAVE_OPENSSL = (spawnSync('openssl', ['version'], { stdio: 'ignore' }).error as NodeJS.ErrnoException | undefined)?.code !== 'ENOENT';

describe('parseCertArgs', () => {
  it('reads --out, repeated or comma-separated --host and --client, and --help', () => {
    expect(parseCertArgs([])).toEqual({ help: false, options: { outDir: './certs', hosts: [], clients: [] } });
    expect(parseCertArgs(['--out', 'x', '--host', 'a.test,10.0.0.1', '--host=b.test', '--client', 'alice', '-h'])).toEqual({
      help: true,
      options: { outDir: 'x', hosts: ['a.test', '10.0.0.1', 'b.test'], clients: ['alice'] },
    });
  });

  it('refuses unknown arguments, missing values and names that are no host', () => {
    expect(() => parseCertArgs(['--days', '3'])).toThrow(DevCertError);
    expect(() => parseCertArgs(['--out'])).toThrow(/--out needs a value/);
    expect(() => parseCertArgs(['--host', 'a b'])).toThrow(/neither a DNS name nor an IP address/);
  });
});

describe.skipIf(!HAVE_OPENSSL)('development certificates and the TLS listener', () => {
  let dir: string;
  let certs: DevCertFiles;
  let other: DevCertFiles;
  let cfg: TlsConfig;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'switchboard-tls-unit-'));
    [certs, other] = await Promise.all([
      generateDevCerts({ outDir: join(dir, 'a'), hosts: ['broker.test', '192.0.2.7'], clients: ['alice', 'x/y z'] }),
      generateDevCerts({ outDir: join(dir, 'b') }),
    ]);
    cfg = { ...DEFAULTS.tls, certFile: certs.serverCert, keyFile: certs.serverKey };
  }, 30_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('makes a CA, a server certificate for every name and client certificates; keys are private', () => {
    const ca = new X509Certificate(readFileSync(certs.caCert));
    const server = new X509Certificate(readFileSync(certs.serverCert));
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.subject).toBe('CN=broker.test');
    for (const name of ['DNS:broker.test', 'IP Address:192.0.2.7', 'DNS:localhost', 'IP Address:127.0.0.1']) expect(server.subjectAltName).toContain(name);
    expect(certs.clients.map((c) => c.name)).toEqual(['alice', 'x/y z']);
    expect(certs.clients[1]!.cert).toMatch(/client-x_y_z\.pem$/);
    const odd = new X509Certificate(readFileSync(certs.clients[1]!.cert));
    expect(odd.subject).toBe('CN=x/y z');
    expect(odd.checkIssued(ca)).toBe(true);
    for (const key of [certs.caKey, certs.serverKey, certs.clients[0]!.key]) expect(spawnSync('stat', ['-c', '%a', key]).stdout.toString().trim()).toBe('600');
  });

  it('reuses the CA found in the output directory', async () => {
    const again = await generateDevCerts({ outDir: join(dir, 'a') });
    expect(again.caCreated).toBe(false);
    expect(new X509Certificate(readFileSync(again.serverCert)).checkIssued(new X509Certificate(readFileSync(certs.caCert)))).toBe(true);
    certs = { ...certs, serverCert: again.serverCert, serverKey: again.serverKey };
  });

  it('a missing openssl is a clear error', async () => {
    await expect(generateDevCerts({ outDir: join(dir, 'c'), openssl: 'openssl-that-does-not-exist' })).rejects.toThrow(/command was not found; install OpenSSL/);
  });

  it('loadSecureContext names the key and the file of what is wrong', () => {
    expect(loadSecureContext(cfg).context).toBeDefined();
    const problem = (over: Partial<TlsConfig>) => {
      try {
        loadSecureContext({ ...cfg, ...over });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return { key: (err as ConfigError).key, message: (err as Error).message };
      }
      throw new Error('no error');
    };
    expect(problem({ certFile: join(dir, 'none.pem') })).toMatchObject({ key: 'tls.certFile', message: expect.stringMatching(/none\.pem" does not exist/) });
    expect(problem({ certFile: certs.serverKey })).toMatchObject({ key: 'tls.certFile', message: expect.stringMatching(/is not a PEM certificate/) });
    expect(problem({ keyFile: certs.serverCert })).toMatchObject({ key: 'tls.keyFile', message: expect.stringMatching(/is not a PEM private key/) });
    expect(problem({ keyFile: other.serverKey })).toMatchObject({ key: 'tls.keyFile', message: expect.stringMatching(/is not the key of the certificate/) });
    expect(problem({ caFile: certs.serverKey })).toMatchObject({ key: 'tls.caFile' });
    const locked = join(dir, 'locked.pem');
    copyFileSync(certs.serverKey, locked);
    chmodSync(locked, 0o000);
    // root reads anything: only check the message when the file really is unreadable.
    if (process.getuid?.() !== 0) expect(problem({ keyFile: locked }).message).toMatch(/permission denied/);
  });

  describe('listenTls', () => {
    let l: TlsListener;
    const accepted: ConnIO[] = [];
    beforeAll(async () => {
      l = await listenTls(
        {
          host: '127.0.0.1',
          port: 0,
          tls: { ...cfg, caFile: certs.caCert, requestClientCert: true, clientCertUsername: true },
          handshakeTimeout: 2000,
        },
        (io) => {
          accepted.push(io);
          return { data: () => {}, textFrame: () => {}, closed: () => {}, drained: () => {} };
        },
      );
    });
    afterAll(() => new Promise<void>((r) => l.server.close(() => r())));

    const hello = (opts: tls.ConnectionOptions) =>
      new Promise<{ fp: string; io: ConnIO }>((resolve, reject) => {
        const n = accepted.length;
        const s = tls.connect({ host: '127.0.0.1', port: l.port, ca: readFileSync(certs.caCert), servername: 'localhost', ...opts }, () => {
          const fp = s.getPeerCertificate().fingerprint256;
          const wait = () => (accepted.length > n ? (resolve({ fp, io: accepted[n]! }), s.destroy()) : setTimeout(wait, 5));
          wait();
        });
        s.once('error', reject);
      });

    it('hands handshaken connections over as ConnIO "tls", with the CN of a verified client certificate', async () => {
      const plain = await hello({});
      expect(plain.io.transport).toBe('tls');
      expect(plain.io.certUsername).toBeUndefined();
      const alice = await hello({ cert: readFileSync(certs.clients[0]!.cert), key: readFileSync(certs.clients[0]!.key) });
      expect(alice.io.certUsername).toBe('alice');
      // Not signed by tls.caFile: request mode ignores it.
      const foreign = await hello({ cert: readFileSync(other.serverCert), key: readFileSync(other.serverKey) });
      expect(foreign.io.certUsername).toBeUndefined();
    });

    it('reload: new handshakes get the new certificate; bad files throw and change nothing', async () => {
      const before = (await hello({})).fp;
      const renewed = await generateDevCerts({ outDir: join(dir, 'a') });
      l.reload();
      const after = (await hello({})).fp;
      expect(after).not.toBe(before);
      expect(after).toBe(new X509Certificate(readFileSync(renewed.serverCert)).fingerprint256);
      const goodKey = readFileSync(renewed.serverKey);
      copyFileSync(other.serverKey, renewed.serverKey);
      try {
        expect(() => l.reload()).toThrow(/is not the key of the certificate/);
        expect((await hello({})).fp).toBe(after);
      } finally {
        writeFileSync(renewed.serverKey, goodKey);
      }
    });
  });

  it('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
    const l = await listenTls({ host: '127.0.0.1', port: 0, tls: { ...cfg, minVersion: 'TLSv1.3' }, handshakeTimeout: 2000 }, () => null);
    try {
      const attempt = (maxVersion: tls.SecureVersion) =>
        new Promise<string>((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port: l.port, ca: readFileSync(certs.caCert), servername: 'localhost', maxVersion }, () => {
            resolve(s.getProtocol() ?? '?');
            s.destroy();
          });
          s.once('error', (e) => resolve(`error: ${e.message}`));
        });
      expect(await attempt('TLSv1.2')).toMatch(/error: .*protocol version/);
      expect(await attempt('TLSv1.3')).toBe('TLSv1.3');
    } finally {
      await new Promise<void>((r) => l.server.close(() => r()));
    }
  });
});
