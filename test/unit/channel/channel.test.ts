import { describe, it, expect } from 'vitest';
import type { IConnectPacket, IConnackPacket, ISubscribePacket, Packet } from 'mqtt-packet';
import { afterAuth, handleIn, newChannelState, sessionReady, type ChannelEnv, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { DEFAULTS } from '../../../src/config/schema.js';
import { LIMITS, closeOf, connectPacket, connectedState, makeEnv, publish, routedAcks, routes, sent, shardMsg } from './channel-env.js';

/** CONNECT -> auth ok -> session ready: a channel in phase `connected`. */
function connected(version: 3 | 4 | 5, env: ChannelEnv = makeEnv(), over: Partial<IConnectPacket> = {}, qos2In: number[] = []): ChannelState {
  return connectedState(version, env, { connect: over, qos2In });
}

function subscribe(topics: string[], over: Partial<ISubscribePacket> = {}): ISubscribePacket {
  return { cmd: 'subscribe', messageId: 5, subscriptions: topics.map((topic) => ({ topic, qos: 1 as const })), ...over };
}

describe('channel: CONNECT ordering', () => {
  it('[MQTT-3.1.0-1] a packet before CONNECT closes the connection', () => {
    for (const p of [publish(), { cmd: 'pingreq' } as Packet, subscribe(['a'])]) {
      const st = newChannelState(1);
      const fx = handleIn(st, p, makeEnv());
      expect(fx).toHaveLength(1);
      expect(closeOf(fx)).toMatchObject({ e: 'close', why: 'packet_before_connect' });
      expect(closeOf(fx)!.reason).toBeUndefined(); // version unknown: no v5 DISCONNECT
    }
  });

  it('[MQTT-3.1.0-2] a second CONNECT is a protocol error (v5 DISCONNECT 0x82)', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(st, connectPacket(5), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'second_connect' });
    expect(sent(fx)).toEqual([]);
  });

  it('[MQTT-3.1.0-2] a second CONNECT is a protocol error for 3.1.1 (plain close)', () => {
    const env = makeEnv();
    const st = connected(4, env);
    const fx = handleIn(st, connectPacket(4), env);
    expect(closeOf(fx)).toMatchObject({ why: 'second_connect' });
    expect(closeOf(fx)!.reason).toBeUndefined();
  });

  it('[MQTT-3.1.0-2] a second CONNECT while authentication runs is a protocol error', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5), env);
    expect(st.phase).toBe('auth');
    expect(closeOf(handleIn(st, connectPacket(5), env))).toMatchObject({ reason: 0x82, why: 'second_connect' });
  });

  it('other packets while the session opens are a protocol error', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5), env);
    afterAuth(st, 'ok', env);
    expect(st.phase).toBe('connecting');
    expect(closeOf(handleIn(st, publish(), env))).toMatchObject({ reason: 0x82, why: 'packet_while_connecting' });
  });

  it('CONNECT asks for authentication with the credentials, then opens the session on its shard', () => {
    const env = makeEnv({ shardOf: () => 3 });
    const st = newChannelState(42);
    const password = Buffer.from('pw');
    const fx = handleIn(st, connectPacket(4, { clientId: 'dev-1', username: 'u', password, clean: false }), env);
    expect(fx).toEqual([{ e: 'auth', username: 'u', password }]);
    const fx2 = afterAuth(st, 'ok', env);
    expect(st.shard).toBe(3);
    expect(shardMsg(fx2)).toMatchObject({
      t: 'connect',
      connId: 42,
      clientId: 'dev-1',
      username: 'u',
      protocolVersion: 4,
      cleanStart: false,
      expiry: LIMITS.maxSessionExpiryInterval, // 3.1.1 persistent sessions last the configured maximum
    });
  });

  it('afterAuth refusals: CONNACK with the version-specific code, then close', () => {
    const env = makeEnv();
    for (const [version, result, field, code] of [
      [4, 'bad_credentials', 'returnCode', 4],
      [4, 'not_authorized', 'returnCode', 5],
      [5, 'bad_credentials', 'reasonCode', 0x86],
      [5, 'not_authorized', 'reasonCode', 0x87],
    ] as const) {
      const st = newChannelState(1);
      handleIn(st, connectPacket(version), env);
      const fx = afterAuth(st, result, env);
      expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, [field]: code, ...(version === 5 ? { properties: { reasonString: expect.any(String) } } : {}) }]);
      expect(closeOf(fx)).toBeDefined();
      expect(st.phase).toBe('closed');
    }
  });

  it('a will whose topic the ACL denies refuses the connection', () => {
    const env = makeEnv({ acl: { canPublish: (_c, t) => t !== 'forbidden', canSubscribe: () => true } });
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { will: { topic: 'forbidden', payload: Buffer.from('bye') } }), env);
    const fx = afterAuth(st, 'ok', env);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x87, properties: { reasonString: expect.any(String) } }]);
  });

  it('a will with a wildcard topic refuses the connection (v5 0x90)', () => {
    const st = newChannelState(1);
    const fx = handleIn(st, connectPacket(5, { will: { topic: 'a/+', payload: Buffer.from('bye') } }), makeEnv());
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, reasonCode: 0x90, properties: { reasonString: expect.any(String) } }]);
    expect(closeOf(fx)).toBeDefined();
  });

  it('a valid will travels to the shard with its delay', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(
      st,
      connectPacket(5, { will: { topic: 'status/c1', payload: 'gone', qos: 1, retain: true, properties: { willDelayInterval: 7, contentType: 'text/plain' } } }),
      env,
    );
    const m = shardMsg(afterAuth(st, 'ok', env));
    expect(m).toMatchObject({ t: 'connect', will: { delay: 7, msg: { topic: 'status/c1', qos: 1, retain: true, origin: 'c1', props: { contentType: 'text/plain' } } } });
    if (m?.t !== 'connect') throw new Error('expected connect');
    expect(Buffer.from(m.will!.msg.payload).toString()).toBe('gone');
  });
});

