/**
 * MQTT 5 enhanced authentication in the pure channel (src/channel/auth.ts, connect.ts,
 * session-ready.ts): the CONNECT exchange, re-authentication, and every way a client can
 * get the protocol wrong. The method's answers are given by hand (authStep); the methods
 * themselves are tested in test/unit/auth/. Named after the normative statements (MQTT 5.0
 * OASIS Standard; a section where the spec has no statement id).
 */
import { describe, expect, it } from 'vitest';
import type { IAuthPacket, IConnackPacket, IConnectPacket, Packet } from 'mqtt-packet';
import { afterAuth, authStep, handleIn, newChannelState, reauthExpired, sessionReady, type ChannelEnv, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { closeOf, connectPacket, makeEnv, publish, routes, sent } from './channel-env.js';

const M = 'SCRAM-SHA-256';
const env = makeEnv({ enhancedAuth: { methods: new Set([M, 'X-OTHER']), maxSteps: 3 } });
const d = (s: string) => Buffer.from(s);
const auth = (reasonCode: number, properties: IAuthPacket['properties'] = { authenticationMethod: M }): IAuthPacket => ({ cmd: 'auth', reasonCode, properties });

function connect(over: Partial<IConnectPacket> = {}, e: ChannelEnv = env): { st: ChannelState; fx: Effect[] } {
  const st = newChannelState(1);
  const fx = handleIn(st, connectPacket(5, { properties: { authenticationMethod: M, authenticationData: d('first') }, ...over }), e);
  return { st, fx };
}

const connackOf = (fx: Effect[]) => sent(fx).find((p): p is IConnackPacket => p.cmd === 'connack');
const authOf = (fx: Effect[]) => sent(fx).find((p): p is IAuthPacket => p.cmd === 'auth');
const counters = (fx: Effect[]) => fx.flatMap((e) => (e.e === 'close' && e.counter ? [e.counter] : []));

/** CONNECT, one challenge, the client's answer, success as `user`, session ready: the CONNACK. */
function login(user = 'alice', over: Partial<IConnectPacket> = {}): { st: ChannelState; connack: IConnackPacket } {
  const { st } = connect(over);
  authStep(st, { kind: 'continue', data: d('server-first') }, env);
  handleIn(st, auth(0x18, { authenticationMethod: M, authenticationData: d('client-final') }), env);
  expect(authStep(st, { kind: 'success', identity: user, data: d('server-final') }, env)).toEqual([{ e: 'identified', user }]);
  afterAuth(st, 'ok', env);
  return { st, connack: connackOf(sessionReady(st, false, [], env))! };
}

describe('CONNECT with an Authentication Method (section 4.12)', () => {
  it('[MQTT-4.12.0-1] a method the server does not offer: CONNACK 0x8C Bad authentication method with a Reason String, then the close', () => {
    const { st, fx } = connect({ properties: { authenticationMethod: 'GS2-KRB5' } });
    const ack = connackOf(fx)!;
    expect(ack.reasonCode).toBe(0x8c);
    expect(ack.properties?.reasonString).toMatch(/^Bad authentication method: not supported here \(offered: SCRAM-SHA-256, X-OTHER\)/);
    expect(ack.properties?.authenticationMethod).toBeUndefined();
    expect(closeOf(fx)).toMatchObject({ why: 'bad_authentication_method', counter: 'auth_failures_total{reason="bad_method"}' });
    expect(st.phase).toBe('closed');
  });

  it('[MQTT-4.12.0-1] with no method offered at all, any method is 0x8C', () => {
    const { fx } = connect({}, makeEnv());
    expect(connackOf(fx)?.reasonCode).toBe(0x8c);
  });

  it('section 3.1.2.11.10: Authentication Data without an Authentication Method is a Protocol Error (CONNACK 0x82)', () => {
    const { fx } = connect({ properties: { authenticationData: d('x') } });
    expect(connackOf(fx)?.reasonCode).toBe(0x82);
    expect(closeOf(fx)?.counter).toBe('protocol_errors_total{reason="auth_data_without_method"}');
  });

  it('an offered method starts the exchange with the CONNECT\'s Authentication Data (no password check)', () => {
    const { st, fx } = connect({ username: 'alice', password: d('ignored') });
    expect(fx).toEqual([{ e: 'authExchange', method: M, data: d('first'), start: true }]);
    expect(st.phase).toBe('auth');
    expect(st.enhanced).toMatchObject({ method: M, turn: 'server', reauth: false, steps: 0 });
  });

  it('[MQTT-4.12.0-2][MQTT-4.12.0-5] more data needed: AUTH 0x18 with the CONNECT\'s method and the method\'s data', () => {
    const { st } = connect();
    const fx = authStep(st, { kind: 'continue', data: d('server-first') }, env);
    expect(sent(fx)).toEqual([{ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: M, authenticationData: d('server-first') } }]);
    expect(st.enhanced?.turn).toBe('client');
  });

  it('[MQTT-4.12.0-3] the client\'s AUTH 0x18 goes to the exchange under way', () => {
    const { st } = connect();
    authStep(st, { kind: 'continue' }, env);
    expect(handleIn(st, auth(0x18, { authenticationMethod: M, authenticationData: d('final') }), env)).toEqual([{ e: 'authExchange', method: M, data: d('final'), start: false }]);
    expect(st.enhanced?.turn).toBe('server');
  });

  it('[MQTT-4.12.0-5] success: CONNACK 0x00 with the same Authentication Method and the final data; the identity is the username', () => {
    const { st, connack } = login('alice');
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties?.authenticationMethod).toBe(M);
    expect(connack.properties?.authenticationData).toEqual(d('server-final'));
    expect(st.username).toBe('alice');
    expect(st.phase).toBe('connected');
  });

  it('a User Name in CONNECT must be the authenticated user: equal is fine, another is CONNACK 0x87', () => {
    expect(login('alice', { username: 'alice' }).connack.reasonCode).toBe(0);
    const { st } = connect({ username: 'bob' });
    authStep(st, { kind: 'continue' }, env);
    handleIn(st, auth(0x18), env);
    const fx = authStep(st, { kind: 'success', identity: 'alice' }, env);
    expect(connackOf(fx)).toMatchObject({ reasonCode: 0x87, properties: { reasonString: 'Not authorized: the User Name is not the authenticated user' } });
    expect(counters(fx)).toEqual(['auth_failures_total{reason="enhanced_username_mismatch"}']);
  });

  it('[MQTT-4.12.0-4] failure: CONNACK 0x87 with the method\'s Reason String (not its log detail), counted, logged, closed', () => {
    const { st } = connect();
    authStep(st, { kind: 'continue' }, env);
    handleIn(st, auth(0x18), env);
    const fx = authStep(st, { kind: 'failure', reason: 'SCRAM-SHA-256 authentication failed', detail: 'unknown user' }, env);
    const ack = connackOf(fx)!;
    expect(ack.reasonCode).toBe(0x87);
    expect(ack.properties?.reasonString).toBe('Not authorized: SCRAM-SHA-256 authentication failed');
    expect(JSON.stringify(ack)).not.toContain('unknown user');
    expect(counters(fx)).toEqual(['auth_failures_total{reason="enhanced_failed"}']);
    expect(fx.find((e) => e.e === 'log')).toMatchObject({ data: { method: M, why: 'failed', detail: 'unknown user', reauth: false } });
    expect(st.phase).toBe('closed');
  });

  it('auth.enhanced.maxSteps: one challenge more than allowed fails the exchange (CONNACK 0x87)', () => {
    const { st } = connect();
    for (let i = 0; i < 3; i++) {
      expect(authOf(authStep(st, { kind: 'continue' }, env))?.reasonCode).toBe(0x18);
      handleIn(st, auth(0x18), env);
    }
    const fx = authStep(st, { kind: 'continue' }, env);
    expect(connackOf(fx)?.reasonCode).toBe(0x87);
    expect(counters(fx)).toEqual(['auth_failures_total{reason="enhanced_too_many_steps"}']);
  });

  it('an answer of the method after the connection closed is dropped', () => {
    const { st } = connect();
    handleIn(st, { cmd: 'disconnect' } as Packet, env);
    expect(authStep(st, { kind: 'continue' }, env)).toEqual([]);
  });
});

