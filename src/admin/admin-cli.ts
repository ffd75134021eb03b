// `switchboard admin ...`: a thin command-line front end to AdminClient.
//
// Every command prints the server's JSON response, pretty-printed, so output
// can be piped into jq and matches the API documentation one to one. Exit codes
// follow the rest of the binary: 0 success, 1 the request failed (API error or
// unreachable server), 2 the command line itself is wrong.
//
// I/O is injected (no process.* access) so the whole command can be tested
// in-process against a local HTTP server.
import { AdminApiError, AdminClient, AdminConnectionError, RULE_ACTIONS, type QoS, type RuleAction } from './api-client.js';

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:8083';
/** Base URL of the broker's HTTP listener for the admin commands. */
export const ENV_ADMIN_URL = 'SWITCHBOARD_ADMIN_URL';
/** The server reads admin.token from this same variable, so one export configures both sides. */
export const ENV_ADMIN_TOKEN = 'SWITCHBOARD_ADMIN__TOKEN';

export interface AdminCliIo {
  env: NodeJS.ProcessEnv;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  fetch?: typeof fetch;
}

/** Parsed flags: value flags keep every occurrence (list flags concatenate them), switches are `true`. */
type Flags = Map<string, string[] | true>;

interface Invocation {
  args: string[];
  flags: Flags;
}

interface AdminCommand {
  /** Command words, e.g. ["directory", "set"]. */
  readonly words: readonly string[];
  /** Positional arguments: NAME required, [NAME] optional, NAME... one or more. */
  readonly args: readonly string[];
  /** Command-specific flags, as shown in the usage line. */
  readonly flags: readonly string[];
  readonly doc: string;
  readonly run: (client: AdminClient, inv: Invocation) => Promise<unknown>;
}

class UsageError extends Error {}

const VALUE_FLAGS = ['--url', '--token', '--uid', '--qos', '--ns', '--groups', '--topics'] as const;
const SWITCH_FLAGS = ['--discard', '--retain', '--help', '-h'] as const;
const GLOBAL_FLAGS = ['--url', '--token', '--help', '-h'];
/** Flags whose value is a comma-separated list; repeating the flag appends. */
const LIST_FLAGS = ['--groups', '--topics'];

function value(flags: Flags, name: string): string | undefined {
  const v = flags.get(name);
  return Array.isArray(v) ? v.at(-1) : undefined;
}

function list(flags: Flags, name: string): string[] | undefined {
  const v = flags.get(name);
  if (!Array.isArray(v)) return undefined;
  // "--groups ''" deliberately yields [] so a list can be cleared.
  return v.flatMap((s) => s.split(',')).map((s) => s.trim()).filter((s) => s !== '');
}

function qos(flags: Flags): QoS | undefined {
  const text = value(flags, '--qos');
  if (text === undefined) return undefined;
  if (!/^[012]$/.test(text)) throw new UsageError(`--qos must be 0, 1 or 2 (got ${JSON.stringify(text)})`);
  return Number(text) as QoS;
}

