// Command-line parsing for the `switchboard` binary. Kept free of side effects
// (no printing, no exiting) so it can be unit-tested; cli.ts acts on the result.
//
// Flags that set configuration values are declared in FLAGS and validated with
// the same schema as the config file, so `--tcp-port abc` fails with the same
// message shape as `listeners.tcp.port: abc` in YAML.
import { closest, ConfigError, parseSettingText, type DeepPartial } from './config/load.js';
import type { Config } from './config/schema.js';
import { adminCommandLines } from './admin/admin-cli.js';

export type Command = 'start' | 'passwd' | 'admin' | 'cert' | 'backup' | 'help' | 'version';

export interface ParsedArgs {
  command: Command;
  /** From --config / -c; loadConfig also falls back to $SWITCHBOARD_CONFIG. */
  configFile?: string;
  /** Config values given as flags; pass to loadConfig({ overrides }). */
  overrides: DeepPartial<Config>;
  /** passwd, admin, cert, backup: every argument after the command, untouched; help: the topic (e.g. ["passwd"]); otherwise arguments after "--". */
  rest: string[];
}

export interface ConfigFlag {
  readonly flag: string;
  /** Dotted config key path the flag sets. */
  readonly path: string;
  readonly value: string;
  readonly doc: string;
}

/** Flags that override a config key (highest precedence, above env and file). */
export const FLAGS: readonly ConfigFlag[] = [
  { flag: '--host', path: 'host', value: 'HOST', doc: 'listen address for all listeners' },
  { flag: '--tcp-port', path: 'listeners.tcp.port', value: 'N', doc: 'MQTT over TCP port' },
  { flag: '--ws-port', path: 'listeners.ws.port', value: 'N', doc: 'MQTT over WebSocket + HTTP port' },
  { flag: '--tls-port', path: 'listeners.tls.port', value: 'N', doc: 'MQTT over TLS port (when listeners.tls.enabled)' },
  { flag: '--wss-port', path: 'listeners.wss.port', value: 'N', doc: 'MQTT over secure WebSocket + HTTPS port (when listeners.wss.enabled)' },
  { flag: '--data-dir', path: 'dataDir', value: 'DIR', doc: 'state and uploaded files directory' },
  { flag: '--gateways', path: 'threads.gateways', value: 'N|auto', doc: 'I/O threads (0 = main thread)' },
  { flag: '--shards', path: 'threads.shards', value: 'N|auto', doc: 'session shard threads (0 = main thread)' },
  { flag: '--log-level', path: 'log.level', value: 'LEVEL', doc: 'trace|debug|info|warn|error|fatal|silent' },
  { flag: '--cluster-nats', path: 'cluster.nats', value: 'URL', doc: 'join the cluster on this NATS server (docs/cluster.md)' },
  { flag: '--node', path: 'cluster.node', value: 'NAME', doc: 'this node\'s name in the cluster' },
];

const COMMANDS: readonly Command[] = ['start', 'passwd', 'admin', 'cert', 'backup', 'help', 'version'];
const HELP_FLAGS = ['--help', '-h'];
const VERSION_FLAGS = ['--version', '-v', '-V'];
const CONFIG_FLAGS = ['--config', '-c'];

const pad = (s: string, n: number) => s.padEnd(n);

export const USAGE = [
  'Usage: switchboard [command] [options]',
  '',
  'Commands:',
  '  start              run the broker (default when no command is given)',
  '  passwd FILE USER   add or change a user in a users file (arguments are passed to the command)',
  '  admin COMMAND      manage a running broker over its admin HTTP API (see below)',
  '  cert [--out DIR] [--host NAME]... [--client NAME]...',
  '                     make a development CA and TLS certificates with openssl ("switchboard help cert")',
  '  backup [--data-dir DIR] [--compact] OUT',
  '                     copy the data directory consistently, broker running or not ("switchboard help backup")',
  '  help [COMMAND]     show this help',
  '  version            print the version',
  '',
  'Options for start:',
  `  ${pad('-c, --config FILE', 26)}YAML or JSON config file (default: $SWITCHBOARD_CONFIG)`,
  ...FLAGS.map((f) => `  ${pad(`${f.flag} ${f.value}`, 26)}${f.doc}`),
  `  ${pad('-h, --help', 26)}show this help`,
  `  ${pad('-v, --version', 26)}print the version`,
  '',
  'Admin commands (switchboard admin COMMAND [--url URL] [--token T]; "switchboard help admin" for details):',
  ...adminCommandLines('  admin '),
  '',
  'Precedence: flags > SWITCHBOARD_* environment variables > config file > defaults.',
  'Every setting has an environment variable, e.g. SWITCHBOARD_LIMITS__MAX_INFLIGHT=10;',
  'see docs/configuration.md.',
  '',
].join('\n');