describe('channel: CONNECT property validation (v5)', () => {
  /** Every effect of CONNECT followed by a successful authentication. */
  const connectFx = (props: IConnectPacket['properties']): Effect[] => {
    const env = makeEnv();
    const st = newChannelState(1);
    return [...handleIn(st, connectPacket(5, { properties: props }), env), ...afterAuth(st, 'ok', env)];
  };

  it('Receive Maximum and Maximum Packet Size reach the shard / channel state', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { properties: { receiveMaximum: 5, maximumPacketSize: 2048 } }), env);
    expect(shardMsg(afterAuth(st, 'ok', env))).toMatchObject({ receiveMaximum: 5 });
    expect(st.maxPacketSizeOut).toBe(2048);
  });

  // Regression (fixed in src/channel/connect.ts, afterAuth): MQTT 5.0 §3.1.2.11.3 says "It is a Protocol
  // Error to include the Receive Maximum value ... 0". mqtt-packet 9 parses a CONNECT with
  // receiveMaximum 0 without complaint, and afterAuth passes 0 on to the shard, whose
  // window is min(maxInflight, receiveMaximum) = 0: every QoS 1/2 message for that client
  // is queued (then dropped as queue_full) and never sent, silently.
  it('Receive Maximum 0 is a protocol error (no session is opened)', () => {
    const fx = connectFx({ receiveMaximum: 0 });
    expect(fx.some((e) => e.e === 'shard')).toBe(false);
    expect(fx.some((e) => e.e === 'close')).toBe(true);
  });

  // Regression (fixed in src/channel/connect.ts, afterAuth): MQTT 5.0 §3.1.2.11.4: "It is a Protocol Error
  // for the Maximum Packet Size to be set to zero." It is accepted and stored as
  // st.maxPacketSizeOut = 0, so the gateway drops every message for the client as
  // client_max_packet_size.
  it('Maximum Packet Size 0 is a protocol error (no session is opened)', () => {
    const fx = connectFx({ maximumPacketSize: 0 });
    expect(fx.some((e) => e.e === 'shard')).toBe(false);
    expect(fx.some((e) => e.e === 'close')).toBe(true);
  });
});

