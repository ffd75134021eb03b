/**
 * `npm run bench -- fanin-slow` (issue 9 item 4): the fan-in at QoS 1 with a subscriber
 * slower than its publishers, Switchboard with limits.queueFullPolicy drop (the default,
 * broker `switchboard`) against hold (`switchboard-hold`). 20 publishers, <= 100
 * unacknowledged each (they go as fast as their PUBACKs come back, like ordinary clients),
 * one subscriber on bench/fanin/# that acknowledges at most `--sub-rate` messages per
 * second, a session queue of `--queue` messages (limits.maxQueuedMessages) beyond its
 * window (limits.maxInflight, 1000 by default), and room for `--held` parked messages
 * (limits.maxHeldPerSession; by default publishers x window, what hold needs to lose nothing:
 * every publisher may have its whole window parked).
 *
 * drop: the publishers are acknowledged at once and what does not fit the queue is
 * dropped (`lost` = acknowledged, never delivered). hold: their PUBACKs wait for room in
 * the queue, so they slow to the subscriber's pace and nothing acknowledged is lost. The
 * value is what the subscriber got per second; the details have published, acked,
 * delivered and ackedLost over the run, publishRate over the window.
 * Options: --sub-rate N (5000), --queue N (100), --publishers N (20), --window N (100),
 *   --held N (publishers x window), --durability sync|async|memory (Switchboard's default, sync).
 */
import { isSwitchboard, type BrokerName } from '../lib/brokers.js';
import { runGenerator } from '../lib/gen-run.js';
import type { BenchOptions, Measurement, Scenario } from '../lib/scenario.js';
import { list, num } from './mqtt.js';

const DURABILITIES = ['sync', 'async', 'memory'] as const;
type Durability = (typeof DURABILITIES)[number];

const sizes = (o: BenchOptions) => ({
  rate: num(o, 'sub-rate', 5000, 5000),
  queue: num(o, 'queue', 100, 100),
  publishers: num(o, 'publishers', 20, 20),
  window: num(o, 'window', 100, 100),
  durability: list<Durability>(o, 'durability', ['sync'], (s) => s as Durability, DURABILITIES)[0]!,
  held: num(o, 'held', num(o, 'publishers', 20, 20) * num(o, 'window', 100, 100), num(o, 'publishers', 20, 20) * num(o, 'window', 100, 100)),
});

export const faninSlow: Scenario = {
  name: 'fanin-slow',
  describe(o) {
    const z = sizes(o);
    return (
      `${z.publishers} publishers -> 1 subscriber acknowledging at most ${z.rate} msg/s, QoS 1, ${o.payloadSize} B, <= ${z.window} unacknowledged per publisher; ` +
      `limits.maxQueuedMessages ${z.queue}, maxHeldPerSession ${z.held}, store.durability ${z.durability}; Switchboard = queueFullPolicy drop (default), Switchboard hold = hold. ` +
      `value = messages received/s; published / acked / delivered (distinct) / ackedLost over the whole run`
    );
  },
  // Switchboard in both policies (a policy named in --brokers: as given).
  brokers: (chosen) => (chosen.includes('switchboard') && !chosen.includes('switchboard-hold') ? [...chosen, 'switchboard-hold'] : chosen),
  supports: (b: BrokerName) => isSwitchboard(b) && b !== 'switchboard-async' && b !== 'switchboard-memory',
  brokerOptions(o) {
    const z = sizes(o);
    return {
      env: {
        SWITCHBOARD_LIMITS__MAX_QUEUED_MESSAGES: String(z.queue),
        SWITCHBOARD_LIMITS__MAX_HELD_PER_SESSION: String(z.held),
        SWITCHBOARD_STORE__DURABILITY: z.durability,
      },
    };
  },
  async run(broker, o, progress) {
    const z = sizes(o);
    const m: Measurement = await runGenerator(
      broker,
      {
        spec: {
          kind: 'fanin',
          name: 'fanin-slow',
          qos: 1,
          publishers: z.publishers,
          payloadSize: o.payloadSize,
          window: z.window,
          pacing: 'puback',
          protocolVersion: o.protocolVersion,
          subscriberAckRate: z.rate,
        },
        transport: 'tcp',
        warmupS: o.warmupS,
        durationS: o.durationS,
      },
      progress,
    );
    return { [`fanin-slow QoS 1, subscriber ${z.rate} msg/s`]: m };
  },
};
