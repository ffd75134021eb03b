/** SUBSCRIBE with shared subscriptions `$share/{ShareName}/{filter}` (src/channel/subscribe.ts). */
import { describe, expect, it } from 'vitest';
import type { ISubscribePacket } from 'mqtt-packet';
import { handleIn, type AclView, type ChannelEnv, type ChannelState, type Effect } from '../../../src/channel/index.js';
import { connectedState, makeEnv } from './channel-env.js';

function env(over: Partial<ChannelEnv> = {}): ChannelEnv {
  return makeEnv({ shardOf: () => 0, newClientId: () => 'auto', limits: { maxInflight: 10 }, sharedSubscriptions: true, ...over });
}

const connected = (version: 4 | 5, e: ChannelEnv): ChannelState => connectedState(version, e);

const sub = (subs: ISubscribePacket['subscriptions']): ISubscribePacket => ({ cmd: 'subscribe', messageId: 3, subscriptions: subs });
const codes = (fx: Effect[]): number[] => {
  const m = fx.find((e) => e.e === 'shard');
  if (m?.e !== 'shard' || m.msg.t !== 'subscribe') throw new Error(`expected a subscribe, got ${JSON.stringify(fx)}`);
  return m.msg.subs.map((s) => s.code);
};

describe('SUBSCRIBE: shared subscriptions', () => {
  it('a well-formed shared subscription is accepted and travels whole to the shard (v5 and 3.1.1)', () => {
    for (const v of [4, 5] as const) {
      const e = env();
      const fx = handleIn(connected(v, e), sub([{ topic: '$share/g/a/+', qos: 1 }]), e);
      expect(codes(fx)).toEqual([0]);
      const m = fx.find((x) => x.e === 'shard') as Extract<Effect, { e: 'shard' }>;
      expect(m.msg.t === 'subscribe' && m.msg.subs[0]!.filter).toBe('$share/g/a/+');
    }
  });

  it('[MQTT-4.8.2-1][MQTT-4.8.2-2] a malformed ShareName or a missing filter: 0x8F Topic Filter invalid (3.1.1: 0x80)', () => {
    const bad = ['$share//a', '$share/g', '$share/g/', '$share/+/a', '$share/#/a', '$share/g+/a', '$share/g/a#'];
    const e = env();
    expect(codes(handleIn(connected(5, e), sub(bad.map((topic) => ({ topic, qos: 1 }))), e))).toEqual(bad.map(() => 0x8f));
    expect(codes(handleIn(connected(4, e), sub(bad.map((topic) => ({ topic, qos: 1 }))), e))).toEqual(bad.map(() => 0x80));
  });

  it('[MQTT-3.8.3-4] No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82', () => {
    const e = env();
    const fx = handleIn(connected(5, e), sub([{ topic: 'x', qos: 0 }, { topic: '$share/g/a', qos: 1, nl: true }]), e);
    expect(fx).toEqual([{ e: 'close', reason: 0x82, why: 'shared_subscription_no_local', counter: 'protocol_errors_total{reason="shared_subscription_no_local"}' }]);
    // No Local on a plain filter stays allowed.
    expect(codes(handleIn(connected(5, e), sub([{ topic: 'a', qos: 1, nl: true }]), e))).toEqual([0]);
  });

  it('disabled (sharedSubscriptions false or absent): v5 0x9E Shared Subscriptions not supported, 3.1.1 0x80', () => {
    for (const e of [env({ sharedSubscriptions: false }), env({ sharedSubscriptions: undefined })]) {
      expect(codes(handleIn(connected(5, e), sub([{ topic: '$share/g/a', qos: 1, nl: true }, { topic: 'a', qos: 1 }]), e))).toEqual([0x9e, 0]);
      expect(codes(handleIn(connected(4, e), sub([{ topic: '$share/g/a', qos: 1 }]), e))).toEqual([0x80]);
    }
  });

  it('the ACL judges the filter after the ShareName', () => {
    const seen: string[] = [];
    const acl: AclView = { canPublish: () => true, canSubscribe: (_c, f) => (seen.push(f), f !== 'secret/#') };
    const e = env({ acl });
    expect(codes(handleIn(connected(5, e), sub([{ topic: '$share/g/open/+', qos: 1 }, { topic: '$share/g/secret/#', qos: 1 }]), e))).toEqual([0, 0x87]);
    expect(seen).toEqual(['open/+', 'secret/#']);
  });

  it('the IM ACL applies to the inner filter: a group cannot read every inbox', () => {
    const e = env({ im: { senderCheck: 'refuse', superusers: new Set() } });
    expect(codes(handleIn(connected(5, e), sub([{ topic: '$share/g/#', qos: 1 }, { topic: '$share/g//+/im/u/+', qos: 1 }, { topic: '$share/g/plain/x', qos: 1 }]), e))).toEqual([0x87, 0x87, 0]);
  });
});
