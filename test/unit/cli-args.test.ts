import { describe, expect, it } from 'vitest';
import { FLAGS, parseArgs, USAGE } from '../../src/cli-args.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';

function argsError(argv: string[]): ConfigError {
  try {
    parseArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error(`expected parseArgs(${JSON.stringify(argv)}) to throw`);
}

describe('parseArgs', () => {
  it('defaults to start with no overrides', () => {
    expect(parseArgs([])).toEqual({ command: 'start', overrides: {}, rest: [] });
    expect(parseArgs(['start'])).toEqual({ command: 'start', overrides: {}, rest: [] });
  });

  it('parses every start flag into typed overrides', () => {
    const args = parseArgs([
      'start',
      '--config', 'sb.yaml',
      '--host', '127.0.0.1',
      '--tcp-port', '1884',
      '--ws-port=8084',
      '--data-dir', '/var/lib/sb',
      '--gateways', 'auto',
      '--shards', '0',
      '--log-level', 'debug',
    ]);
    expect(args).toEqual({
      command: 'start',
      configFile: 'sb.yaml',
      overrides: {
        host: '127.0.0.1',
        listeners: { tcp: { port: 1884 }, ws: { port: 8084 } },
        dataDir: '/var/lib/sb',
        threads: { gateways: 'auto', shards: 0 },
        log: { level: 'debug' },
      },
      rest: [],
    });
  });

  it('produces overrides that loadConfig accepts', () => {
    const { overrides } = parseArgs(['--tcp-port', '1999', '--gateways', '3']);
    const cfg = loadConfig({ env: { SWITCHBOARD_LISTENERS__TCP__PORT: '1888' }, overrides });
    expect(cfg.listeners.tcp.port).toBe(1999);
    expect(cfg.threads.gateways).toBe(3);
  });

  it('accepts flags before the command, -c, and lets the last repeat win', () => {
    const args = parseArgs(['-c', 'a.yaml', '--tcp-port', '1', 'start', '--tcp-port', '2']);
    expect(args.command).toBe('start');
    expect(args.configFile).toBe('a.yaml');
    expect(args.overrides).toEqual({ listeners: { tcp: { port: 2 } } });
  });

  it('handles help and version', () => {
    expect(parseArgs(['--help']).command).toBe('help');
    expect(parseArgs(['-h']).command).toBe('help');
    expect(parseArgs(['help'])).toMatchObject({ command: 'help', rest: [] });
    expect(parseArgs(['help', 'passwd'])).toMatchObject({ command: 'help', rest: ['passwd'] });
    expect(parseArgs(['start', '--help'])).toMatchObject({ command: 'help', rest: ['start'] });
    expect(parseArgs(['passwd', 'users', '--help'])).toMatchObject({ command: 'help', rest: ['passwd'] });
    expect(parseArgs(['--version']).command).toBe('version');
    expect(parseArgs(['-v']).command).toBe('version');
    expect(parseArgs(['version']).command).toBe('version');
    expect(parseArgs(['--version', '--help']).command).toBe('help');
  });

  it('passes every argument after passwd through as rest', () => {
    expect(parseArgs(['passwd', 'users.txt', 'alice'])).toEqual({ command: 'passwd', overrides: {}, rest: ['users.txt', 'alice'] });
    expect(parseArgs(['-c', 'sb.yaml', 'passwd', '--delete', 'alice'])).toEqual({
      command: 'passwd',
      configFile: 'sb.yaml',
      overrides: {},
      rest: ['--delete', 'alice'],
    });
  });

  it('puts arguments after -- into rest', () => {
    expect(parseArgs(['start', '--', '--not-a-flag', 'x']).rest).toEqual(['--not-a-flag', 'x']);
  });

  it('rejects unknown flags, naming them', () => {
    let err = argsError(['start', '--tcp-prot', '1']);
    expect(err.key).toBe('--tcp-prot');
    expect(err.message).toContain('unknown flag "--tcp-prot"');
    expect(err.message).toContain('did you mean "--tcp-port"');

    err = argsError(['-x']);
    expect(err.key).toBe('-x');
    expect(err.message).toContain('unknown flag "-x"');
  });

  it('rejects unknown commands and stray positionals', () => {
    let err = argsError(['strat']);
    expect(err.message).toContain('unknown command "strat"');
    expect(err.message).toContain('did you mean "start"');

    err = argsError(['start', 'sb.yaml']);
    expect(err.key).toBe('sb.yaml');
    expect(err.message).toContain('--config');
  });

  it('rejects missing and invalid values, naming the key and the flag', () => {
    let err = argsError(['--tcp-port']);
    expect(err.message).toContain('--tcp-port needs a value');

    err = argsError(['--config', '--tcp-port', '1']);
    expect(err.message).toContain('--config needs a value');

    err = argsError(['--tcp-port', 'abc']);
    expect(err.key).toBe('listeners.tcp.port');
    expect(err.message).toBe(
      'config: "listeners.tcp.port" must be an integer between 0 and 65535 (got "abc") (from flag --tcp-port)',
    );

    expect(argsError(['--gateways', '65']).key).toBe('threads.gateways');
    expect(argsError(['--log-level', 'loud']).key).toBe('log.level');
    expect(argsError(['--help=yes']).key).toBe('--help');
  });

  it('documents every flag in USAGE', () => {
    for (const { flag } of FLAGS) expect(USAGE).toContain(flag);
    for (const word of ['--config', '--help', '--version', 'passwd', 'start']) expect(USAGE).toContain(word);
  });
});
