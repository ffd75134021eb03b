/** The `auth.enhanced` section: MQTT 5 enhanced authentication (docs/authentication.md). */
import { describe, expect, it } from 'vitest';
import { ConfigError, envLayer, validateConfig } from '../../../src/config/load.js';
import { DEFAULTS } from '../../../src/config/schema.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config: auth.enhanced', () => {
  it('has the documented defaults', () => {
    expect(DEFAULTS.auth.enhanced).toEqual({ scram: true, methods: [], maxSteps: 10, reauthTimeout: 30 });
  });

  it('methods: { name, module, options? }, names unique; bad entries name the key', () => {
    const cfg = validateConfig({ auth: { enhanced: { methods: [{ name: 'X-A', module: './a.mjs', options: { k: 1 } }, { name: 'X-B', module: 'pkg' }] } } });
    expect(cfg.auth.enhanced.methods).toEqual([{ name: 'X-A', module: './a.mjs', options: { k: 1 } }, { name: 'X-B', module: 'pkg' }]);
    expect(configError(() => validateConfig({ auth: { enhanced: { methods: [{ name: 'X', module: 'a' }, { name: 'X', module: 'b' }] } } })).message).toContain('repeats the name "X"');
    const e = configError(() => validateConfig({ auth: { enhanced: { methods: [{ name: 'has space', module: 'a' }] } } }));
    expect(e.key).toBe('auth.enhanced.methods[0]');
    expect(e.message).toContain('printable ASCII');
    expect(configError(() => validateConfig({ auth: { enhanced: { methods: [{ name: 'X' }] } } })).message).toContain('module');
  });

  it('maxSteps and reauthTimeout are bounded; environment variables work', () => {
    expect(configError(() => validateConfig({ auth: { enhanced: { maxSteps: 0 } } })).key).toBe('auth.enhanced.maxSteps');
    expect(configError(() => validateConfig({ auth: { enhanced: { reauthTimeout: 0 } } })).key).toBe('auth.enhanced.reauthTimeout');
    expect(envLayer({ SWITCHBOARD_AUTH__ENHANCED__REAUTH_TIMEOUT: '5', SWITCHBOARD_AUTH__ENHANCED__SCRAM: 'false' })).toEqual({ auth: { enhanced: { reauthTimeout: 5, scram: false } } });
    expect(envLayer({ SWITCHBOARD_AUTH__ENHANCED__METHODS: '[{"name":"X","module":"./x.mjs"}]' })).toEqual({ auth: { enhanced: { methods: [{ name: 'X', module: './x.mjs' }] } } });
  });
});
