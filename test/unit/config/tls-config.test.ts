// The TLS listeners' configuration: defaults, the rules that span keys, flags.
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig, loadConfig } from '../../../src/config/load.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { parseArgs } from '../../../src/cli-args.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

const files = { certFile: '/etc/sb/server.pem', keyFile: '/etc/sb/server-key.pem' };

describe('tls configuration', () => {
  it('defaults: both TLS listeners off, ports 8883 / 8084, no files, TLS 1.2 and up', () => {
    expect(DEFAULTS.listeners.tls).toEqual({ enabled: false, port: 8883 });
    expect(DEFAULTS.listeners.wss).toEqual({ enabled: false, port: 8084, path: '/mqtt' });
    expect(DEFAULTS.tls).toEqual({
      certFile: null,
      keyFile: null,
      passphrase: null,
      caFile: null,
      requestClientCert: false,
      requireClientCert: false,
      clientCertUsername: false,
      minVersion: 'TLSv1.2',
    });
  });

  it('enabling a TLS listener without certificate and key names the missing keys', () => {
    let err = configError(() => validateConfig({ listeners: { tls: { enabled: true } } }));
    expect(err.key).toBe('tls.certFile');
    expect(err.message).toContain('"listeners.tls.enabled" needs "tls.certFile" and "tls.keyFile"');
    err = configError(() => validateConfig({ listeners: { wss: { enabled: true } }, tls: { certFile: 'c.pem' } }));
    expect(err.key).toBe('tls.keyFile');
    expect(err.message).toContain('"listeners.wss.enabled" needs "tls.keyFile"');
    err = configError(() => validateConfig({ listeners: { tls: { enabled: true }, wss: { enabled: true } } }));
    expect(err.message).toContain('"listeners.tls.enabled" and "listeners.wss.enabled" need');
    // The same through environment variables, with the variable named.
    err = configError(() => loadConfig({ env: { SWITCHBOARD_LISTENERS__TLS__ENABLED: 'true' } }));
    expect(err.key).toBe('tls.certFile');
    // Files without an enabled listener are fine (nothing reads them).
    expect(validateConfig({ tls: { requireClientCert: true } }).tls.requireClientCert).toBe(true);
    expect(validateConfig({ listeners: { tls: { enabled: true } }, tls: files }).listeners.tls.enabled).toBe(true);
  });

  it('client certificates need the CA that signs them; the CN as username needs a client certificate', () => {
    let err = configError(() => validateConfig({ listeners: { tls: { enabled: true } }, tls: { ...files, requireClientCert: true } }));
    expect(err.key).toBe('tls.caFile');
    expect(err.message).toContain('"tls.requireClientCert" needs "tls.caFile"');
    err = configError(() => validateConfig({ listeners: { tls: { enabled: true } }, tls: { ...files, requestClientCert: true } }));
    expect(err.message).toContain('"tls.requestClientCert" needs "tls.caFile"');
    err = configError(() => validateConfig({ listeners: { tls: { enabled: true } }, tls: { ...files, clientCertUsername: true } }));
    expect(err.key).toBe('tls.clientCertUsername');
    const ok = validateConfig({ listeners: { tls: { enabled: true } }, tls: { ...files, caFile: 'ca.pem', requireClientCert: true, clientCertUsername: true } });
    expect(ok.tls.clientCertUsername).toBe(true);
  });

  it('requireClientCert cannot be enforced by the WSS listener, so the two are refused together', () => {
    const err = configError(() =>
      validateConfig({ listeners: { wss: { enabled: true } }, tls: { ...files, caFile: 'ca.pem', requireClientCert: true } }),
    );
    expect(err.key).toBe('tls.requireClientCert');
    expect(err.message).toMatch(/not supported by the WSS listener/);
    // requestClientCert is fine: it applies to MQTT over TLS, WSS does not ask.
    expect(validateConfig({ listeners: { wss: { enabled: true } }, tls: { ...files, caFile: 'ca.pem', requestClientCert: true } }).listeners.wss.enabled).toBe(true);
  });

  it('every enabled listener needs its own port', () => {
    let err = configError(() => validateConfig({ listeners: { tls: { enabled: true, port: 1883 } }, tls: files }));
    expect(err.key).toBe('listeners.tls.port');
    expect(err.message).toContain('"listeners.tls.port" must differ from "listeners.tcp.port" (both are 1883)');
    err = configError(() => validateConfig({ listeners: { tls: { enabled: true, port: 9000 }, wss: { enabled: true, port: 9000 } }, tls: files }));
    expect(err.key).toBe('listeners.wss.port');
    expect(err.message).toContain('must differ from "listeners.tls.port"');
    err = configError(() => validateConfig({ listeners: { wss: { enabled: true, port: 8083 } }, tls: files }));
    expect(err.message).toContain('"listeners.wss.port" must differ from "listeners.ws.port"');
    // Disabled listeners and port 0 never clash.
    expect(validateConfig({ listeners: { tls: { port: 1883 } } }).listeners.tls.port).toBe(1883);
    expect(validateConfig({ listeners: { tcp: { port: 0 }, tls: { enabled: true, port: 0 }, wss: { enabled: true, port: 0 } }, tls: files }).listeners.wss.port).toBe(0);
  });

  it('minVersion is TLSv1.2 or TLSv1.3; wss.path like ws.path', () => {
    expect(validateConfig({ tls: { minVersion: 'TLSv1.3' } }).tls.minVersion).toBe('TLSv1.3');
    expect(configError(() => validateConfig({ tls: { minVersion: 'TLSv1.1' } })).key).toBe('tls.minVersion');
    expect(configError(() => validateConfig({ listeners: { wss: { path: 'mqtt' } } })).key).toBe('listeners.wss.path');
    expect(loadConfig({ env: { SWITCHBOARD_TLS__MIN_VERSION: 'tlsv1.3' } }).tls.minVersion).toBe('TLSv1.3');
  });

  it('--tls-port and --wss-port set the listener ports; "cert" passes its arguments on', () => {
    expect(parseArgs(['start', '--tls-port', '8885', '--wss-port=8086']).overrides).toEqual({ listeners: { tls: { port: 8885 }, wss: { port: 8086 } } });
    expect(configError(() => parseArgs(['--tls-port', 'x'])).key).toBe('listeners.tls.port');
    expect(parseArgs(['cert', '--out', 'd', '--host', 'a', '--help'])).toEqual({ command: 'cert', overrides: {}, rest: ['--out', 'd', '--host', 'a', '--help'] });
    expect(parseArgs(['help', 'cert'])).toMatchObject({ command: 'help', rest: ['cert'] });
  });
});