describe('packets during the CONNECT exchange', () => {
  const waiting = () => {
    const { st } = connect();
    authStep(st, { kind: 'continue' }, env);
    return st;
  };
  const protocolError = (fx: Effect[], why: string) => {
    expect(connackOf(fx)?.reasonCode).toBe(0x82);
    expect(connackOf(fx)?.properties?.reasonString).toMatch(/^Protocol Error: /);
    expect(closeOf(fx)?.counter).toBe(`protocol_errors_total{reason="${why}"}`);
  };

  it('[MQTT-3.1.2-30] anything but AUTH or DISCONNECT before CONNACK: CONNACK 0x82', () => {
    protocolError(handleIn(waiting(), publish(), env), 'packet_during_auth');
    protocolError(handleIn(waiting(), { cmd: 'pingreq' }, env), 'packet_during_auth');
  });

  it('[MQTT-3.1.2-30] DISCONNECT: the client gives up, the connection closes (no session, no will)', () => {
    const st = waiting();
    const fx = handleIn(st, { cmd: 'disconnect' } as Packet, env);
    expect(fx).toEqual([{ e: 'close', why: 'client_disconnect_during_auth' }]);
    expect(st.phase).toBe('closed');
  });

  it('[MQTT-4.12.0-5] an AUTH with another method: CONNACK 0x82', () => {
    protocolError(handleIn(waiting(), auth(0x18, { authenticationMethod: 'X-OTHER' }), env), 'auth_method_changed');
  });

  it('section 3.15.2.2.2: an AUTH without an Authentication Method: CONNACK 0x82', () => {
    protocolError(handleIn(waiting(), auth(0x18, {}), env), 'auth_without_method');
    protocolError(handleIn(waiting(), { cmd: 'auth', reasonCode: 0x18 }, env), 'auth_without_method');
  });

  it('[MQTT-4.12.0-3] an AUTH 0x18 while the server has not asked (its turn): CONNACK 0x82', () => {
    const { st } = connect();
    protocolError(handleIn(st, auth(0x18), env), 'unexpected_auth_continue');
  });

  it('[MQTT-4.12.1-1] AUTH 0x19 (Re-authenticate) before CONNACK: CONNACK 0x82', () => {
    protocolError(handleIn(waiting(), auth(0x19), env), 'reauth_before_connack');
  });

  it('section 3.15.2.1: AUTH 0x00 (Success) is the server\'s; from a client, CONNACK 0x82', () => {
    protocolError(handleIn(waiting(), auth(0x00), env), 'unexpected_auth_reason');
  });

  it('a repeated property in an AUTH: CONNACK 0x82', () => {
    const fx = handleIn(waiting(), auth(0x18, { authenticationMethod: [M, M] as unknown as string }), env);
    expect(connackOf(fx)?.reasonCode).toBe(0x82);
  });
});

