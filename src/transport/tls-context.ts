/**
 * The certificate material of the TLS listeners (`tls` section of the config), read from
 * its files with errors that name the key and the file. Used at start (the supervisor
 * checks the files before any thread opens a listener), by every gateway for its
 * listeners, and again on reload (SIGHUP).
 */
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from '../config/load.js';
import type { Config, TlsConfig } from '../config/schema.js';

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  passphrase?: string;
}

/** Is any TLS listener (MQTT over TLS, WebSocket over TLS) enabled? */
export const tlsEnabled = (cfg: Pick<Config, 'listeners'>): boolean => cfg.listeners.tls.enabled || cfg.listeners.wss.enabled;

function readPem(key: string, file: string | null): Buffer {
  if (file === null) throw new ConfigError(`config: "${key}" is not set`, key);
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable (permission denied)' : `cannot be read (${(err as Error).message})`;
    throw new ConfigError(`config: "${key}" file "${file}" ${why}`, key);
  }
}

/** Reads the files named by `tls`; throws ConfigError naming the key and file. */
export function readTlsMaterial(t: TlsConfig): TlsMaterial {
  const m: TlsMaterial = { cert: readPem('tls.certFile', t.certFile), key: readPem('tls.keyFile', t.keyFile) };
  if (t.caFile !== null) m.ca = readPem('tls.caFile', t.caFile);
  if (t.passphrase !== null) m.passphrase = t.passphrase;
  return m;
}

/** Options of a node:tls server context (certificate, key, client CA, oldest version). */
export function secureContextOptions(t: TlsConfig, m: TlsMaterial): tls.SecureContextOptions {
  return {
    cert: m.cert,
    key: m.key,
    ...(m.passphrase !== undefined ? { passphrase: m.passphrase } : {}),
    ...(m.ca !== undefined ? { ca: m.ca } : {}),
    minVersion: t.minVersion,
  };
}

/**
 * Reads the files and builds a SecureContext from them, so that a missing file, a file
 * that is not PEM, a key that does not match its certificate or a wrong passphrase is a
 * ConfigError at start (or a refused reload), never a failed handshake later.
 */
export function loadSecureContext(t: TlsConfig): { material: TlsMaterial; context: tls.SecureContext } {
  const material = readTlsMaterial(t);
  const bad = (key: 'tls.certFile' | 'tls.keyFile' | 'tls.caFile', file: string | null, why: string) =>
    new ConfigError(`config: "${key}" file "${file}" ${why}`, key);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(material.cert);
  } catch (err) {
    throw bad('tls.certFile', t.certFile, `is not a PEM certificate (${(err as Error).message})`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: material.key, ...(material.passphrase !== undefined ? { passphrase: material.passphrase } : {}) });
  } catch (err) {
    const why = t.passphrase === null ? 'is not a PEM private key (or it is encrypted and tls.passphrase is not set)' : 'is not a PEM private key, or tls.passphrase does not decrypt it';
    throw bad('tls.keyFile', t.keyFile, `${why} (${(err as Error).message})`);
  }
  if (!cert.checkPrivateKey(key)) throw bad('tls.keyFile', t.keyFile, `is not the key of the certificate "${t.certFile}"`);
  if (material.ca !== undefined) {
    try {
      new X509Certificate(material.ca);
    } catch (err) {
      throw bad('tls.caFile', t.caFile, `is not a PEM certificate (${(err as Error).message})`);
    }
  }
  try {
    return { material, context: tls.createSecureContext(secureContextOptions(t, material)) };
  } catch (err) {
    throw new ConfigError(
      `config: the TLS certificate "${t.certFile}" and key "${t.keyFile}"${t.caFile ? ` (CA "${t.caFile}")` : ''} cannot be used: ${(err as Error).message}`,
      'tls.certFile',
    );
  }
}

/**
 * The username a verified client certificate stands for: its subject's CN (the first one
 * if there are several). Undefined when the peer sent no certificate or it did not verify.
 */
export function certUsername(socket: tls.TLSSocket): string | undefined {
  if (!socket.authorized) return undefined;
  const cn: unknown = socket.getPeerCertificate()?.subject?.CN;
  const name = Array.isArray(cn) ? (cn[0] as unknown) : cn;
  return typeof name === 'string' && name.length > 0 ? name : undefined;
}
