// Loads and validates configuration: YAML file, then SWITCHBOARD_* environment
// variables, then CLI overrides, each layer merged over DEFAULTS.
//
// Validation is strict on purpose: a typo such as `maxInflite` silently falling
// back to the default is a production incident waiting to happen, so unknown
// keys at any level are errors, and every error names the offending key path.
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { parseRule, RuleError } from '../im/rules.js';
import { DirectoryError, parseDirectoryEntry, parseTemplate } from '../im/presub.js';
import { parseAuthMethodConfig } from '../auth/enhanced/registry.js';
import {
  ACL_ACTIONS,
  ACL_PERMISSIONS,
  DEFAULTS,
  deepFreeze,
  describeType,
  isField,
  listFields,
  SCHEMA,
  schemaAt,
  type Config,
  type FieldSpec,
  type ListField,
  type ListItem,
  type SchemaSection,
} from './schema.js';

/** Recursively optional; arrays are replaced wholesale, never merged, so their elements stay whole. */
export type DeepPartial<T> = T extends readonly unknown[]
  ? T
  : T extends object
    ? { [K in keyof T]?: DeepPartial<T[K]> }
    : T;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID' as const;
  /** Dotted key path (e.g. "limits.maxInflight"), a CLI flag, or "" when the problem is the whole file. */
  readonly key: string;
  /** Where the bad value came from (file, env variable, flag), if known. */
  readonly source?: string;

  constructor(message: string, key: string, source?: string) {
    super(message);
    this.name = 'ConfigError';
    this.key = key;
    this.source = source;
  }
}

export const ENV_PREFIX = 'SWITCHBOARD_';
/** Not a setting: the path of the config file, used when no file is passed explicitly. */
export const ENV_CONFIG_FILE = 'SWITCHBOARD_CONFIG';
/** SWITCHBOARD_* variables that are not settings: the config file, and the admin CLI's URL. */
const NOT_SETTINGS = new Set([ENV_CONFIG_FILE, 'SWITCHBOARD_ADMIN_URL']);

const ROOT = SCHEMA as unknown as SchemaSection;

function fail(key: string, problem: string, source?: string): ConfigError {
  return new ConfigError(`config: ${problem}${source ? ` (${source})` : ''}`, key, source);
}

/** Renders a received value for an error message: `"abc"`, `12`, `a list`. */
function show(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value !== null && typeof value === 'object') return 'a mapping';
  if (value === undefined) return 'nothing';
  return JSON.stringify(value) ?? String(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** The closest candidate, if it is close enough to be a plausible typo (also catches snake_case spellings). */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[_-]/g, '');
  let best: string | undefined;
  let bestScore = Infinity;
  for (const c of candidates) {
    const score = norm(c) === norm(word) ? 0 : editDistance(word.toLowerCase(), c.toLowerCase());
    if (score < bestScore) [best, bestScore] = [c, score];
  }
  return bestScore <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function unknownKey(path: string, siblings: readonly string[], source?: string): ConfigError {
  const dot = path.lastIndexOf('.');
  const parent = dot < 0 ? '' : path.slice(0, dot + 1);
  const guess = closest(path.slice(dot + 1), siblings);
  const hint = guess === undefined ? '' : `; did you mean "${parent}${guess}"?`;
  return fail(path, `unknown key "${path}"${hint}`, source);
}

// ---------------------------------------------------------------------------
// Checking values against field specs.

// A topic filter: "#" only as the last level, "+" and "#" only as whole levels.
function topicFilterProblem(topic: string): string | undefined {
  if (topic.length === 0) return 'must not be empty';
  if (topic.includes('\u0000')) return 'must not contain NUL';
  const levels = topic.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i]!;
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '"#" must be a whole level and the last one';
    if (level.includes('+') && level !== '+') return '"+" must be a whole level';
  }
  return undefined;
}