function usageError(message: string, key: string): ConfigError {
  return new ConfigError(`switchboard: ${message} (run "switchboard --help" for usage)`, key, 'command line');
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
  node[keys.at(-1)!] = value;
}

/**
 * Parses argv (without the node binary and script, i.e. process.argv.slice(2)).
 * Accepts `--flag value` and `--flag=value`; a repeated flag's last value wins.
 * Throws ConfigError (code "CONFIG_INVALID", key = the flag or config path)
 * for unknown flags or commands, missing values and invalid values.
 */
export function parseArgs(argv: string[]): ParsedArgs {
  let command: Command | undefined;
  let configFile: string | undefined;
  let wantHelp = false;
  let wantVersion = false;
  const overrides: Record<string, unknown> = {};
  const rest: string[] = [];

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;

    if (command === 'passwd') {
      // passwd owns its arguments (it may grow its own flags); only help is intercepted.
      if (HELP_FLAGS.includes(arg)) {
        wantHelp = true;
        break;
      }
      rest.push(arg);
      continue;
    }
    if (command === 'admin' || command === 'cert' || command === 'backup') {
      // admin, cert and backup have their own flags (--url, --token, --out, ...) and their
      // own help text, so even --help is passed through to them.
      rest.push(...argv.slice(i));
      break;
    }

    if (arg === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }

    if (arg.startsWith('-') && arg !== '-') {
      const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
      const name = eq < 0 ? arg : arg.slice(0, eq);
      const inline = eq < 0 ? undefined : arg.slice(eq + 1);
      const takeValue = (): string => {
        if (inline !== undefined) return inline;
        const next = argv[i + 1];
        if (next === undefined || next.startsWith('--')) throw usageError(`flag ${name} needs a value`, name);
        i++;
        return next;
      };

      if (HELP_FLAGS.includes(name) || VERSION_FLAGS.includes(name)) {
        if (inline !== undefined) throw usageError(`flag ${name} takes no value`, name);
        if (HELP_FLAGS.includes(name)) wantHelp = true;
        else wantVersion = true;
        continue;
      }
      if (CONFIG_FLAGS.includes(name)) {
        configFile = takeValue();
        continue;
      }
      const flag = FLAGS.find((f) => f.flag === name);
      if (!flag) {
        const known = [...FLAGS.map((f) => f.flag), '--config', '--help', '--version'];
        const guess = name.startsWith('--') ? closest(name, known) : undefined;
        throw usageError(`unknown flag "${name}"${guess ? `; did you mean "${guess}"?` : ''}`, name);
      }
      setPath(overrides, flag.path, parseSettingText(flag.path, takeValue(), `from flag ${name}`));
      continue;
    }

    // A positional argument.
    if (command === undefined) {
      if (!(COMMANDS as readonly string[]).includes(arg)) {
        const guess = closest(arg, COMMANDS);
        throw usageError(`unknown command "${arg}"${guess ? `; did you mean "${guess}"?` : ''}`, arg);
      }
      command = arg as Command;
    } else if (command === 'help') {
      rest.push(arg);
    } else {
      throw usageError(`unexpected argument "${arg}" for "${command}"${command === 'start' ? ' (use --config FILE for a config file)' : ''}`, arg);
    }
  }

  if (wantHelp) {
    // `switchboard start --help` / `passwd --help`: keep the command as the help topic.
    if (command !== undefined && command !== 'help') rest.splice(0, rest.length, command);
    command = 'help';
  } else if (wantVersion) {
    command = 'version';
  }
  const result: ParsedArgs = { command: command ?? 'start', overrides: overrides as DeepPartial<Config>, rest };
  if (configFile !== undefined) result.configFile = configFile;
  return result;
}