describe('channel: client identifiers', () => {
  it('[MQTT-3.1.3-8] 3.1.1: zero-length client id with CleanSession=0 gets CONNACK 0x02 and close', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    const fx = handleIn(st, connectPacket(4, { clientId: '', clean: false }), env);
    expect(sent(fx)).toEqual([{ cmd: 'connack', sessionPresent: false, returnCode: 2 }]);
    expect(closeOf(fx)).toMatchObject({ why: 'empty_client_id' });
    expect(st.phase).toBe('closed');
    expect(env.assigned).toEqual([]);
  });

  it('[MQTT-3.1.3-6] [MQTT-3.1.3-7] 3.1.1: zero-length client id with CleanSession=1 is accepted with a broker-made id', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    expect(handleIn(st, connectPacket(4, { clientId: '', clean: true }), env)[0]).toMatchObject({ e: 'auth' });
    expect(st.clientId).toBe('auto-1');
    expect(st.assignedClientId).toBe(false); // 3.1.1 has no Assigned Client Identifier
    afterAuth(st, 'ok', env);
    const connack = sent(sessionReady(st, false, [], env))[0] as IConnackPacket;
    expect(connack).toEqual({ cmd: 'connack', sessionPresent: false, returnCode: 0 });
  });

  it('[MQTT-3.1.3-6] [MQTT-3.2.2-16] v5: zero-length client id is assigned and returned in CONNACK', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { clientId: '', clean: false }), env);
    expect(st.clientId).toBe('auto-1');
    expect(st.assignedClientId).toBe(true);
    const fx = afterAuth(st, 'ok', env);
    expect(shardMsg(fx)).toMatchObject({ t: 'connect', clientId: 'auto-1' });
    const connack = sent(sessionReady(st, false, [], env))[0] as IConnackPacket;
    expect(connack.properties?.assignedClientIdentifier).toBe('auto-1');
  });

  it('a client id longer than maxClientIdLength is rejected (v3 0x02, v5 0x85)', () => {
    const env = makeEnv({ limits: { maxClientIdLength: 4 } });
    let st = newChannelState(1);
    expect(sent(handleIn(st, connectPacket(4, { clientId: 'abcde' }), env))).toEqual([
      { cmd: 'connack', sessionPresent: false, returnCode: 2 },
    ]);
    st = newChannelState(1);
    expect(sent(handleIn(st, connectPacket(5, { clientId: 'abcde' }), env))).toEqual([
      { cmd: 'connack', sessionPresent: false, reasonCode: 0x85, properties: { reasonString: expect.any(String) } },
    ]);
    st = newChannelState(1);
    expect(handleIn(st, connectPacket(5, { clientId: 'abcd' }), env)[0]).toMatchObject({ e: 'auth' });
  });
});

describe('channel: CONNACK from sessionReady', () => {
  it('v5 CONNACK carries the broker limits (receiveMaximum, maximumPacketSize, topicAliasMaximum)', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(5), env);
    afterAuth(st, 'ok', env);
    const fx = sessionReady(st, true, [], env);
    expect(st.phase).toBe('connected');
    const connack = sent(fx)[0] as IConnackPacket;
    expect(connack.cmd).toBe('connack');
    expect(connack.sessionPresent).toBe(true);
    expect(connack.reasonCode).toBe(0);
    expect(connack.properties).toMatchObject({
      receiveMaximum: LIMITS.maxInflight,
      maximumPacketSize: LIMITS.maxPacketSize,
      topicAliasMaximum: 16, // mqtt.topicAliasMaximum's default
      retainAvailable: true,
      sharedSubscriptionAvailable: false,
    });
    expect(connack.properties?.maximumQoS).toBeUndefined(); // absent = 2 [MQTT-3.2.2-9]
    expect(connack.properties?.assignedClientIdentifier).toBeUndefined();
    expect(connack.properties?.sessionExpiryInterval).toBeUndefined();
    expect(connack.properties?.serverKeepAlive).toBeUndefined();
  });

  it('v5: reports a capped Session Expiry Interval and a Server Keep Alive', () => {
    const env = makeEnv({ limits: { maxKeepAlive: 60 } });
    const st = newChannelState(1);
    handleIn(st, connectPacket(5, { keepalive: 600, properties: { sessionExpiryInterval: 999_999 } }), env);
    const m = shardMsg(afterAuth(st, 'ok', env));
    expect(m).toMatchObject({ t: 'connect', expiry: 3600 });
    const connack = sent(sessionReady(st, false, [], env))[0] as IConnackPacket;
    expect(connack.properties?.sessionExpiryInterval).toBe(3600);
    expect(connack.properties?.serverKeepAlive).toBe(60);
    expect(st.keepalive).toBe(60);
  });

  it('3.1.1 CONNACK has a return code and no properties', () => {
    const env = makeEnv();
    const st = newChannelState(1);
    handleIn(st, connectPacket(4), env);
    afterAuth(st, 'ok', env);
    expect(sent(sessionReady(st, true, [], env))).toEqual([{ cmd: 'connack', sessionPresent: true, returnCode: 0 }]);
  });

  it('sessionReady only acts in phase connecting', () => {
    const env = makeEnv();
    const st = connected(5, env);
    expect(sessionReady(st, false, [], env)).toEqual([]);
    expect(afterAuth(st, 'ok', env)).toEqual([]);
  });
});