function checkAclRules(value: unknown, path: string, source?: string): readonly unknown[] {
  if (!Array.isArray(value)) throw fail(path, `"${path}" must be a list of ACL rules (got ${show(value)})`, source);
  const allowed = ['action', 'permission', 'topic', 'username', 'clientId'];
  return value.map((rule: unknown, i) => {
    const at = `${path}[${i}]`;
    if (!isPlainObject(rule)) throw fail(at, `"${at}" must be a mapping with action, permission and topic (got ${show(rule)})`, source);
    for (const key of Object.keys(rule)) {
      if (!allowed.includes(key)) throw unknownKey(`${at}.${key}`, allowed, source);
    }
    const oneOf = (key: string, values: readonly string[]) => {
      if (!values.includes(rule[key] as string)) {
        throw fail(`${at}.${key}`, `"${at}.${key}" must be one of ${values.map((v) => `"${v}"`).join(', ')} (got ${show(rule[key])})`, source);
      }
    };
    oneOf('action', ACL_ACTIONS);
    oneOf('permission', ACL_PERMISSIONS);
    if (typeof rule.topic !== 'string') throw fail(`${at}.topic`, `"${at}.topic" must be a topic filter string (got ${show(rule.topic)})`, source);
    const problem = topicFilterProblem(rule.topic);
    if (problem) throw fail(`${at}.topic`, `"${at}.topic" is not a valid topic filter: ${problem} (got ${show(rule.topic)})`, source);
    for (const key of ['username', 'clientId']) {
      if (rule[key] !== undefined && typeof rule[key] !== 'string') {
        throw fail(`${at}.${key}`, `"${at}.${key}" must be a string (got ${show(rule[key])})`, source);
      }
    }
    // Rebuild so absent optional keys stay absent rather than `undefined`.
    const out: Record<string, unknown> = { action: rule.action, permission: rule.permission, topic: rule.topic };
    if (rule.username !== undefined) out.username = rule.username;
    if (rule.clientId !== undefined) out.clientId = rule.clientId;
    return out;
  });
}

// Each list item kind is validated by the module that owns its meaning, so the
// admin API (which edits the same objects at run time) and the config agree.
function checkListItem(item: ListItem, value: unknown): unknown {
  switch (item) {
    case 'username':
      if (typeof value !== 'string' || value.length === 0) throw new Error(`must be a non-empty string (got ${show(value)})`);
      return value;
    case 'origin':
      // What a browser sends in its Origin header: scheme://host[:port], nothing after.
      if (value !== '*' && (typeof value !== 'string' || !/^https?:\/\/[^/\s]+$/.test(value)))
        throw new Error(`must be an origin like https://chat.example.com, or * (got ${show(value)})`);
      return value;
    case 'topicTemplate':
      if (typeof value !== 'string') throw new Error(`must be a topic template string (got ${show(value)})`);
      return parseTemplate(value);
    case 'routingRule':
      return parseRule(value);
    case 'directoryEntry':
      return parseDirectoryEntry(value);
    case 'authMethod':
      return parseAuthMethodConfig(value);
  }
}

function checkList(spec: ListField, value: unknown, path: string, source?: string): readonly unknown[] {
  if (!Array.isArray(value)) throw fail(path, `"${path}" must be ${describeType(spec)} (got ${show(value)})`, source);
  const ids = new Set<string>();
  return value.map((v: unknown, i) => {
    const item = checkItem(spec, v, path, i, source);
    // Rules and directory entries are addressed by id / uid (admin API): one each.
    // Authentication methods by name (what clients send): one module each.
    const keyName = spec.item === 'routingRule' ? 'id' : spec.item === 'directoryEntry' ? 'uid' : spec.item === 'authMethod' ? 'name' : undefined;
    const id = keyName === undefined ? undefined : (item as Record<string, string>)[keyName];
    if (id !== undefined) {
      if (ids.has(id)) throw fail(`${path}[${i}]`, `"${path}[${i}]" repeats the ${keyName} "${id}"`, source);
      ids.add(id);
    }
    return item;
  });
}

function checkItem(spec: ListField, v: unknown, path: string, i: number, source?: string): unknown {
  const at = `${path}[${i}]`;
  try {
    return checkListItem(spec.item, v);
  } catch (err) {
    // The IM parsers' messages start with the field they blame ("destination: ...").
    const field = (err as { field?: string }).field;
    const key = field && (err instanceof RuleError || err instanceof DirectoryError) && field !== 'templates' ? `${at}.${field}` : at;
    throw fail(key, `"${at}" ${(err as Error).message}`, source);
  }
}

/** Validates one already-typed value (from YAML/JSON/overrides); returns it normalised. */
function checkField(spec: FieldSpec, value: unknown, path: string, source?: string): unknown {
  const bad = () => fail(path, `"${path}" must be ${describeType(spec)} (got ${show(value)})`, source);
  switch (spec.kind) {
    case 'int':
      if (spec.auto && value === 'auto') return value;
      if (spec.nullable && value === null) return null;
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < spec.min || value > spec.max) throw bad();
      return value;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw bad();
      if ((spec.min !== undefined && value < spec.min) || (spec.max !== undefined && value > spec.max)) throw bad();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'string':
      if (spec.nullable && (value === null || value === '')) return null;
      if (typeof value !== 'string' || (spec.pattern && !spec.pattern.test(value))) throw bad();
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) throw bad();
      return value;
    case 'aclRules':
      return checkAclRules(value, path, source);
    case 'list':
      return checkList(spec, value, path, source);
  }
}

/**
 * Converts text (an env variable or CLI flag value) to the field's type, then
 * validates it. Unparseable text is passed through as a string so the error
 * message shows exactly what was given.
 */
