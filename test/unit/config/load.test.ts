import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, envLayer, envVarName, loadConfig, validateConfig } from '../../../src/config/load.js';
import { DEFAULTS, listFields, resolveThreads, SCHEMA } from '../../../src/config/schema.js';

const dir = mkdtempSync(join(tmpdir(), 'switchboard-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `cfg-${n++}.${ext}`);
  writeFileSync(path, text);
  return path;
}

/** Runs fn, expects a ConfigError, returns it. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).code).toBe('CONFIG_INVALID');
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('DEFAULTS', () => {
  it('has the documented values', () => {
    expect(DEFAULTS.host).toBe('0.0.0.0');
    expect(DEFAULTS.dataDir).toBe('./data');
    expect(DEFAULTS.store).toEqual({ durability: 'sync', asyncMaxLag: 100, evictOfflineAfter: 60 });
    expect(DEFAULTS.shutdownTimeout).toBe(10);
    expect(DEFAULTS.listeners).toEqual({
      tcp: { enabled: true, port: 1883 },
      ws: { enabled: true, port: 8083, path: '/mqtt', corsOrigins: [] },
      tls: { enabled: false, port: 8883 },
      wss: { enabled: false, port: 8084, path: '/mqtt' },
    });
    expect(DEFAULTS.threads).toEqual({ gateways: 'auto', shards: 'auto' });
    expect(DEFAULTS.limits).toEqual({
      maxConnections: 100000,
      maxPacketSize: 1048576,
      maxInflight: 1000,
      maxQueuedMessages: 1000,
      maxSubscriptionsPerClient: 1000,
      maxTopicLength: 65535,
      maxTopicLevels: 128,
      maxClientIdLength: 256,
      maxSessionExpiryInterval: 604800,
      maxRetainedMessages: 100000,
      socketBufferHighWater: 1048576,
      maxKeepAlive: 65535,
      connectTimeout: 10,
      maxSessions: 1000000,
      maxAnonymousSessions: 100000,
      maxAnonymousSessionExpiry: 86400,
      queueFullPolicy: 'drop',
      maxHeldPerSession: 1000,
      maxAckHoldSeconds: 30,
    });
    const noJwt = { secret: null, publicKeyFile: null, jwksFile: null, issuer: null, audience: null };
    const enhanced = { scram: true, methods: [], maxSteps: 10, reauthTimeout: 30 };
    expect(DEFAULTS.auth).toEqual({ allowAnonymous: true, usersFile: null, jwt: noJwt, enhanced, aclDefault: 'allow', acl: [] });
    expect(DEFAULTS.im.presubscribe.templates).toEqual(['/{ns}/im/u/{uid}']);
    expect(DEFAULTS.im.rules).toEqual([{ id: 'carbons', source: '/+/im/u/+', action: 'copy', destination: '/{1}/im/u/{sender}' }]);
    expect(DEFAULTS.admin).toEqual({ token: null });
    expect(DEFAULTS.log).toEqual({ level: 'info' });
  });

  it('is deeply frozen and every schema field has a doc line', () => {
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.limits)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.auth.acl)).toBe(true);
    for (const { path, spec } of listFields()) expect(spec.doc.length, path).toBeGreaterThan(0);
    expect(listFields().map((f) => f.path)).toContain('limits.maxInflight');
    expect(SCHEMA.limits.maxInflight.kind).toBe('int');
  });
});

describe('validateConfig', () => {
  it('returns DEFAULTS for empty input', () => {
    expect(validateConfig(undefined)).toEqual(DEFAULTS);
    expect(validateConfig(null)).toEqual(DEFAULTS);
    expect(validateConfig({})).toEqual(DEFAULTS);
  });

  it('deep-merges partial input and freezes the result', () => {
    const cfg = validateConfig({ listeners: { tcp: { port: 1884 } }, limits: { maxInflight: 5 } });
    expect(cfg.listeners.tcp).toEqual({ enabled: true, port: 1884 });
    expect(cfg.listeners.ws).toEqual(DEFAULTS.listeners.ws);
    expect(cfg.limits.maxInflight).toBe(5);
    expect(cfg.limits.maxQueuedMessages).toBe(1000);
    expect(Object.isFrozen(cfg.listeners.tcp)).toBe(true);
    expect(() => {
      (cfg.limits as { maxInflight: number }).maxInflight = 1;
    }).toThrow(TypeError);
    expect(DEFAULTS.listeners.tcp.port).toBe(1883);
  });

  it('rejects unknown top-level and nested keys, naming the path', () => {
    let err = configError(() => validateConfig({ hots: 'x' }));
    expect(err.key).toBe('hots');
    expect(err.message).toContain('unknown key "hots"');
    expect(err.message).toContain('did you mean "host"');

    err = configError(() => validateConfig({ limits: { maxInflite: 10 } }, 'my.yaml'));
    expect(err.key).toBe('limits.maxInflite');
    expect(err.message).toMatch(/^config: unknown key "limits\.maxInflite"; did you mean "limits\.maxInflight"\? \(my\.yaml\)$/);
    expect(err.source).toBe('my.yaml');

    err = configError(() => validateConfig({ listeners: { tcp: { port: 1, tls: true } } }));
    expect(err.key).toBe('listeners.tcp.tls');

    err = configError(() => validateConfig({ limits: { max_inflight: 10 } }));
    expect(err.message).toContain('did you mean "limits.maxInflight"');
  });

  it('rejects wrong types and out-of-range values', () => {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ listeners: { tcp: { port: 'abc' } } }, 'listeners.tcp.port', /"listeners\.tcp\.port" must be an integer between 0 and 65535 \(got "abc"\)/],
      [{ listeners: { tcp: { port: 70000 } } }, 'listeners.tcp.port', /\(got 70000\)/],
      [{ listeners: { tcp: { port: 1.5 } } }, 'listeners.tcp.port', /integer/],
      [{ limits: { maxPacketSize: 0 } }, 'limits.maxPacketSize', /between 1 and 268435455/],
      [{ limits: { maxInflight: 65536 } }, 'limits.maxInflight', /between 1 and 65535/],
      [{ limits: { maxClientIdLength: 10 } }, 'limits.maxClientIdLength', /between 23 and/],
      [{ threads: { gateways: 65 } }, 'threads.gateways', /"auto" or an integer between 0 and 64/],
      [{ threads: { shards: 'many' } }, 'threads.shards', /got "many"/],
      [{ listeners: { ws: { enabled: 'yes' } } }, 'listeners.ws.enabled', /true or false/],
      [{ listeners: { ws: { path: 'mqtt' } } }, 'listeners.ws.path', /starting with "\/"/],
      [{ host: '' }, 'host', /non-empty/],
      [{ host: 42 }, 'host', /got 42/],
      [{ log: { level: 'verbose' } }, 'log.level', /one of "trace", "debug"/],
      [{ auth: { aclDefault: 'maybe' } }, 'auth.aclDefault', /one of "allow", "deny"/],
      [{ auth: { usersFile: 3 } }, 'auth.usersFile', /string or null/],
      [{ limits: 5 }, 'limits', /"limits" must be a mapping/],
      [{ limits: [1] }, 'limits', /got a list/],
      [[1, 2], '', /the configuration must be a mapping/],
    ];
    for (const [raw, key, message] of cases) {
      const err = configError(() => validateConfig(raw));
      expect(err.key, JSON.stringify(raw)).toBe(key);
      expect(err.message, JSON.stringify(raw)).toMatch(message);
    }
  });

  it('store.durability takes sync, async or memory; anything else is rejected naming the key and the choices', () => {
    for (const durability of ['sync', 'async', 'memory'] as const) {
      expect(validateConfig({ store: { durability } }).store).toEqual({ durability, asyncMaxLag: 100, evictOfflineAfter: 60 });
    }
    const err = configError(() => validateConfig({ store: { durability: 'fast' } }));
    expect(err.key).toBe('store.durability');
    expect(err.message).toContain('"store.durability"');
    expect(err.message).toMatch(/"sync", "async", "memory"/);
    expect(err.message).toContain('(got "fast")');
    // From the environment too.
    const env = configError(() => loadConfig({ env: { [envVarName('store.durability')]: 'fast' } }));
    expect(env.key).toBe('store.durability');
    expect(env.message).toMatch(/"sync", "async", "memory"/);
  });

  it('limits.queueFullPolicy takes drop or hold; maxHeldPerSession and maxAckHoldSeconds are range-checked', () => {
    for (const queueFullPolicy of ['drop', 'hold'] as const) expect(validateConfig({ limits: { queueFullPolicy } }).limits.queueFullPolicy).toBe(queueFullPolicy);
    expect(() => validateConfig({ limits: { queueFullPolicy: 'block' as 'hold' } })).toThrow(/limits\.queueFullPolicy/);
    expect(validateConfig({ limits: { maxHeldPerSession: 0, maxAckHoldSeconds: 1 } }).limits).toMatchObject({ maxHeldPerSession: 0, maxAckHoldSeconds: 1 });
    expect(() => validateConfig({ limits: { maxAckHoldSeconds: 0 } })).toThrow(/limits\.maxAckHoldSeconds/);
    expect(() => validateConfig({ limits: { maxHeldPerSession: -1 } })).toThrow(/limits\.maxHeldPerSession/);
  });

  it('store.evictOfflineAfter, shutdownTimeout and the anonymous-session limits are range-checked', () => {
    expect(validateConfig({ store: { evictOfflineAfter: 0 }, shutdownTimeout: 1 })).toMatchObject({ store: { durability: 'sync', evictOfflineAfter: 0 }, shutdownTimeout: 1 });
    expect(validateConfig({ limits: { maxAnonymousSessions: 0, maxAnonymousSessionExpiry: 0 } }).limits).toMatchObject({ maxAnonymousSessions: 0, maxAnonymousSessionExpiry: 0 });
    expect(validateConfig({ limits: { maxAnonymousSessionExpiry: 4_294_967_295 } }).limits.maxAnonymousSessionExpiry).toBe(4_294_967_295);
    const cases: Array<[unknown, string]> = [
      [{ store: { evictOfflineAfter: -1 } }, 'store.evictOfflineAfter'],
      [{ shutdownTimeout: 0 }, 'shutdownTimeout'],
      [{ shutdownTimeout: 3601 }, 'shutdownTimeout'],
      [{ limits: { maxAnonymousSessions: -1 } }, 'limits.maxAnonymousSessions'],
      [{ limits: { maxAnonymousSessionExpiry: 4_294_967_296 } }, 'limits.maxAnonymousSessionExpiry'],
      [{ store: { durabilty: 'sync' } }, 'store.durabilty'],
    ];
    for (const [raw, key] of cases) expect(configError(() => validateConfig(raw)).key, JSON.stringify(raw)).toBe(key);
  });

  it('accepts "auto" and explicit thread counts, null/empty usersFile', () => {
    expect(validateConfig({ threads: { gateways: 0, shards: 'auto' } }).threads).toEqual({ gateways: 0, shards: 'auto' });
    expect(validateConfig({ auth: { usersFile: '' } }).auth.usersFile).toBeNull();
    expect(validateConfig({ auth: { usersFile: 'users.txt' } }).auth.usersFile).toBe('users.txt');
  });

  it('validates ACL rules', () => {
    const acl = [
      { action: 'allow', permission: 'publish', topic: 'a/+/c', username: 'u' },
      { action: 'deny', permission: 'all', topic: '#', clientId: 'c1' },
    ];
    expect(validateConfig({ auth: { acl } }).auth.acl).toEqual(acl);

    const bad: Array<[unknown, string]> = [
      [{ action: 'permit', permission: 'all', topic: 'a' }, 'auth.acl[0].action'],
      [{ action: 'allow', permission: 'read', topic: 'a' }, 'auth.acl[0].permission'],
      [{ action: 'allow', permission: 'all' }, 'auth.acl[0].topic'],
      [{ action: 'allow', permission: 'all', topic: 'a/#/b' }, 'auth.acl[0].topic'],
      [{ action: 'allow', permission: 'all', topic: 'a+' }, 'auth.acl[0].topic'],
      [{ action: 'allow', permission: 'all', topic: 'a', user: 'x' }, 'auth.acl[0].user'],
      [{ action: 'allow', permission: 'all', topic: 'a', username: 5 }, 'auth.acl[0].username'],
      ['allow all', 'auth.acl[0]'],
    ];
    for (const [rule, key] of bad) {
      const err = configError(() => validateConfig({ auth: { acl: [rule] } }));
      expect(err.key, JSON.stringify(rule)).toBe(key);
      expect(err.message).toContain(`"${key}`);
    }
    expect(configError(() => validateConfig({ auth: { acl: { topic: '#' } } })).key).toBe('auth.acl');
  });

  it('rejects the same port for both enabled listeners', () => {
    const err = configError(() => validateConfig({ listeners: { tcp: { port: 9000 }, ws: { port: 9000 } } }));
    expect(err.key).toBe('listeners.ws.port');
    expect(validateConfig({ listeners: { tcp: { port: 9000 }, ws: { port: 9000, enabled: false } } }).listeners.ws.port).toBe(9000);
    expect(validateConfig({ listeners: { tcp: { port: 0 }, ws: { port: 0 } } }).listeners.tcp.port).toBe(0);
  });
});

describe('loadConfig', () => {
  it('uses defaults with no file, env or overrides', () => {
    expect(loadConfig({ env: {} })).toEqual(DEFAULTS);
  });

  it('reads a YAML file', () => {
    const path = file(`
host: 127.0.0.1
listeners:
  tcp: { port: 1885 }
  ws:
    enabled: false
threads: { gateways: 2, shards: auto }
limits:
  maxInflight: 20
auth:
  allowAnonymous: false
  usersFile: ./users
  aclDefault: deny
  acl:
    - { action: allow, permission: subscribe, topic: "chat/#" }
log:
  level: debug
`);
    const cfg = loadConfig({ file: path, env: {} });
    expect(cfg.host).toBe('127.0.0.1');
    expect(cfg.listeners).toEqual({ ...DEFAULTS.listeners, tcp: { enabled: true, port: 1885 }, ws: { enabled: false, port: 8083, path: '/mqtt', corsOrigins: [] } });
    expect(cfg.threads).toEqual({ gateways: 2, shards: 'auto' });
    expect(cfg.limits.maxInflight).toBe(20);
    expect(cfg.auth).toEqual({
      allowAnonymous: false,
      usersFile: './users',
      jwt: { secret: null, publicKeyFile: null, jwksFile: null, issuer: null, audience: null },
      enhanced: DEFAULTS.auth.enhanced,
      aclDefault: 'deny',
      acl: [{ action: 'allow', permission: 'subscribe', topic: 'chat/#' }],
    });
    expect(cfg.log.level).toBe('debug');
  });

  it('reads JSON and treats an empty file or empty section as defaults', () => {
    expect(loadConfig({ file: file('{"limits": {"maxInflight": 7}}', 'json'), env: {} }).limits.maxInflight).toBe(7);
    expect(loadConfig({ file: file(''), env: {} })).toEqual(DEFAULTS);
    expect(loadConfig({ file: file('limits:\n  # maxInflight: 5\n'), env: {} })).toEqual(DEFAULTS);
  });

  it('names the file in errors', () => {
    const missing = join(dir, 'nope.yaml');
    let err = configError(() => loadConfig({ file: missing, env: {} }));
    expect(err.message).toContain(missing);
    expect(err.message).toContain('not found');

    const typo = file('limits:\n  maxInflite: 10\n');
    err = configError(() => loadConfig({ file: typo, env: {} }));
    expect(err.key).toBe('limits.maxInflite');
    expect(err.message).toContain('unknown key "limits.maxInflite"');
    expect(err.message).toContain(typo);

    err = configError(() => loadConfig({ file: file('limits: [unclosed\n'), env: {} }));
    expect(err.message).toContain('not valid YAML');

    err = configError(() => loadConfig({ file: file('host: a\nhost: b\n'), env: {} }));
    expect(err.message).toContain('not valid YAML');

    err = configError(() => loadConfig({ file: file('- 1\n- 2\n'), env: {} }));
    expect(err.message).toContain('must be a mapping');
  });

  it('applies env overrides with correct types', () => {
    const cfg = loadConfig({
      env: {
        PATH: '/usr/bin',
        SWITCHBOARD_LISTENERS__TCP__PORT: '1884',
        SWITCHBOARD_LISTENERS__WS__ENABLED: 'false',
        SWITCHBOARD_LIMITS__MAX_INFLIGHT: '10',
        SWITCHBOARD_LOG__LEVEL: 'DEBUG',
        SWITCHBOARD_DATA_DIR: '/x',
        SWITCHBOARD_THREADS__GATEWAYS: 'auto',
        SWITCHBOARD_THREADS__SHARDS: '0',
        SWITCHBOARD_AUTH__ALLOW_ANONYMOUS: 'no',
        SWITCHBOARD_AUTH__USERS_FILE: '',
        SWITCHBOARD_AUTH__ACL: '[{"action":"deny","permission":"publish","topic":"$SYS/#"}]',
      },
    });
    expect(cfg.listeners.tcp.port).toBe(1884);
    expect(cfg.listeners.ws.enabled).toBe(false);
    expect(cfg.limits.maxInflight).toBe(10);
    expect(cfg.log.level).toBe('debug');
    expect(cfg.dataDir).toBe('/x');
    expect(cfg.threads).toEqual({ gateways: 'auto', shards: 0 });
    expect(cfg.auth.allowAnonymous).toBe(false);
    expect(cfg.auth.usersFile).toBeNull();
    expect(cfg.auth.acl).toEqual([{ action: 'deny', permission: 'publish', topic: '$SYS/#' }]);
  });

  it('names env variables after the key path', () => {
    expect(envVarName('limits.maxInflight')).toBe('SWITCHBOARD_LIMITS__MAX_INFLIGHT');
    expect(envVarName('dataDir')).toBe('SWITCHBOARD_DATA_DIR');
    expect(envVarName('listeners.tcp.port')).toBe('SWITCHBOARD_LISTENERS__TCP__PORT');
    // Every setting's default, written as env text, round-trips through its variable.
    for (const { path, spec } of listFields()) {
      const d = spec.default;
      const text = d === null ? '' : typeof d === 'object' ? JSON.stringify(d) : String(d);
      const cfg = loadConfig({ env: { [envVarName(path)]: text } });
      expect(cfg, path).toEqual(DEFAULTS);
      expect(Object.keys(envLayer({ [envVarName(path)]: text })), path).toEqual([path.split('.')[0]]);
    }
  });

  it('rejects bad env values and unknown SWITCHBOARD_ variables', () => {
    let err = configError(() => loadConfig({ env: { SWITCHBOARD_LISTENERS__TCP__PORT: 'abc' } }));
    expect(err.key).toBe('listeners.tcp.port');
    expect(err.message).toBe(
      'config: "listeners.tcp.port" must be an integer between 0 and 65535 (got "abc") (from environment variable SWITCHBOARD_LISTENERS__TCP__PORT)',
    );

    err = configError(() => loadConfig({ env: { SWITCHBOARD_LIMITS__MAX_INFLITE: '10' } }));
    expect(err.key).toBe('limits.maxInflite');
    expect(err.message).toContain('unknown key "limits.maxInflite"');
    expect(err.message).toContain('did you mean SWITCHBOARD_LIMITS__MAX_INFLIGHT');

    err = configError(() => loadConfig({ env: { SWITCHBOARD_LIMITS: '{}' } }));
    expect(err.key).toBe('limits');
    expect(err.message).toContain('is a section');

    expect(configError(() => loadConfig({ env: { SWITCHBOARD_LIMITS__MAX_INFLIGHT: '1.5' } })).key).toBe('limits.maxInflight');
    expect(configError(() => loadConfig({ env: { SWITCHBOARD_LIMITS__MAX_INFLIGHT: '' } })).key).toBe('limits.maxInflight');
    expect(configError(() => loadConfig({ env: { SWITCHBOARD_AUTH__ALLOW_ANONYMOUS: 'maybe' } })).key).toBe('auth.allowAnonymous');
    err = configError(() => loadConfig({ env: { SWITCHBOARD_AUTH__ACL: '[{' } }));
    expect(err.key).toBe('auth.acl');
    expect(err.message).toContain('JSON');
  });

  it('layers file < env < overrides', () => {
    const path = file('limits: { maxInflight: 20, maxQueuedMessages: 50 }\nlisteners: { tcp: { port: 1000 } }\n');
    const cfg = loadConfig({
      file: path,
      env: { SWITCHBOARD_LIMITS__MAX_INFLIGHT: '30', SWITCHBOARD_LISTENERS__TCP__PORT: '2000' },
      overrides: { listeners: { tcp: { port: 3000 } }, host: undefined },
    });
    expect(cfg.limits.maxInflight).toBe(30);
    expect(cfg.limits.maxQueuedMessages).toBe(50);
    expect(cfg.listeners.tcp.port).toBe(3000);
    expect(cfg.host).toBe('0.0.0.0');
  });

  it('uses SWITCHBOARD_CONFIG when no file is given', () => {
    const path = file('log: { level: warn }\n');
    expect(loadConfig({ env: { SWITCHBOARD_CONFIG: path } }).log.level).toBe('warn');
    expect(loadConfig({ file: file('log: { level: error }\n'), env: { SWITCHBOARD_CONFIG: path } }).log.level).toBe('error');
  });

  it('validates overrides', () => {
    const err = configError(() => loadConfig({ env: {}, overrides: { limits: { maxInflight: 0 } } }));
    expect(err.key).toBe('limits.maxInflight');
    expect(err.message).toContain('from overrides');
  });
});

describe('resolveThreads', () => {
  const cfg = (gateways: number | 'auto', shards: number | 'auto') => validateConfig({ threads: { gateways, shards } });

  it('runs the whole broker in one thread on a host of at most 2 CPUs (measured faster there)', () => {
    expect(resolveThreads(cfg('auto', 'auto'), 1)).toEqual({ gateways: 0, shards: 0 });
    expect(resolveThreads(cfg('auto', 'auto'), 2)).toEqual({ gateways: 0, shards: 0 });
    // One explicit count keeps the split rule.
    expect(resolveThreads(cfg(1, 'auto'), 2)).toEqual({ gateways: 1, shards: 1 });
    expect(resolveThreads(cfg('auto', 1), 2)).toEqual({ gateways: 1, shards: 1 });
  });

  it('splits CPUs between gateways and shards for "auto" on larger hosts', () => {
    expect(resolveThreads(cfg('auto', 'auto'), 3)).toEqual({ gateways: 1, shards: 2 });
    expect(resolveThreads(cfg('auto', 'auto'), 8)).toEqual({ gateways: 4, shards: 4 });
  });

  it('keeps explicit counts and gives the remaining CPUs to auto shards', () => {
    expect(resolveThreads(cfg(0, 0), 8)).toEqual({ gateways: 0, shards: 0 });
    expect(resolveThreads(cfg(2, 'auto'), 8)).toEqual({ gateways: 2, shards: 6 });
    expect(resolveThreads(cfg(16, 'auto'), 8)).toEqual({ gateways: 16, shards: 1 });
    expect(resolveThreads(cfg('auto', 3), 8)).toEqual({ gateways: 4, shards: 3 });
  });

  it('defaults to the machine CPU count', () => {
    const { gateways, shards } = resolveThreads(DEFAULTS);
    expect(gateways).toBeGreaterThanOrEqual(0);
    expect(shards).toBeGreaterThanOrEqual(0);
  });
});

describe('IM list settings', () => {
  it('validates routing rules and names the bad field', () => {
    expect(() => validateConfig({ im: { rules: [{ id: 'x', source: '/+/im/u/+', action: 'copy', destination: '/{3}/im' }] } })).toThrow(/im\.rules\[0\]/);
    expect(() => validateConfig({ im: { rules: [{ id: 'x', source: '/a', action: 'explode' }] } })).toThrow(/action/);
  });

  it('validates directory entries and templates', () => {
    expect(validateConfig({ im: { presubscribe: { directory: [{ uid: 'jim', groups: ['team'] }] } } }).im.presubscribe.directory).toEqual([{ uid: 'jim', groups: ['team'] }]);
    expect(() => validateConfig({ im: { presubscribe: { directory: [{ uid: 'a/b' }] } } })).toThrow(/directory\[0\]/);
    expect(() => validateConfig({ im: { presubscribe: { templates: ['/{nope}/x'] } } })).toThrow(/templates\[0\]/);
  });

  it('reads list settings from the environment as JSON', () => {
    const cfg = loadConfig({ env: { SWITCHBOARD_IM__SUPERUSERS: '["ops"]' } });
    expect(cfg.im.superusers).toEqual(['ops']);
  });

  it('listeners.ws.corsOrigins takes origins or *, nothing with a path', () => {
    expect(validateConfig({ listeners: { ws: { corsOrigins: ['https://chat.example.com', 'http://localhost:3000', '*'] } } }).listeners.ws.corsOrigins).toHaveLength(3);
    expect(() => validateConfig({ listeners: { ws: { corsOrigins: ['https://chat.example.com/app'] } } })).toThrow(/corsOrigins\[0\]/);
    expect(() => validateConfig({ listeners: { ws: { corsOrigins: ['chat.example.com'] } } })).toThrow(/origin/);
  });

  it('ignores SWITCHBOARD_ADMIN_URL, which is the admin CLI\'s setting', () => {
    expect(() => loadConfig({ env: { SWITCHBOARD_ADMIN_URL: 'http://x' } })).not.toThrow();
  });
});