describe('channel: session expiry of anonymous clients (limits.maxAnonymousSessionExpiry)', () => {
  const DAY = 86_400;
  const WEEK = 7 * DAY;
  /** Users may keep a session 30 days, clients without a username 1 day. */
  const capped = () => makeEnv({ limits: { maxSessionExpiryInterval: 30 * DAY, maxAnonymousSessionExpiry: DAY } });

  /** CONNECT + auth ok: the connect message to the shard and the CONNACK. */
  function open(version: 4 | 5, env: ChannelEnv, over: Partial<IConnectPacket>) {
    const st = newChannelState(1);
    handleIn(st, connectPacket(version, over), env);
    const m = shardMsg(afterAuth(st, 'ok', env));
    if (m?.t !== 'connect') throw new Error('expected a connect message to the shard');
    const connack = sent(sessionReady(st, false, [], env))[0] as IConnackPacket;
    return { st, m, connack };
  }

  it('v5: an anonymous client asking one week gets the anonymous cap, and CONNACK reports it', () => {
    const { st, m, connack } = open(5, capped(), { clean: false, properties: { sessionExpiryInterval: WEEK } });
    expect(m.expiry).toBe(DAY);
    expect(st.sessionExpiry).toBe(DAY);
    expect(connack.properties?.sessionExpiryInterval).toBe(DAY);
  });

  it('v5: a client with a username keeps maxSessionExpiryInterval (one week is granted, 60 days is capped to 30)', () => {
    let r = open(5, capped(), { clean: false, username: 'u', properties: { sessionExpiryInterval: WEEK } });
    expect(r.m.expiry).toBe(WEEK);
    expect(r.connack.properties?.sessionExpiryInterval).toBeUndefined(); // what it asked for
    r = open(5, capped(), { clean: false, username: 'u', properties: { sessionExpiryInterval: 60 * DAY } });
    expect(r.m.expiry).toBe(30 * DAY);
    expect(r.connack.properties?.sessionExpiryInterval).toBe(30 * DAY);
  });

  it('v5: an anonymous client asking less than the cap gets what it asked for (no property in CONNACK)', () => {
    const { m, connack } = open(5, capped(), { clean: false, properties: { sessionExpiryInterval: 3600 } });
    expect(m.expiry).toBe(3600);
    expect(connack.properties?.sessionExpiryInterval).toBeUndefined();
  });

  it('the lower of the two limits applies when maxAnonymousSessionExpiry is above maxSessionExpiryInterval', () => {
    const env = makeEnv({ limits: { maxSessionExpiryInterval: 3600, maxAnonymousSessionExpiry: WEEK } });
    expect(open(5, env, { clean: false, properties: { sessionExpiryInterval: WEEK } }).m.expiry).toBe(3600);
    expect(open(4, env, { clean: false }).m.expiry).toBe(3600);
  });

  it('3.1.1: an anonymous CleanSession=0 session lasts the anonymous cap; with a username the configured maximum; CleanSession=1 ends with the connection', () => {
    expect(open(4, capped(), { clean: false }).m.expiry).toBe(DAY);
    expect(open(4, capped(), { clean: false, username: 'u' }).m.expiry).toBe(30 * DAY);
    expect(open(4, capped(), { clean: true }).m.expiry).toBe(0);
    // 3.1.1 CONNACK has no properties to report it in.
    expect(open(4, capped(), { clean: false }).connack).toEqual({ cmd: 'connack', sessionPresent: false, returnCode: 0 });
  });

  it('v5 DISCONNECT: a new Session Expiry Interval is capped the same way', () => {
    const env = capped();
    let st = connected(5, env, { clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: WEEK } }, env))).toMatchObject({ t: 'disconnect', expiry: DAY });
    st = connected(5, env, { clean: false, properties: { sessionExpiryInterval: 60 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 600 } }, env))).toMatchObject({ expiry: 600 });
    st = connected(5, env, { clean: false, username: 'u', properties: { sessionExpiryInterval: 60 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: WEEK } }, env))).toMatchObject({ expiry: WEEK });
    st = connected(5, env, { clean: false, username: 'u', properties: { sessionExpiryInterval: 60 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 60 * DAY } }, env))).toMatchObject({ expiry: 30 * DAY });
  });
});