export const ADMIN_COMMANDS: readonly AdminCommand[] = [
  {
    words: ['clients'],
    args: [],
    flags: ['--uid U'],
    doc: 'list sessions (optionally of one directory uid)',
    run: (c, { flags }) => {
      const uid = value(flags, '--uid');
      return c.listClients(uid === undefined ? {} : { uid });
    },
  },
  {
    words: ['client'],
    args: ['ID'],
    flags: [],
    doc: 'show one session and its subscriptions',
    run: (c, { args }) => c.getClient(args[0]!),
  },
  {
    words: ['kick'],
    args: ['ID'],
    flags: ['--discard'],
    doc: 'disconnect a client; --discard also deletes its session',
    run: (c, { args, flags }) => c.kick(args[0]!, { discard: flags.has('--discard') }),
  },
  {
    words: ['subscribe'],
    args: ['ID', 'FILTER'],
    flags: ['--qos N'],
    doc: "add a subscription to a client's session",
    run: (c, { args, flags }) => c.subscribe(args[0]!, args[1]!, qos(flags)),
  },
  {
    words: ['unsubscribe'],
    args: ['ID', 'FILTER'],
    flags: [],
    doc: "remove a subscription from a client's session",
    run: (c, { args }) => c.unsubscribe(args[0]!, args[1]!),
  },
  {
    words: ['templates'],
    args: [],
    flags: [],
    doc: 'show the presubscribe templates',
    run: (c) => c.getTemplates(),
  },
  {
    words: ['templates', 'set'],
    args: ['T...'],
    flags: [],
    doc: 'replace the presubscribe templates',
    run: (c, { args }) => c.setTemplates(args),
  },
  {
    // A separate command rather than "templates set" with no arguments, so a
    // forgotten argument cannot wipe the templates.
    words: ['templates', 'clear'],
    args: [],
    flags: [],
    doc: 'remove all presubscribe templates',
    run: (c) => c.setTemplates([]),
  },
  {
    words: ['directory'],
    args: [],
    flags: [],
    doc: 'list directory entries',
    run: (c) => c.listDirectory(),
  },
  {
    words: ['directory', 'get'],
    args: ['UID'],
    flags: [],
    doc: 'show one directory entry',
    run: (c, { args }) => c.getUser(args[0]!),
  },
  {
    words: ['directory', 'set'],
    args: ['UID'],
    flags: ['--ns NS', '--groups a,b', '--topics t1,t2'],
    doc: 'create or replace a directory entry',
    run: (c, { args, flags }) => {
      const entry: { ns?: string; groups?: string[]; topics?: string[] } = {};
      const ns = value(flags, '--ns');
      const groups = list(flags, '--groups');
      const topics = list(flags, '--topics');
      if (ns !== undefined) entry.ns = ns;
      if (groups !== undefined) entry.groups = groups;
      if (topics !== undefined) entry.topics = topics;
      return c.putUser(args[0]!, entry);
    },
  },
  {
    words: ['directory', 'rm'],
    args: ['UID'],
    flags: [],
    doc: 'delete a directory entry',
    run: (c, { args }) => c.deleteUser(args[0]!),
  },
  {
    words: ['rules'],
    args: [],
    flags: [],
    doc: 'list routing rules',
    run: (c) => c.listRules(),
  },
  {
    words: ['rules', 'get'],
    args: ['ID'],
    flags: [],
    doc: 'show one routing rule',
    run: (c, { args }) => c.getRule(args[0]!),
  },
  {
    words: ['rules', 'add'],
    args: ['ID', 'SOURCE', 'ACTION', '[DESTINATION]'],
    flags: [],
    doc: 'add a rule; ACTION: copy|move (with DESTINATION) or drop',
    run: (c, { args }) => {
      const [id, source, action, destination] = args as [string, string, string, string | undefined];
      if (!(RULE_ACTIONS as readonly string[]).includes(action)) {
        throw new UsageError(`ACTION must be one of ${RULE_ACTIONS.join(', ')} (got ${JSON.stringify(action)})`);
      }
      if (action === 'drop' && destination !== undefined) throw new UsageError('a drop rule takes no DESTINATION');
      if (action !== 'drop' && destination === undefined) throw new UsageError(`a ${action} rule needs a DESTINATION`);
      return c.addRule({ id, source, action: action as RuleAction, ...(destination === undefined ? {} : { destination }) });
    },
  },
  {
    words: ['rules', 'rm'],
    args: ['ID'],
    flags: [],
    doc: 'delete a routing rule',
    run: (c, { args }) => c.deleteRule(args[0]!),
  },
  {
    words: ['publish'],
    args: ['TOPIC', 'MESSAGE'],
    flags: ['--qos N', '--retain'],
    doc: 'publish a UTF-8 message as the broker',
    run: (c, { args, flags }) => {
      const q = qos(flags);
      return c.publish({
        topic: args[0]!,
        payload: args[1]!,
        ...(q === undefined ? {} : { qos: q }),
        ...(flags.has('--retain') ? { retain: true } : {}),
      });
    },
  },
];

function usageLine(cmd: AdminCommand): string {
  return [...cmd.words, ...cmd.args, ...cmd.flags.map((f) => `[${f}]`)].join(' ');
}

/** "  clients [--uid U]   list sessions ..." lines, shared with the top-level USAGE. */
export function adminCommandLines(indent = '  '): string[] {
  const entries: [string, string][] = [...ADMIN_COMMANDS.map((c): [string, string] => [usageLine(c), c.doc]), ['help', 'show the admin help']];
  // Docs start in one column; a usage too long for it gets its doc on the next
  // line, so one long command does not push every line past 100 characters.
  const width = 34;
  return entries.flatMap(([u, d]) =>
    u.length < width - 1 ? [`${indent}${u.padEnd(width)}${d}`] : [`${indent}${u}`, `${' '.repeat(indent.length + width)}${d}`],
  );
}

export const ADMIN_USAGE = [
  'Usage: switchboard admin COMMAND [options]',
  '',
  "Manage a running broker through its admin HTTP API (enabled by the server's admin.token).",
  '',
  'Commands:',
  ...adminCommandLines(),
  '',
  'Options:',
  `  --url URL    broker HTTP base URL (default: $${ENV_ADMIN_URL}, else ${DEFAULT_ADMIN_URL})`,
  `  --token T    admin token (default: $${ENV_ADMIN_TOKEN}, the variable that also sets the server's admin.token)`,
  '  -h, --help   show this help',
  '',
  'Output is the JSON response. Exit status: 0 ok, 1 request failed, 2 usage error.',
  'Use -- before arguments that start with "-", e.g. publish -- t/x -1',
  '',
].join('\n');