describe('without enhanced authentication', () => {
  it('[MQTT-4.12.0-6] a CONNACK to a client that named no method carries no Authentication Method', () => {
    const st = newChannelState(1);
    handleIn(st, connectPacket(5), env);
    afterAuth(st, 'ok', env);
    expect(connackOf(sessionReady(st, false, [], env))?.properties?.authenticationMethod).toBeUndefined();
  });

  it('[MQTT-4.12.0-7] an AUTH from a client that named no method: DISCONNECT 0x82', () => {
    const st = newChannelState(1);
    handleIn(st, connectPacket(5), env);
    afterAuth(st, 'ok', env);
    sessionReady(st, false, [], env);
    expect(closeOf(handleIn(st, auth(0x19), env))).toMatchObject({ reason: 0x82, why: 'unexpected_auth' });
  });

  it('MQTT 3.1.1 has no AUTH: closed without a DISCONNECT', () => {
    const st = newChannelState(1);
    handleIn(st, connectPacket(4), env);
    afterAuth(st, 'ok', env);
    sessionReady(st, false, [], env);
    expect(closeOf(handleIn(st, auth(0x19), env))).toMatchObject({ reason: undefined, why: 'auth_in_v3' });
  });
});

describe('re-authentication (section 4.12.1)', () => {
  const reauth = (st: ChannelState) => handleIn(st, auth(0x19, { authenticationMethod: M, authenticationData: d('again') }), env);

  it('[MQTT-4.12.1-1] AUTH 0x19 with the same method starts a new exchange; it continues with AUTH 0x18 both ways', () => {
    const { st } = login();
    expect(reauth(st)).toEqual([{ e: 'authExchange', method: M, data: d('again'), start: true }]);
    expect(st.enhanced).toMatchObject({ reauth: true, turn: 'server', steps: 0 });
    expect(authOf(authStep(st, { kind: 'continue', data: d('sf') }, env))).toEqual({ cmd: 'auth', reasonCode: 0x18, properties: { authenticationMethod: M, authenticationData: d('sf') } });
    expect(handleIn(st, auth(0x18, { authenticationMethod: M, authenticationData: d('cf') }), env)).toEqual([{ e: 'authExchange', method: M, data: d('cf'), start: false }]);
  });

  it('[MQTT-4.12.0-5] success as the same user: AUTH 0x00 with the method and the final data; the connection goes on', () => {
    const { st } = login();
    reauth(st);
    const fx = authStep(st, { kind: 'success', identity: 'alice', data: d('v=...') }, env);
    expect(fx).toEqual([{ e: 'send', packet: { cmd: 'auth', reasonCode: 0, properties: { authenticationMethod: M, authenticationData: d('v=...') } } }]);
    expect(st.phase).toBe('connected');
    expect(st.enhanced).toMatchObject({ reauth: false, turn: undefined });
    // And again later.
    expect(reauth(st)[0]).toMatchObject({ e: 'authExchange', start: true });
  });

  it('[MQTT-4.12.1-2] failure: DISCONNECT 0x87 with the Reason String, counted and logged', () => {
    const { st } = login();
    reauth(st);
    const fx = authStep(st, { kind: 'failure', reason: 'SCRAM-SHA-256 authentication failed', detail: 'wrong proof' }, env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x87, text: 'Not authorized: SCRAM-SHA-256 authentication failed', counter: 'auth_failures_total{reason="reauth_failed"}' });
    expect(fx.find((e) => e.e === 'log')).toMatchObject({ data: { reauth: true, detail: 'wrong proof' } });
  });

  it('[MQTT-4.12.1-2] authenticated as another user: DISCONNECT 0x87 (the connection keeps its identity)', () => {
    const { st } = login('alice');
    reauth(st);
    const fx = authStep(st, { kind: 'success', identity: 'bob' }, env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x87, counter: 'auth_failures_total{reason="reauth_other_user"}' });
    expect(closeOf(fx)?.text).toMatch(/not the user of this connection/);
    expect(st.username).toBe('alice');
  });

  it('section 4.12.1: other packets keep flowing during re-authentication, under the previous authentication', () => {
    const { st } = login();
    reauth(st);
    expect(routes(handleIn(st, publish({ qos: 1, messageId: 7 }), env))).toHaveLength(1);
    authStep(st, { kind: 'continue' }, env);
    expect(routes(handleIn(st, publish({ qos: 0 }), env))).toHaveLength(1);
  });

  it('[MQTT-4.12.1-1] another method, no method, a second AUTH 0x19 meanwhile, an unasked 0x18, or 0x00: DISCONNECT 0x82', () => {
    const cases: Array<[(st: ChannelState) => Effect[], string]> = [
      [(st) => handleIn(st, auth(0x19, { authenticationMethod: 'X-OTHER' }), env), 'auth_method_changed'],
      [(st) => handleIn(st, auth(0x19, {}), env), 'auth_without_method'],
      [(st) => (reauth(st), reauth(st)), 'reauth_in_progress'],
      [(st) => handleIn(st, auth(0x18), env), 'unexpected_auth_continue'],
      [(st) => handleIn(st, auth(0x00), env), 'unexpected_auth_reason'],
    ];
    for (const [run, why] of cases) {
      const { st } = login();
      expect(closeOf(run(st)), why).toMatchObject({ reason: 0x82, why });
    }
  });

  it('auth.enhanced.reauthTimeout: an unfinished re-authentication is DISCONNECT 0x87', () => {
    const { st } = login();
    expect(reauthExpired(st)).toEqual([]);
    reauth(st);
    authStep(st, { kind: 'continue' }, env);
    const fx = reauthExpired(st);
    expect(closeOf(fx)).toMatchObject({ reason: 0x87, counter: 'auth_failures_total{reason="reauth_timeout"}' });
  });
});