describe('channel: PUBLISH', () => {
  it('QoS 0 routes the message; QoS 1 routes and PUBACKs', () => {
    const env = makeEnv();
    const st = connected(4, env);
    let fx = handleIn(st, publish({ qos: 0 }), env);
    expect(routes(fx)).toHaveLength(1);
    expect(routedAcks(fx)).toEqual([]); // QoS 0 has no acknowledgement
    expect(sent(fx)).toEqual([]);
    fx = handleIn(st, publish({ qos: 1, messageId: 10, retain: true }), env);
    // The PUBACK rides on the route effect: the gateway sends it once the message is routed.
    expect(routes(fx)).toEqual([
      {
        e: 'route',
        msg: { topic: 'a/b', payload: Buffer.from('x'), qos: 1, retain: true, origin: 'c1', originConn: expect.any(Number) },
        from: { uid: undefined, clientId: 'c1' },
        ack: { cmd: 'puback', messageId: 10 },
      },
    ]);
    expect(sent(fx)).toEqual([]);
    expect(fx).toContainEqual({ e: 'count', series: 'messages_received_total{qos="1"}' });
  });

  it('[MQTT-4.3.3-9] QoS 2: a duplicate PUBLISH with a remembered id is acknowledged but not routed again', () => {
    const env = makeEnv();
    const st = connected(5, env);
    let fx = handleIn(st, publish({ qos: 2, messageId: 7 }), env);
    expect(routes(fx)).toHaveLength(1);
    expect(routedAcks(fx)).toEqual([{ cmd: 'pubrec', messageId: 7 }]);
    expect(sent(fx)).toEqual([]);
    expect(st.qos2In.has(7)).toBe(true);

    // The duplicate is not routed, so its PUBREC is a plain send.
    fx = handleIn(st, publish({ qos: 2, messageId: 7, dup: true }), env);
    expect(routes(fx)).toHaveLength(0);
    expect(sent(fx)).toEqual([{ cmd: 'pubrec', messageId: 7 }]);
  });

  it('[MQTT-4.3.3-11] QoS 2: PUBREL releases the id and PUBCOMP is sent; the id can then carry a new message', () => {
    const env = makeEnv();
    const st = connected(5, env);
    handleIn(st, publish({ qos: 2, messageId: 7 }), env);
    const fx = handleIn(st, { cmd: 'pubrel', messageId: 7 }, env);
    // `released` first: the shards forget the id (their resend check) before PUBCOMP goes.
    expect(fx).toEqual([
      { e: 'released', packetId: 7 },
      { e: 'send', packet: { cmd: 'pubcomp', messageId: 7 } },
    ]);
    expect(st.qos2In.has(7)).toBe(false);
    expect(routes(handleIn(st, publish({ qos: 2, messageId: 7 }), env))).toHaveLength(1);
  });

  it('QoS 2 ids remembered by the session (sessionReady qos2In) are not routed again after a reconnect', () => {
    const env = makeEnv();
    const st = connected(4, env, {}, [7, 8]);
    expect(routes(handleIn(st, publish({ qos: 2, messageId: 8, dup: true }), env))).toHaveLength(0);
    expect(routes(handleIn(st, publish({ qos: 2, messageId: 9 }), env))).toHaveLength(1);
  });

  it('PUBREL for an unknown id: v5 PUBCOMP 0x92, 3.1.1 plain PUBCOMP', () => {
    const env = makeEnv();
    // Still `released`: after a crash a shard may hold the id though the channel does not.
    expect(handleIn(connected(5, env), { cmd: 'pubrel', messageId: 99 }, env)).toEqual([
      { e: 'released', packetId: 99 },
      { e: 'send', packet: { cmd: 'pubcomp', messageId: 99, reasonCode: 0x92 } },
    ]);
    expect(handleIn(connected(4, env), { cmd: 'pubrel', messageId: 99 }, env)).toEqual([
      { e: 'released', packetId: 99 },
      { e: 'send', packet: { cmd: 'pubcomp', messageId: 99 } },
    ]);
  });

  it('holdAcks (durability sync): QoS 1 is routed with its PUBACK, nothing is sent at once', () => {
    const env = makeEnv({ holdAcks: true });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 1, messageId: 4 }), env);
    expect(routedAcks(fx)).toEqual([{ cmd: 'puback', messageId: 4 }]);
    expect(sent(fx)).toEqual([]);
  });

  it('holdAcks (durability sync): QoS 2 is routed with ack PUBREC and its id is not remembered until the gateway sends the PUBREC', () => {
    const env = makeEnv({ holdAcks: true });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 2, messageId: 7 }), env);
    expect(routes(fx)).toHaveLength(1);
    expect(routedAcks(fx)).toEqual([{ cmd: 'pubrec', messageId: 7 }]);
    expect(sent(fx)).toEqual([]);
    expect(st.qos2In.has(7)).toBe(false);
    expect(st.qos2In.size).toBe(0);
  });

  it('holdAcks: [MQTT-4.3.3-9] once the gateway remembered the id (PUBREC sent) a resend is acknowledged, not routed', () => {
    const env = makeEnv({ holdAcks: true });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 2, messageId: 7 }), env);
    expect(routes(fx)).toHaveLength(1);
    st.qos2In.add(7); // what gateway-actor.ts does when the held PUBREC goes out
    const again = handleIn(st, publish({ qos: 2, messageId: 7, dup: true }), env);
    expect(routes(again)).toEqual([]);
    expect(sent(again)).toEqual([{ cmd: 'pubrec', messageId: 7 }]);
  });

  it('holdAcks: [MQTT-4.3.3-11] PUBREL emits released, then PUBCOMP, and forgets the id', () => {
    const env = makeEnv({ holdAcks: true });
    const st = connected(5, env);
    handleIn(st, publish({ qos: 2, messageId: 7 }), env);
    st.qos2In.add(7); // the held PUBREC went out
    const fx = handleIn(st, { cmd: 'pubrel', messageId: 7 }, env);
    expect(fx).toEqual([
      { e: 'released', packetId: 7 },
      { e: 'send', packet: { cmd: 'pubcomp', messageId: 7 } },
    ]);
    expect(st.qos2In.has(7)).toBe(false);
  });

  it('holdAcks: a refused QoS 2 publish still gets its negative PUBREC at once (a send, no route)', () => {
    const env = makeEnv({ holdAcks: true, acl: { canPublish: () => false, canSubscribe: () => true } });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 2, messageId: 3 }), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'pubrec', messageId: 3, reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to this topic' } }]);
    expect(st.qos2In.size).toBe(0);
  });

  it('[MQTT-3.3.4-7] more unreleased QoS 2 messages than Receive Maximum is v5 DISCONNECT 0x93', () => {
    const env = makeEnv(); // maxInflight 3
    const st = connected(5, env);
    for (const id of [1, 2, 3]) expect(routes(handleIn(st, publish({ qos: 2, messageId: id }), env))).toHaveLength(1);
    expect(closeOf(handleIn(st, publish({ qos: 2, messageId: 4 }), env))).toMatchObject({ reason: 0x93 });
  });

  it('denied publish: v5 PUBACK 0x87, no route', () => {
    const env = makeEnv({ acl: { canPublish: () => false, canSubscribe: () => true } });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 1, messageId: 3 }), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'puback', messageId: 3, reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to this topic' } }]);
    expect(fx).toContainEqual({ e: 'count', series: 'publish_denied_total' });
    expect(closeOf(fx)).toBeUndefined();
  });

  it('denied publish: 3.1.1 PUBACK 0x00 (no negative ack), no route', () => {
    const env = makeEnv({ acl: { canPublish: () => false, canSubscribe: () => true } });
    const st = connected(4, env);
    const fx = handleIn(st, publish({ qos: 1, messageId: 3 }), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'puback', messageId: 3, reasonCode: 0 }]);
  });

  it('denied QoS 2 publish: v5 PUBREC 0x87 and the id is not remembered', () => {
    const env = makeEnv({ acl: { canPublish: () => false, canSubscribe: () => true } });
    const st = connected(5, env);
    const fx = handleIn(st, publish({ qos: 2, messageId: 3 }), env);
    expect(routes(fx)).toEqual([]);
    expect(sent(fx)).toEqual([{ cmd: 'pubrec', messageId: 3, reasonCode: 0x87, properties: { reasonString: 'not allowed to publish to this topic' } }]);
    expect(st.qos2In.size).toBe(0);
  });

  it('the ACL sees the username and client id of the connection', () => {
    const seen: Array<{ username?: string; clientId: string; topic: string }> = [];
    const env = makeEnv({ acl: { canPublish: (c, topic) => (seen.push({ ...c, topic }), true), canSubscribe: () => true } });
    const st = connected(4, env, { username: 'alice', clientId: 'dev' });
    handleIn(st, publish({ topic: 'x/y' }), env);
    expect(seen).toEqual([{ username: 'alice', clientId: 'dev', topic: 'x/y' }]);
  });

  it('[MQTT-4.7.2-1] publish to $SYS/x is denied even with an allow-all ACL', () => {
    for (const version of [4, 5] as const) {
      const env = makeEnv();
      const st = connected(version, env);
      const fx = handleIn(st, publish({ topic: '$SYS/x', qos: 1, messageId: 1 }), env);
      expect(routes(fx)).toEqual([]);
      expect(sent(fx)).toEqual([
        { cmd: 'puback', messageId: 1, ...(version === 5 ? { reasonCode: 0x87, properties: { reasonString: 'topics starting with "$" belong to the broker' } } : { reasonCode: 0 }) },
      ]);
      expect(fx).toContainEqual({ e: 'count', series: 'publish_denied_total' });
    }
  });

  it('[MQTT-3.2.2-18] with mqtt.topicAliasMaximum 0 any topic alias is v5 DISCONNECT 0x94', () => {
    const env = { ...makeEnv(), mqtt: { ...DEFAULTS.mqtt, topicAliasMaximum: 0 } };
    const st = connected(5, env);
    const fx = handleIn(st, publish({ properties: { topicAlias: 1 } }), env);
    expect(routes(fx)).toEqual([]);
    expect(closeOf(fx)).toMatchObject({ reason: 0x94, why: 'topic_alias_invalid' });
  });

  it('[MQTT-3.3.2-2] a wildcard in the topic name is v5 DISCONNECT 0x90', () => {
    const env = makeEnv();
    for (const topic of ['a/+', 'a/#', '#']) {
      const fx = handleIn(connected(5, env), publish({ topic }), env);
      expect(routes(fx)).toEqual([]);
      expect(closeOf(fx)).toMatchObject({ reason: 0x90, why: 'bad_topic_name' });
    }
    const fx3 = handleIn(connected(4, env), publish({ topic: 'a/+' }), env);
    expect(closeOf(fx3)).toMatchObject({ why: 'bad_topic_name' });
    expect(closeOf(fx3)!.reason).toBeUndefined();
  });

  it('[MQTT-3.3.1-4] QoS 3 is malformed (v5 0x81)', () => {
    const env = makeEnv();
    const fx = handleIn(connected(5, env), publish({ qos: 3 as 0 }), env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x81 });
  });

  it('v5 message properties are passed on; 3.1.1 carries none', () => {
    const env = makeEnv();
    const props = { contentType: 'text/plain', responseTopic: 'r/1', userProperties: { k: 'v' } };
    const [r5] = routes(handleIn(connected(5, env), publish({ properties: props }), env));
    expect(r5).toMatchObject({ e: 'route', msg: { props } });
    const [r4] = routes(handleIn(connected(4, env), publish(), env));
    expect(r4 && r4.e === 'route' && r4.msg.props).toBeUndefined();
  });
});

