/**
 * The NATS peer as a NATS cluster (bench/lib/nats-cluster.ts): the configuration of each
 * of the K servers and when the cluster counts as formed.
 */
import { describe, expect, it } from 'vitest';
import { consumersSettled, DRAIN_IDLE_CPU_PCT, DRAIN_QUIET_POLLS, NATS_CLUSTER_NAME, natsClusterConfig, natsClusterNotFormed, natsServerName, type NatsServerPorts } from '../../../bench/lib/nats-cluster.js';

const host = '127.0.0.1';
const ports: NatsServerPorts[] = [0, 1, 2].map((i) => ({ client: 4000 + i, cluster: 5000 + i, mqtt: 6000 + i, http: 7000 + i }));
const configs = ports.map((_, i) => natsClusterConfig(i, { host, ports, storeDir: `/tmp/bench-nats-${i}/js` }));
const field = (conf: string, re: RegExp) => re.exec(conf)?.[1];
/** The `name { ... }` block of a configuration (no nested blocks in ours). */
const block = (conf: string, name: string) => new RegExp(`^${name} \\{\\n([^}]*)\\}`, 'm').exec(conf)?.[1] ?? '';

describe('NATS cluster: the configuration of K servers', () => {
  it('gives every server a unique name and its own client, cluster, MQTT and monitoring ports', () => {
    const names = configs.map((c) => field(c, /^server_name: (\S+)$/m));
    expect(names).toEqual([0, 1, 2].map(natsServerName));
    expect(new Set(names).size).toBe(3);
    configs.forEach((c, i) => {
      expect(c).toMatch(new RegExp(`^listen: ${host}:${ports[i]!.client}$`, 'm'));
      expect(c).toMatch(new RegExp(`^http: ${host}:${ports[i]!.http}$`, 'm'));
      expect(block(c, 'cluster')).toContain(`listen: ${host}:${ports[i]!.cluster}`);
      expect(block(c, 'mqtt')).toContain(`listen: ${host}:${ports[i]!.mqtt}`);
    });
  });

  it('routes every server to all the others, never to itself, in one named cluster', () => {
    configs.forEach((c, i) => {
      const cl = block(c, 'cluster');
      expect(cl).toContain(`name: ${NATS_CLUSTER_NAME}`);
      const routes = [...cl.matchAll(/nats-route:\/\/([\d.]+):(\d+)/g)].map((m) => Number(m[2]));
      expect(routes.sort()).toEqual(ports.filter((_, k) => k !== i).map((p) => p.cluster));
    });
  });

  it('has JetStream in its own store and MQTT streams and consumers without replicas', () => {
    configs.forEach((c, i) => {
      expect(c).toContain(`jetstream { store_dir: "/tmp/bench-nats-${i}/js" }`);
      expect(block(c, 'mqtt')).toMatch(/^\s*stream_replicas: 1$/m);
      expect(block(c, 'mqtt')).toMatch(/^\s*consumer_replicas: 1$/m);
    });
  });

  it('throws for a server without ports', () => {
    expect(() => natsClusterConfig(3, { host, ports, storeDir: '/tmp/x' })).toThrow(/no ports/);
  });
});

describe('NATS cluster: formed', () => {
  const ok = { routes: 2, metaLeader: 'bench-s1', metaSize: 3 };
  it('when every server has K - 1 routes and knows a meta leader of a group of K', () => {
    expect(natsClusterNotFormed(3, [ok, ok, ok])).toBeUndefined();
  });
  it('not before, and says why', () => {
    expect(natsClusterNotFormed(3, [ok, { ...ok, routes: 1 }, ok])).toBe('s1: 1/2 routes');
    expect(natsClusterNotFormed(3, [ok, ok, { routes: 2 }])).toBe('s2: no JetStream meta leader');
    expect(natsClusterNotFormed(3, [{ ...ok, metaSize: 2 }, ok, ok])).toBe('s0: meta group of 2/3');
    expect(natsClusterNotFormed(3, [{}, ok, ok])).toBe('s0: ?/2 routes; s0: no JetStream meta leader');
    expect(natsClusterNotFormed(3, [ok, ok])).toBe('2 of 3 servers answered');
  });
});

describe('NATS cluster: stop waits for the departed clients\' consumers', () => {
  const polls = (counts: number[], cpuPct = 0) => counts.map((consumers) => ({ consumers, cpuPct }));
  it('until the count is down to the floor', () => {
    expect(consumersSettled([], 2)).toBe(false);
    expect(consumersSettled(polls([8000, 5000, 2], 150), 2)).toBe(true);
    expect(consumersSettled(polls([8000, 5000, 3000]), 2)).toBe(false);
  });
  it('or unchanged over DRAIN_QUIET_POLLS polls with the servers idle', () => {
    expect(consumersSettled(polls([5000, 40, 40, 40]), 2, 3)).toBe(false);
    expect(consumersSettled(polls([5000, 40, 40, 40, 40]), 2, 3)).toBe(true);
    const still = polls(new Array<number>(DRAIN_QUIET_POLLS + 1).fill(51_104));
    expect(consumersSettled(still, 4)).toBe(true);
    // The servers still busy (the deletions not visible yet): not settled.
    expect(consumersSettled(still.map((p) => ({ ...p, cpuPct: DRAIN_IDLE_CPU_PCT + 80 })), 4)).toBe(false);
    expect(consumersSettled([...still.slice(1), { consumers: 51_104, cpuPct: DRAIN_IDLE_CPU_PCT }], 4)).toBe(false);
  });
});
