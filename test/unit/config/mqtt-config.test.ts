/** The `mqtt` section (MQTT 5 capabilities, docs/mqtt5.md) and nullable integer settings. */
import { describe, expect, it } from 'vitest';
import { ConfigError, envLayer, loadConfig, validateConfig } from '../../../src/config/load.js';
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

describe('config: mqtt', () => {
  it('has the documented defaults', () => {
    expect(DEFAULTS.mqtt).toEqual({
      topicAliasMaximum: 16,
      topicAliasMaximumOut: 16,
      maximumQoS: 2,
      retainAvailable: true,
      wildcardSubscriptionAvailable: true,
      subscriptionIdentifiersAvailable: true,
      serverKeepAlive: null,
      responseInformation: null,
      serverReference: null,
      serverMoved: false,
      validatePayloadFormat: true,
    });
  });

  it('accepts values in range from a file layer and refuses the others, naming the key', () => {
    const cfg = validateConfig({ mqtt: { topicAliasMaximum: 0, maximumQoS: 1, serverKeepAlive: 30, responseInformation: 'reply/{clientid}/' } });
    expect(cfg.mqtt).toMatchObject({ topicAliasMaximum: 0, maximumQoS: 1, serverKeepAlive: 30, responseInformation: 'reply/{clientid}/' });
    expect(configError(() => validateConfig({ mqtt: { maximumQoS: 3 } })).key).toBe('mqtt.maximumQoS');
    expect(configError(() => validateConfig({ mqtt: { topicAliasMaximum: 65_536 } })).key).toBe('mqtt.topicAliasMaximum');
    expect(validateConfig({ mqtt: { topicAliasMaximumOut: 0 } }).mqtt.topicAliasMaximumOut).toBe(0);
    expect(configError(() => validateConfig({ mqtt: { topicAliasMaximumOut: -1 } })).key).toBe('mqtt.topicAliasMaximumOut');
    expect(configError(() => validateConfig({ mqtt: { serverKeepAlive: 0 } })).message).toContain('an integer between 1 and 65535 or null');
    expect(configError(() => validateConfig({ mqtt: { responseInformation: 'reply/#' } })).key).toBe('mqtt.responseInformation');
    expect(configError(() => validateConfig({ mqtt: { topicAliasMax: 3 } })).message).toContain('did you mean "mqtt.topicAliasMaximum"');
  });

  it('a nullable integer is null by default, and null again from an empty or "null" environment variable', () => {
    expect(validateConfig({ mqtt: { serverKeepAlive: null } }).mqtt.serverKeepAlive).toBeNull();
    expect(envLayer({ SWITCHBOARD_MQTT__SERVER_KEEP_ALIVE: '45' })).toEqual({ mqtt: { serverKeepAlive: 45 } });
    expect(envLayer({ SWITCHBOARD_MQTT__SERVER_KEEP_ALIVE: '' })).toEqual({ mqtt: { serverKeepAlive: null } });
    expect(envLayer({ SWITCHBOARD_MQTT__SERVER_KEEP_ALIVE: 'null' })).toEqual({ mqtt: { serverKeepAlive: null } });
    expect(configError(() => envLayer({ SWITCHBOARD_MQTT__SERVER_KEEP_ALIVE: 'soon' })).key).toBe('mqtt.serverKeepAlive');
  });

  it('reads the redirection settings from the environment', () => {
    const cfg = loadConfig({ env: { SWITCHBOARD_MQTT__SERVER_REFERENCE: 'mqtt2.example.com:1883', SWITCHBOARD_MQTT__SERVER_MOVED: 'true' } });
    expect(cfg.mqtt.serverReference).toBe('mqtt2.example.com:1883');
    expect(cfg.mqtt.serverMoved).toBe(true);
    expect(loadConfig({ env: { SWITCHBOARD_MQTT__SERVER_REFERENCE: '' } }).mqtt.serverReference).toBeNull();
  });
});