describe('channel: acknowledgements, PINGREQ, AUTH', () => {
  it('PUBACK/PUBREC/PUBCOMP are forwarded to the shard; a failed v5 PUBREC ends the flow like PUBCOMP', () => {
    const env = makeEnv();
    const st = connected(5, env);
    expect(shardMsg(handleIn(st, { cmd: 'puback', messageId: 4 }, env))).toEqual({ t: 'ack', connId: 1, clientId: 'c1', kind: 'puback', packetId: 4 });
    expect(shardMsg(handleIn(st, { cmd: 'pubrec', messageId: 5 }, env))).toMatchObject({ kind: 'pubrec', packetId: 5 });
    expect(shardMsg(handleIn(st, { cmd: 'pubrec', messageId: 6, reasonCode: 0x80 }, env))).toMatchObject({ kind: 'pubcomp', packetId: 6 });
    expect(shardMsg(handleIn(st, { cmd: 'pubcomp', messageId: 7 }, env))).toMatchObject({ kind: 'pubcomp', packetId: 7 });
  });

  it('[MQTT-3.12.4-1] PINGREQ is answered with PINGRESP', () => {
    const env = makeEnv();
    expect(handleIn(connected(4, env), { cmd: 'pingreq' }, env)).toEqual([{ e: 'send', packet: { cmd: 'pingresp' } }]);
  });

  it('[MQTT-4.12.0-1] AUTH without an authentication method is a protocol error', () => {
    const env = makeEnv();
    expect(closeOf(handleIn(connected(5, env), { cmd: 'auth', reasonCode: 0x18 }, env))).toMatchObject({ reason: 0x82, why: 'unexpected_auth' });
  });

  it('packets only a server sends are protocol errors', () => {
    const env = makeEnv();
    expect(closeOf(handleIn(connected(5, env), { cmd: 'connack', sessionPresent: false }, env))).toMatchObject({
      reason: 0x82,
      why: 'unexpected_connack',
    });
  });
});