function parseText(spec: FieldSpec, text: string, path: string, source?: string): unknown {
  const t = text.trim();
  switch (spec.kind) {
    case 'int':
      if (spec.auto && t.toLowerCase() === 'auto') return 'auto';
      if (spec.nullable && (t === '' || t.toLowerCase() === 'null')) return null;
      return checkField(spec, /^[+-]?\d+$/.test(t) ? Number(t) : text, path, source);
    case 'number':
      return checkField(spec, t !== '' && Number.isFinite(Number(t)) ? Number(t) : text, path, source);
    case 'bool': {
      const word = t.toLowerCase();
      const parsed = ['true', '1', 'yes', 'on'].includes(word) ? true : ['false', '0', 'no', 'off'].includes(word) ? false : text;
      return checkField(spec, parsed, path, source);
    }
    case 'string':
      return checkField(spec, text, path, source);
    case 'enum':
      // Case-insensitive so LOG_LEVEL=DEBUG works; YAML values stay exact.
      return checkField(spec, spec.values.find((v) => v.toLowerCase() === t.toLowerCase()) ?? text, path, source);
    case 'list':
    case 'aclRules': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw fail(path, `"${path}" must be ${describeType(spec)} written as JSON (${(err as Error).message})`, source);
      }
      return checkField(spec, parsed, path, source);
    }
  }
}

/**
 * Parses a textual value for the setting at `path` (as for env variables and
 * CLI flags) and validates it. Throws ConfigError for unknown paths or bad values.
 */
export function parseSettingText(path: string, text: string, source?: string): unknown {
  const node = schemaAt(path);
  if (node === undefined || !isField(node)) throw fail(path, `unknown key "${path}"`, source);
  return parseText(node, text, path, source);
}

// ---------------------------------------------------------------------------
// Layers and merging.

function checkSection(section: SchemaSection, raw: unknown, prefix: string, source?: string): Record<string, unknown> {
  // An empty YAML section (`limits:` with every child commented out) parses as null.
  if (raw === null || raw === undefined) return {};
  if (!isPlainObject(raw)) {
    const what = prefix ? `"${prefix}"` : 'the configuration';
    throw fail(prefix, `${what} must be a mapping of settings (got ${show(raw)})`, source);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (!Object.hasOwn(section, key)) throw unknownKey(path, Object.keys(section), source);
    // `undefined` means "not given" (e.g. an unset CLI flag), never a value.
    if (value === undefined) continue;
    const node = section[key]!;
    out[key] = isField(node) ? checkField(node, value, path, source) : checkSection(node, value, path, source);
  }
  return out;
}

/** Validates a partial layer without merging it; returns a normalised copy. */
function checkLayer(raw: unknown, source?: string): DeepPartial<Config> {
  return checkSection(ROOT, raw, '', source) as DeepPartial<Config>;
}

function merge(base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) out[key] = merge(base[key], value);
  return out;
}

// Rules that span several keys, checked on the merged result.
function checkCrossField(cfg: Config, source?: string): void {
  // Every enabled listener on its own port (0 = any free port never clashes).
  const enabled = (['tcp', 'ws', 'tls', 'wss'] as const).filter((name) => cfg.listeners[name].enabled);
  for (let i = 1; i < enabled.length; i++) {
    const port = cfg.listeners[enabled[i]!].port;
    const clash = enabled.slice(0, i).find((other) => port !== 0 && cfg.listeners[other].port === port);
    if (clash) {
      const key = `listeners.${enabled[i]}.port`;
      throw fail(key, `"${key}" must differ from "listeners.${clash}.port" (both are ${port})`, source);
    }
  }
  checkTls(cfg, source);
}

/** The TLS listeners need a certificate and key; client certificates need the CA that signs them. */
function checkTls(cfg: Config, source?: string): void {
  const { tls: tlsListener, wss } = cfg.listeners;
  const users = [tlsListener.enabled && 'listeners.tls.enabled', wss.enabled && 'listeners.wss.enabled'].filter((k): k is string => k !== false);
  if (users.length === 0) return;
  const t = cfg.tls;
  const missing = (['certFile', 'keyFile'] as const).filter((k) => t[k] === null).map((k) => `"tls.${k}"`);
  if (missing.length > 0) {
    throw fail(`tls.${t.certFile === null ? 'certFile' : 'keyFile'}`, `"${users.join('" and "')}" need${users.length === 1 ? 's' : ''} ${missing.join(' and ')} (PEM files; \`switchboard cert\` makes a development pair)`, source);
  }
  const wantsClientCert = t.requestClientCert || t.requireClientCert;
  if (wantsClientCert && t.caFile === null) {
    const key = t.requireClientCert ? 'tls.requireClientCert' : 'tls.requestClientCert';
    throw fail('tls.caFile', `"${key}" needs "tls.caFile" (the CA that signs client certificates)`, source);
  }
  if (t.clientCertUsername && !wantsClientCert) {
    throw fail('tls.clientCertUsername', '"tls.clientCertUsername" needs "tls.requestClientCert" or "tls.requireClientCert" (no certificate is asked for otherwise)', source);
  }
  if (t.requireClientCert && wss.enabled) {
    // uWebSockets.js (the WSS listener) can neither require a client certificate nor
    // hand it to the broker: requiring one there would silently not be enforced.
    throw fail('tls.requireClientCert', '"tls.requireClientCert" is not supported by the WSS listener (uWebSockets.js cannot require or read client certificates); disable "listeners.wss.enabled" or use requestClientCert', source);
  }
}