function parseFlags(argv: string[]): { positionals: string[]; flags: Flags } {
  const positionals: string[] = [];
  const flags: Flags = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq < 0 ? arg : arg.slice(0, eq);
    if ((SWITCH_FLAGS as readonly string[]).includes(name)) {
      if (eq >= 0) throw new UsageError(`flag ${name} takes no value`);
      flags.set(name, true);
      continue;
    }
    if (!(VALUE_FLAGS as readonly string[]).includes(name)) throw new UsageError(`unknown flag "${name}"`);
    let v: string;
    if (eq >= 0) {
      v = arg.slice(eq + 1);
    } else {
      const next = argv[i + 1];
      // Same rule as the top-level parser: a following "--flag" is a forgotten value, not a value.
      if (next === undefined || next.startsWith('--')) throw new UsageError(`flag ${name} needs a value`);
      v = next;
      i++;
    }
    const prev = flags.get(name);
    flags.set(name, LIST_FLAGS.includes(name) && Array.isArray(prev) ? [...prev, v] : [v]);
  }
  return { positionals, flags };
}

/** Finds the command with the longest word prefix of `positionals`, and checks its arguments and flags. */
function resolve(positionals: string[], flags: Flags): { cmd: AdminCommand; args: string[] } {
  let cmd: AdminCommand | undefined;
  for (const c of ADMIN_COMMANDS) {
    if (c.words.every((w, i) => positionals[i] === w) && (!cmd || c.words.length > cmd.words.length)) cmd = c;
  }
  const first = positionals[0]!;
  if (!cmd) throw new UsageError(`unknown command "${first}"`);
  const args = positionals.slice(cmd.words.length);
  const name = cmd.words.join(' ');

  const required = cmd.args.filter((a) => !a.startsWith('['));
  const variadic = cmd.args.some((a) => a.endsWith('...'));
  if (args.length < required.length) {
    throw new UsageError(`"${name}" needs ${cmd.args.filter((a) => !a.startsWith('[')).join(' ')} (usage: ${usageLine(cmd)})`);
  }
  if (!variadic && args.length > cmd.args.length) {
    const subs = ADMIN_COMMANDS.filter((c) => c.words.length > 1 && c.words[0] === first).map((c) => c.words[1]);
    // "directory bob" most likely means a missing subcommand, not an extra argument.
    if (cmd.words.length === 1 && subs.length > 0) {
      throw new UsageError(`unknown command "${first} ${args[0]}" (${first} subcommands: ${subs.join(', ')})`);
    }
    throw new UsageError(`unexpected argument "${args[cmd.args.length]}" for "${name}" (usage: ${usageLine(cmd)})`);
  }

  const accepted = cmd.flags.map((f) => f.split(' ')[0]!);
  for (const flag of flags.keys()) {
    if (!GLOBAL_FLAGS.includes(flag) && !accepted.includes(flag)) throw new UsageError(`flag ${flag} does not apply to "${name}"`);
  }
  return { cmd, args };
}

/**
 * Runs `switchboard admin <argv...>`; returns the exit code.
 * Never throws for expected failures: they are reported on io.stderr.
 */
export async function runAdminCli(argv: string[], io: AdminCliIo): Promise<number> {
  const usage = (message: string): number => {
    io.stderr(`switchboard admin: ${message}\n\n${ADMIN_USAGE}`);
    return 2;
  };

  let cmd: AdminCommand;
  let inv: Invocation;
  let client: AdminClient;
  try {
    const { positionals, flags } = parseFlags(argv);
    if (flags.has('--help') || flags.has('-h') || positionals[0] === 'help') {
      io.stdout(ADMIN_USAGE);
      return 0;
    }
    if (positionals.length === 0) return usage('missing command');
    const resolved = resolve(positionals, flags);
    cmd = resolved.cmd;
    inv = { args: resolved.args, flags };

    const token = value(flags, '--token') ?? io.env[ENV_ADMIN_TOKEN];
    if (!token) return usage(`no admin token: pass --token or set ${ENV_ADMIN_TOKEN}`);
    const url = value(flags, '--url') ?? (io.env[ENV_ADMIN_URL] || DEFAULT_ADMIN_URL);
    try {
      client = new AdminClient({ url, token, ...(io.fetch ? { fetch: io.fetch } : {}) });
    } catch (err) {
      throw new UsageError(err instanceof TypeError && err.message.startsWith('admin API') ? err.message : `invalid --url ${JSON.stringify(url)}`);
    }
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    throw err;
  }

  let result: unknown;
  try {
    result = await cmd.run(client, inv);
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message);
    // The client rejects ids such as "." that no URL path can carry.
    if (err instanceof RangeError) return usage(err.message);
    if (err instanceof AdminApiError) {
      io.stderr(`switchboard admin: ${err.status} ${err.message}\n`);
      return 1;
    }
    if (err instanceof AdminConnectionError) {
      const hint = err.code === 'ECONNREFUSED' ? ' (is the broker running, and is --url right?)' : '';
      io.stderr(`switchboard admin: ${err.message}${hint}\n`);
      return 1;
    }
    io.stderr(`switchboard admin: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
  io.stdout(`${JSON.stringify(result, null, 2)}\n`);
  return 0;
}