describe('channel: SUBSCRIBE / UNSUBSCRIBE', () => {
  const codes = (fx: Effect[]): number[] => {
    const m = shardMsg(fx);
    if (m?.t !== 'subscribe') throw new Error('expected a subscribe message');
    return m.subs.map((s) => s.code);
  };

  it('valid filters pass with code 0 and the options (v5) travel to the shard', () => {
    const env = makeEnv();
    const st = connected(5, env);
    const fx = handleIn(
      st,
      { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'a/+', qos: 2, nl: true, rap: true, rh: 2 }], properties: { subscriptionIdentifier: 12 } },
      env,
    );
    expect(shardMsg(fx)).toEqual({
      t: 'subscribe',
      connId: 1,
      clientId: 'c1',
      packetId: 9,
      subId: 12,
      subs: [{ filter: 'a/+', qos: 2, noLocal: true, retainAsPublished: true, retainHandling: 2, code: 0 }],
    });
  });

  it('3.1.1 ignores v5-only subscription options', () => {
    const env = makeEnv();
    const m = shardMsg(handleIn(connected(4, env), { cmd: 'subscribe', messageId: 9, subscriptions: [{ topic: 'a', qos: 1, nl: true, rap: true, rh: 1 }] }, env));
    expect(m).toMatchObject({ subs: [{ noLocal: false, retainAsPublished: false, retainHandling: 0 }], subId: undefined });
  });

  it('[MQTT-4.7.1-2] an invalid filter gets 0x80 (3.1.1) / 0x8F (v5)', () => {
    const env = makeEnv();
    expect(codes(handleIn(connected(4, env), subscribe(['a/#/b', 'ok', 'x+']), env))).toEqual([0x80, 0, 0x80]);
    expect(codes(handleIn(connected(5, env), subscribe(['a/#/b', 'ok', 'x+']), env))).toEqual([0x8f, 0, 0x8f]);
  });

  it('v5 $share/ filters get 0x9E (shared subscriptions not supported)', () => {
    const env = makeEnv();
    expect(codes(handleIn(connected(5, env), subscribe(['$share/g/a', 'a']), env))).toEqual([0x9e, 0]);
  });

  it('an ACL-denied filter gets 0x87 (v5) / 0x80 (3.1.1)', () => {
    const env = makeEnv({ acl: { canPublish: () => true, canSubscribe: (_c, f) => f !== 'secret/#' } });
    expect(codes(handleIn(connected(5, env), subscribe(['secret/#', 'public']), env))).toEqual([0x87, 0]);
    expect(codes(handleIn(connected(4, env), subscribe(['secret/#', 'public']), env))).toEqual([0x80, 0]);
  });

  it('[MQTT-3.8.3-3] a SUBSCRIBE without filters is a protocol error', () => {
    const env = makeEnv();
    expect(closeOf(handleIn(connected(5, env), subscribe([]), env))).toMatchObject({ reason: 0x82, why: 'empty_subscribe' });
  });

  it('[MQTT-3.10.3-2] UNSUBSCRIBE is forwarded; an empty one is a protocol error', () => {
    const env = makeEnv();
    const st = connected(5, env);
    expect(shardMsg(handleIn(st, { cmd: 'unsubscribe', messageId: 3, unsubscriptions: ['a', 'b'] }, env))).toEqual({
      t: 'unsubscribe',
      connId: 1,
      clientId: 'c1',
      packetId: 3,
      filters: ['a', 'b'],
    });
    expect(closeOf(handleIn(st, { cmd: 'unsubscribe', messageId: 4, unsubscriptions: [] }, env))).toMatchObject({ reason: 0x82 });
  });
});

