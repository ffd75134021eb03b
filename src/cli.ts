#!/usr/bin/env node
/**
 * `switchboard start [--config FILE] [--host H] [--tcp-port N] [--ws-port N] [--data-dir DIR] ...`
 * `switchboard passwd FILE USER [PASSWORD]`
 * `switchboard admin COMMAND ...` (see src/admin/admin-cli.ts)
 * `switchboard cert [--out DIR] [--host NAME]... [--client NAME]...` (see src/transport/dev-cert.ts)
 * `switchboard backup [--config FILE] [--data-dir DIR] [--compact] OUT` (see src/store/backup.ts)
 */
import { mkdirSync } from 'node:fs';
import { parseArgs, USAGE } from './cli-args.js';
import { loadConfig, ConfigError } from './config/load.js';
import { startBroker, VERSION } from './broker.js';
import { addUser } from './auth/users-file.js';
import { ADMIN_USAGE, runAdminCli } from './admin/admin-cli.js';
import { describeDevCerts, generateDevCerts, parseCertArgs, USAGE_CERT } from './transport/dev-cert.js';
import { createLogger } from './log.js';
import { backupDataDir, parseBackupArgs, USAGE_BACKUP } from './store/backup.js';

async function readPassword(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('password: ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  switch (args.command) {
    case 'help':
      process.stdout.write(args.rest[0] === 'admin' ? ADMIN_USAGE : args.rest[0] === 'cert' ? USAGE_CERT : args.rest[0] === 'backup' ? USAGE_BACKUP : USAGE);
      return 0;
    case 'version':
      process.stdout.write(`switchboard ${VERSION}\n`);
      return 0;
    case 'passwd': {
      const [file, user, pw] = args.rest;
      if (!file || !user) {
        process.stderr.write('usage: switchboard passwd FILE USER [PASSWORD]   (password from stdin when omitted)\n');
        return 2;
      }
      // Both the scrypt hash (password logins) and the SCRAM-SHA-256 credentials (MQTT 5
      // enhanced authentication), which cannot be derived from the hash (docs/authentication.md).
      await addUser(file, user, pw ?? (await readPassword()));
      process.stdout.write(`user ${user} written to ${file} (password hash and SCRAM-SHA-256 credentials)\n`);
      return 0;
    }
    case 'cert': {
      const { help, options } = parseCertArgs(args.rest);
      if (help) {
        process.stdout.write(USAGE_CERT);
        return 0;
      }
      process.stdout.write(describeDevCerts(await generateDevCerts(options)));
      return 0;
    }
    case 'backup': {
      const o = parseBackupArgs(args.rest);
      if (o.help) {
        process.stdout.write(USAGE_BACKUP);
        return 0;
      }
      const config = loadConfig({ file: o.configFile, env: process.env, overrides: o.dataDir !== undefined ? { dataDir: o.dataDir } : {} });
      const r = await backupDataDir(config.dataDir, o.out!, { compact: o.compact });
      for (const st of r.stores) process.stdout.write(`  store/${st.file}  ${st.bytes} bytes\n`);
      process.stdout.write(`backup of ${config.dataDir} written to ${r.out}: ${r.stores.length} store file(s), ${r.files} other file(s)\n`);
      return 0;
    }
    case 'admin':
      return runAdminCli(args.rest, {
        env: process.env,
        stdout: (s) => process.stdout.write(s),
        stderr: (s) => process.stderr.write(s),
      });
    case 'start': {
      const config = loadConfig({ file: args.configFile, env: process.env, overrides: args.overrides });
      mkdirSync(config.dataDir, { recursive: true });
      const log = createLogger(config.log.level, 'main');
      const broker = await startBroker(config, { logger: log });
      const host = config.host;
      const t = broker.topology;
      const threads = t.gatewayThreads === 0 && t.shardThreads === 0 ? 'one thread' : `${t.gatewayThreads} gateway + ${t.shardThreads} shard threads`;
      const lines = [`switchboard ${VERSION} started (${threads})`];
      if (broker.tcpPort !== undefined) lines.push(`  MQTT over TCP        mqtt://${host}:${broker.tcpPort}`);
      if (broker.wsPort !== undefined) {
        lines.push(`  MQTT over WebSocket  ws://${host}:${broker.wsPort}${config.listeners.ws.path}`);
        lines.push(`  metrics / health     http://${host}:${broker.wsPort}/metrics  /healthz  /readyz`);
        if (config.web.enabled) {
          // A browser cannot open the wildcard address, and only loopback counts as a secure context.
          const page = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
          lines.push(`  web client           http://${page}:${broker.wsPort}/`);
        }
      }
      if (broker.tlsPort !== undefined) lines.push(`  MQTT over TLS        mqtts://${host}:${broker.tlsPort}`);
      if (broker.wssPort !== undefined) lines.push(`  MQTT over WSS        wss://${host}:${broker.wssPort}${config.listeners.wss.path}  (and https://)`);
      lines.push(`  data directory       ${config.dataDir}`);
      lines.push(
        config.store.durability === 'memory'
          ? '  store                memory (nothing is kept across restarts)'
          : `  store                LMDB in ${config.dataDir}/store, durability ${config.store.durability}`,
      );
      process.stderr.write(lines.join('\n') + '\n');
      log.info({ tcp: broker.tcpPort, ws: broker.wsPort, tls: broker.tlsPort, wss: broker.wssPort, dataDir: config.dataDir }, 'listening');
      // SIGHUP: new TLS handshakes use the certificate files as they are now (renewed
      // certificates); connections keep going. Without TLS listeners there is nothing to do.
      process.on('SIGHUP', () => {
        log.info({ signal: 'SIGHUP' }, broker.tlsPort !== undefined || broker.wssPort !== undefined ? 'reloading TLS certificates' : 'SIGHUP: no TLS listener, nothing to reload');
        broker.reloadTls().then(
          () => {},
          (err: unknown) => log.error({ err: (err as Error).message }, 'TLS reload failed; the previous certificate stays in use'),
        );
      });
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = (sig: string) => {
          if (stopping) return;
          stopping = true;
          log.info({ signal: sig, drainSeconds: config.shutdownDrain }, 'stopping');
          // A stop that hangs (a stuck thread) must not keep a supervisor waiting forever:
          // past shutdownTimeout (counted after the shutdownDrain seconds during which the
          // broker still serves) the process exits anyway; what was committed is safe.
          setTimeout(() => {
            log.error({ seconds: config.shutdownTimeout }, 'graceful stop took longer than shutdownTimeout; exiting');
            process.exit(1);
          }, (config.shutdownDrain + config.shutdownTimeout) * 1000).unref();
          broker.close().then(resolve, (err: unknown) => {
            log.error({ err }, 'error while stopping');
            resolve();
          });
        };
        process.once('SIGINT', () => stop('SIGINT'));
        process.once('SIGTERM', () => stop('SIGTERM'));
        watchParent(() => stop('parent exited'));
      });
      log.info('stopped');
      return 0;
    }
  }
}

/**
 * A broker started by a wrapper (npm, a shell, a process manager) that goes away without
 * passing the signal on would live on as an orphan holding its ports: when the parent
 * changes (the orphan is adopted by init or a subreaper), the broker stops gracefully.
 * Started by init itself (systemd, a container's PID 1) there is nothing to watch.
 */
function watchParent(onGone: () => void): void {
  const parent = process.ppid;
  if (parent <= 1) return;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone();
  }, 500);
  timer.unref();
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const code = (err as { code?: string })?.code;
    if (err instanceof ConfigError || code === 'USERS_FILE_INVALID' || code === 'DATA_DIR_IN_USE' || code === 'DEV_CERT_FAILED' || code === 'BACKUP_FAILED' || code === 'BACKUP_USAGE') {
      process.stderr.write(`switchboard: ${(err as Error).message}\n`);
      process.exit(2);
    }
    process.stderr.write(`switchboard: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exit(1);
  },
);
