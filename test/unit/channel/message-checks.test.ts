/**
 * A v5 message's Response Topic and Payload Format Indicator checked against its content
 * (src/channel/message-checks.ts), on PUBLISH and on the will of a CONNECT.
 */
import { describe, expect, it } from 'vitest';
import type { IConnackPacket, IPubackPacket } from 'mqtt-packet';
import { handleIn, newChannelState } from '../../../src/channel/index.js';
import { messageProblem } from '../../../src/channel/message-checks.js';
import { RC } from '../../../src/mqtt/reason-codes.js';
import { closeOf, connectPacket, connectedState, makeEnv, publish, routes, sent } from './channel-env.js';

const BAD_UTF8 = Buffer.from([0x61, 0xc3, 0x28]); // 0xC3 must be followed by a continuation byte

describe('messageProblem', () => {
  it('refuses a Response Topic with wildcards or empty [MQTT-3.3.2-14]', () => {
    for (const rt of ['reply/+', 'reply/#', '#', ''])
      expect(messageProblem({ responseTopic: rt }, Buffer.from('x'), true)?.rc).toBe(RC.PROTOCOL_ERROR);
    expect(messageProblem({ responseTopic: 'reply/c1' }, Buffer.from('x'), true)).toBeNull();
  });

  it('refuses Payload Format Indicator 1 with a payload that is not UTF-8 (0x99, section 3.3.2.3.2)', () => {
    expect(messageProblem({ payloadFormatIndicator: true }, BAD_UTF8, true)?.rc).toBe(RC.PAYLOAD_FORMAT_INVALID);
    expect(messageProblem({ payloadFormatIndicator: true }, Buffer.from('héllo ✓'), true)).toBeNull();
    // Indicator 0 (unspecified bytes) is never checked, nor anything when the check is off.
    expect(messageProblem({ payloadFormatIndicator: false }, BAD_UTF8, true)).toBeNull();
    expect(messageProblem({ payloadFormatIndicator: true }, BAD_UTF8, false)).toBeNull();
    expect(messageProblem(undefined, BAD_UTF8, true)).toBeNull();
  });
});

describe('PUBLISH', () => {
  it('Payload Format Indicator 1 with invalid UTF-8: PUBACK/PUBREC 0x99, not routed', () => {
    const env = makeEnv();
    for (const qos of [1, 2] as const) {
      const st = connectedState(5, env);
      const fx = handleIn(st, publish({ qos, messageId: 7, payload: BAD_UTF8, properties: { payloadFormatIndicator: true } }), env);
      expect(routes(fx)).toHaveLength(0);
      const ack = sent(fx)[0] as IPubackPacket;
      expect(ack).toMatchObject({ cmd: qos === 1 ? 'puback' : 'pubrec', messageId: 7, reasonCode: RC.PAYLOAD_FORMAT_INVALID });
      expect(st.phase).toBe('connected');
    }
  });

  it('Payload Format Indicator 1 with invalid UTF-8 at QoS 0: DISCONNECT 0x99', () => {
    const env = makeEnv();
    const st = connectedState(5, env);
    const fx = handleIn(st, publish({ payload: BAD_UTF8, properties: { payloadFormatIndicator: true } }), env);
    expect(routes(fx)).toHaveLength(0);
    expect(closeOf(fx)).toMatchObject({ reason: RC.PAYLOAD_FORMAT_INVALID, why: 'payload_format_invalid' });
  });

  it('valid UTF-8, or mqtt.validatePayloadFormat false: routed with the indicator passed on [MQTT-3.3.2-4]', () => {
    const on = makeEnv();
    const fx = handleIn(connectedState(5, on), publish({ payload: Buffer.from('✓'), properties: { payloadFormatIndicator: true } }), on);
    expect(routes(fx)[0]!.msg.props?.payloadFormatIndicator).toBe(true);
    const off = makeEnv({ mqtt: { validatePayloadFormat: false } });
    expect(routes(handleIn(connectedState(5, off), publish({ payload: BAD_UTF8, properties: { payloadFormatIndicator: true } }), off))).toHaveLength(1);
  });

  it('a Response Topic with a wildcard is a Protocol Error, DISCONNECT 0x82 [MQTT-3.3.2-14]', () => {
    const env = makeEnv();
    const st = connectedState(5, env);
    const fx = handleIn(st, publish({ qos: 1, messageId: 1, properties: { responseTopic: 'reply/+' } }), env);
    expect(routes(fx)).toHaveLength(0);
    expect(closeOf(fx)).toMatchObject({ reason: RC.PROTOCOL_ERROR, why: 'bad_response_topic' });
  });
});

describe('CONNECT will', () => {
  it('a will with Payload Format Indicator 1 and invalid UTF-8: CONNACK 0x99', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    const will = { topic: 'w', payload: BAD_UTF8, qos: 0 as const, retain: false, properties: { payloadFormatIndicator: true } };
    const fx = handleIn(st, connectPacket(5, { will }), env);
    expect((sent(fx)[0] as IConnackPacket).reasonCode).toBe(RC.PAYLOAD_FORMAT_INVALID);
    expect(closeOf(fx)).toBeDefined();
  });

  it('a will with a wildcard Response Topic: CONNACK 0x82 [MQTT-3.3.2-14]', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    const will = { topic: 'w', payload: Buffer.from('x'), qos: 0 as const, retain: false, properties: { responseTopic: 'r/#' } };
    const fx = handleIn(st, connectPacket(5, { will }), env);
    expect((sent(fx)[0] as IConnackPacket).reasonCode).toBe(RC.PROTOCOL_ERROR);
  });
});