describe('channel: DISCONNECT', () => {
  it('[MQTT-3.14.4-3] a normal DISCONNECT discards the will and passes the QoS 2 ids to the shard', () => {
    const env = makeEnv();
    const st = connected(4, env);
    handleIn(st, publish({ qos: 2, messageId: 11 }), env);
    const fx = handleIn(st, { cmd: 'disconnect' }, env);
    expect(shardMsg(fx)).toEqual({ t: 'disconnect', connId: 1, clientId: 'c1', publishWill: false, expiry: undefined, qos2In: [11] });
    expect(closeOf(fx)).toMatchObject({ why: 'client_disconnect' });
    expect(closeOf(fx)!.reason).toBeUndefined();
    expect(st.phase).toBe('closed');
  });

  it('v5 DISCONNECT 0x04 asks for the will to be published', () => {
    const env = makeEnv();
    expect(shardMsg(handleIn(connected(5, env), { cmd: 'disconnect', reasonCode: 0x04 }, env))).toMatchObject({ publishWill: true });
    expect(shardMsg(handleIn(connected(5, env), { cmd: 'disconnect', reasonCode: 0x00 }, env))).toMatchObject({ publishWill: false });
  });

  it('[MQTT-3.14.2-2] changing the Session Expiry Interval from 0 to non-zero is a protocol error', () => {
    const env = makeEnv();
    const st = connected(5, env); // no sessionExpiryInterval: 0
    expect(st.sessionExpiry).toBe(0);
    const fx = handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 60 } }, env);
    expect(closeOf(fx)).toMatchObject({ reason: 0x82, why: 'expiry_after_zero' });
    expect(shardMsg(fx)).toBeUndefined();
  });

  it('a non-zero Session Expiry Interval may change on DISCONNECT (capped by the limit); 0 -> 0 is fine', () => {
    const env = makeEnv();
    let st = connected(5, env, { properties: { sessionExpiryInterval: 100 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 999_999 } }, env))).toMatchObject({ expiry: 3600 });
    st = connected(5, env, { properties: { sessionExpiryInterval: 100 } });
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 0 } }, env))).toMatchObject({ expiry: 0 });
    st = connected(5, env);
    expect(shardMsg(handleIn(st, { cmd: 'disconnect', properties: { sessionExpiryInterval: 0 } }, env))).toMatchObject({ expiry: 0 });
  });

  it('after DISCONNECT the channel takes no more packets', () => {
    const env = makeEnv();
    const st = connected(5, env);
    handleIn(st, { cmd: 'disconnect' }, env);
    expect(routes(handleIn(st, publish(), env))).toEqual([]);
  });
});