function finish(layers: readonly DeepPartial<Config>[], source?: string): Config {
  let merged: unknown = DEFAULTS;
  for (const layer of layers) merged = merge(merged, layer);
  const cfg = merged as Config;
  checkCrossField(cfg, source);
  // merge() shares untouched subtrees with DEFAULTS, which are already frozen.
  return deepFreeze(cfg);
}

/**
 * Deep-merges `raw` (parsed YAML/JSON or a DeepPartial<Config>) onto DEFAULTS,
 * rejecting unknown keys and bad values with a ConfigError. `source` (e.g. a
 * file name) is appended to error messages. The result is deeply frozen.
 */
export function validateConfig(raw: unknown, source?: string): Config {
  return finish([checkLayer(raw, source)], source);
}

/** "SWITCHBOARD_LIMITS__MAX_INFLIGHT" for "limits.maxInflight". */
export function envVarName(path: string): string {
  return ENV_PREFIX + path.split('.').map((seg) => seg.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__');
}

// Best-effort inverse of envVarName, to name the key in "unknown key" errors.
function envPathGuess(name: string): string {
  return name
    .slice(ENV_PREFIX.length)
    .split('__')
    .map((seg) => seg.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase()))
    .join('.');
}

/** Builds a layer from SWITCHBOARD_* variables. Exported for tests and diagnostics. */
export function envLayer(env: NodeJS.ProcessEnv): DeepPartial<Config> {
  const fields = new Map(listFields().map((f) => [envVarName(f.path), f]));
  const out: Record<string, unknown> = {};
  // Sorted so that, when several variables are wrong, the reported one is deterministic.
  for (const name of Object.keys(env).sort()) {
    const text = env[name];
    if (!name.startsWith(ENV_PREFIX) || NOT_SETTINGS.has(name) || text === undefined) continue;
    const source = `from environment variable ${name}`;
    const field = fields.get(name);
    if (!field) {
      const path = envPathGuess(name);
      const node = schemaAt(path);
      if (node !== undefined) throw fail(path, `"${path}" is a section; set its keys individually (e.g. ${envVarName(listFields(node as SchemaSection, path)[0]!.path)})`, source);
      const guess = closest(name, [...fields.keys()]);
      const hint = guess ? `; did you mean ${guess}?` : '';
      throw fail(path, `unknown key "${path}"${hint}`, source);
    }
    let node = out;
    const keys = field.path.split('.');
    for (const key of keys.slice(0, -1)) node = (node[key] ??= {}) as Record<string, unknown>;
    node[keys.at(-1)!] = parseText(field.spec, text, field.path, source);
  }
  return out as DeepPartial<Config>;
}

/** Reads and parses a YAML (or JSON) config file; an empty file is an empty layer. */
export function readConfigFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'not found' : `cannot be read (${(err as Error).message})`;
    throw new ConfigError(`config: config file "${file}" ${why}`, '', file);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true });
  const err = doc.errors[0];
  if (err) throw new ConfigError(`config: config file "${file}" is not valid YAML: ${err.message.trimEnd()}`, '', file);
  return doc.toJS() as unknown;
}

export interface LoadOptions {
  /** YAML/JSON file; defaults to $SWITCHBOARD_CONFIG when set. */
  file?: string;
  /** Environment to read SWITCHBOARD_* variables from; defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** Highest-precedence values, typically from CLI flags. */
  overrides?: DeepPartial<Config>;
}

/**
 * Builds the effective configuration: DEFAULTS < file < environment < overrides.
 * Throws ConfigError (code "CONFIG_INVALID") naming the key and its source.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? (env[ENV_CONFIG_FILE] || undefined);
  const layers: DeepPartial<Config>[] = [];
  if (file !== undefined) layers.push(checkLayer(readConfigFile(file), `in ${file}`));
  layers.push(envLayer(env));
  if (opts.overrides !== undefined) layers.push(checkLayer(opts.overrides, 'from overrides'));
  return finish(layers);
}
