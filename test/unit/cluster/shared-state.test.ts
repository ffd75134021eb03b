/**
 * The cluster's shared state (src/cluster/shared-*.ts, kv.ts, presence-view.ts,
 * write-echo.ts) over an in-memory KV: key encodings, the write-echo rule that makes
 * concurrent edits converge, presence summed over nodes and published once per change,
 * a gone node's devices, a restarted node's leftovers, retained messages seeded by the
 * first node and won by the bucket afterwards, IM state seeded, adopted and edited.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { Metrics } from '../../../src/admin/metrics.js';
import { decodeKey, encodeKey, bucketName } from '../../../src/cluster/kv.js';
import { isLeader, parsePresenceKey, PresenceView, presenceKey } from '../../../src/cluster/presence-view.js';
import { WriteEcho } from '../../../src/cluster/write-echo.js';
import { SharedPresence } from '../../../src/cluster/shared-presence.js';
import { SharedRetained, decodeRetained, encodeRetained } from '../../../src/cluster/shared-retained.js';
import { SharedIm } from '../../../src/cluster/shared-im.js';
import type { CoordinatorPort } from '../../../src/cluster/cluster-state.js';
import type { ImState } from '../../../src/coordinator/im-state.js';
import type { PresenceState } from '../../../src/coordinator/presence.js';
import type { AppMessage } from '../../../src/protocol/messages.js';
import type { DirectoryEntry } from '../../../src/im/presub.js';
import { MemoryKv } from './memory-kv.js';

const log = pino({ level: 'silent' });
const settle = async (n = 20) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

/** A coordinator as the shared state sees it: records what it is told. */
function port(o: { retained?: AppMessage[]; templates?: string[]; directory?: DirectoryEntry[] } = {}) {
  const retained = new Map((o.retained ?? []).map((m) => [m.topic, m]));
  const im = { templates: o.templates ?? ['/{ns}/im/u/{uid}'], rules: [], directory: new Map((o.directory ?? []).map((e) => [e.uid, e])), save: async () => {} };
  const published: Array<{ ns: string; state: PresenceState }> = [];
  const applied: string[] = [];
  const p: CoordinatorPort = {
    keepRetained: (m) => (m.payload.length === 0 ? retained.delete(m.topic) : retained.set(m.topic, m), undefined),
    retainedMessages: () => [...retained.values()],
    imState: im as unknown as ImState,
    applyTemplates: async (t) => {
      im.templates = t;
      applied.push('templates');
    },
    applyRules: async () => {
      applied.push('rules');
    },
    applyUser: async (uid, e) => {
      if (e) im.directory.set(uid, e);
      else im.directory.delete(uid);
      applied.push(`user ${uid}`);
    },
    refreshAll: async () => {
      applied.push('refreshAll');
    },
    publishPresence: (ns, state) => published.push({ ns, state }),
    localSessions: async () => [],
    localShardOp: async () => ({ status: 404, body: {} }),
  };
  return { p, retained, im, published, applied };
}

const msg = (topic: string, payload = 'x'): AppMessage => ({ topic, payload: Buffer.from(payload), qos: 1, retain: true });

describe('keys and names', () => {
  it('topics and uids become KV keys without dots or padding, and back', () => {
    for (const s of ['/acme/im/u/jim', 'a.b/*/>', 'é/ü ~', '', '$SYS/x']) {
      const k = encodeKey(s);
      expect(k).toMatch(/^[A-Za-z0-9_-]*$/);
      expect(decodeKey(k)).toBe(s);
    }
    expect(bucketName('sb', 'retained')).toBe('sb-retained');
  });

  it('presence keys carry the uid and the node; the lowest live name leads', () => {
    expect(parsePresenceKey(presenceKey('jim.x', 'n-1'))).toEqual({ uid: 'jim.x', node: 'n-1' });
    expect(parsePresenceKey('nodot')).toBeNull();
    expect(isLeader('a', ['b', 'c'])).toBe(true);
    expect(isLeader('b', ['a', 'c'])).toBe(false);
    expect(isLeader('z', [])).toBe(true);
  });

  it('a stored retained message drops the publisher\'s connection; junk decodes to null', () => {
    const back = decodeRetained(encodeRetained({ ...msg('t'), originConn: 42, props: { contentType: 'text/plain' } }));
    expect(back).toMatchObject({ topic: 't', qos: 1, retain: true, props: { contentType: 'text/plain' } });
    expect(back!.originConn).toBeUndefined();
    expect(decodeRetained(new Uint8Array([1, 2, 3]))).toBeNull();
  });
});

describe('PresenceView', () => {
  it('sums a user\'s devices over the nodes and forgets a node', () => {
    const v = new PresenceView();
    v.set('jim', 'acme', 'a', 2);
    v.set('jim', 'acme', 'b', 1);
    v.set('ann', 'acme', 'b', 1);
    expect(v.total('jim')).toBe(3);
    expect(v.dropNode('b').sort()).toEqual(['ann', 'jim']);
    expect(v.state('jim')).toMatchObject({ uid: 'jim', online: true, devices: 2 });
    expect(v.state('ann')).toMatchObject({ online: false, devices: 0 });
    expect(v.ns('ann')).toBe('acme'); // still known for the offline message
    expect([...v.nodes()]).toEqual(['a']);
  });
});

describe('WriteEcho', () => {
  it('skips values older than our pending write; applies our last echo; applies anything with nothing pending', () => {
    const e = new WriteEcho('a');
    expect(e.arrived('k', 'b')).toBe(true);
    e.wrote('k');
    e.wrote('k');
    expect(e.arrived('k', 'b')).toBe(false); // before ours in the stream: ours wins
    expect(e.arrived('k', 'a')).toBe(false); // our first: a later one of ours follows
    expect(e.arrived('k', 'a')).toBe(true); // our last: apply if we drifted
    expect(e.arrived('k', 'b')).toBe(true);
    e.wrote('k');
    expect(e.failed('k')).toBe(true);
    expect(e.pendingFor('k')).toBe(false);
  });
});

describe('SharedPresence', () => {
  const start = async (bucket: MemoryKv, node: string, others: string[] = []) => {
    const c = port();
    const s = new SharedPresence(bucket.kv(), c.p, node, 1000, new Metrics(node), log);
    await s.start(1000);
    s.activate(() => others, 60_000);
    return { s, ...c };
  };

  it('counts devices over nodes and publishes once per change, from the node where it happened', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', ['b']);
    const b = await start(bucket, 'b', ['a']);
    a.s.local('jim', 'acme', 1);
    await settle();
    b.s.local('jim', 'acme', 1);
    await settle();
    a.s.local('jim', 'acme', 0);
    await settle();
    expect(a.published.map((p) => p.state.devices)).toEqual([1, 1]);
    expect(b.published.map((p) => p.state.devices)).toEqual([2]);
    expect(a.published[0]!.ns).toBe('acme');
    a.s.close();
    b.s.close();
  });

  it('a gone node\'s devices are deleted by the lowest live node, which publishes; the others only forget', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', ['b', 'c']);
    const b = await start(bucket, 'b', ['a', 'c']);
    const c = await start(bucket, 'c', ['a', 'b']);
    c.s.local('jim', 'acme', 2);
    a.s.local('jim', 'acme', 1);
    await settle();
    a.published.length = 0;
    b.published.length = 0;
    // c dies; a and b notice.
    c.s.close();
    for (const n of [a, b]) n.s.onMembership({ kind: 'gone', node: 'c' });
    await settle();
    expect(a.published.map((p) => p.state.devices)).toEqual([1]);
    expect(b.published).toEqual([]);
    expect(bucket.keys()).toEqual([presenceKey('jim', 'a')]);
    // b was only slow (a took it for gone): it sees its key deleted and writes it back.
    b.s.local('jim', 'acme', 1);
    await settle();
    a.s.onMembership({ kind: 'gone', node: 'b' });
    await settle();
    expect(bucket.keys().sort()).toEqual([presenceKey('jim', 'a'), presenceKey('jim', 'b')].sort());
    for (const n of [a, b]) n.s.close();
  });

  it('a restarted node deletes what its previous incarnation left and publishes the new count', async () => {
    const bucket = new MemoryKv();
    const old = await start(bucket, 'a');
    old.s.local('jim', 'acme', 1);
    await settle();
    old.s.close();
    const b = await start(bucket, 'b', ['a']);
    b.s.local('jim', 'acme', 1);
    await settle();
    expect(b.published.at(-1)!.state.devices).toBe(2);
    const again = await start(bucket, 'a', ['b']);
    await settle();
    expect(again.published.map((p) => p.state.devices)).toEqual([1]);
    expect(bucket.keys()).toEqual([presenceKey('jim', 'b')]);
    again.s.close();
    b.s.close();
  });

  it('publishes its own view at once when JetStream does not take the write', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a');
    bucket.fail = true;
    a.s.local('jim', 'acme', 1);
    await settle();
    expect(a.published.map((p) => p.state.devices)).toEqual([1]);
    a.s.close();
  });
});

describe('SharedRetained', () => {
  const start = async (bucket: MemoryKv, node: string, retained: AppMessage[]) => {
    const c = port({ retained });
    const metrics = new Metrics(node);
    const s = new SharedRetained(bucket.kv(), c.p, node, 1000, metrics, log);
    await s.start(1000);
    return { s, metrics, ...c };
  };

  it('the first node seeds the bucket; a later node gets its content, and drops what the bucket does not have', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', [msg('x', 'from a')]);
    expect(bucket.keys().sort()).toEqual([encodeKey('x'), 'x.seeded'].sort());
    const b = await start(bucket, 'b', [msg('y', 'stale on b')]);
    expect([...b.retained.keys()]).toEqual(['x']);
    // A publish on b reaches a's coordinator through the watch; an empty payload deletes.
    await b.s.put(msg('z', 'new'));
    await settle();
    expect(Buffer.from(a.retained.get('z')!.payload).toString()).toBe('new');
    await b.s.put({ ...msg('x'), payload: new Uint8Array(0) });
    await settle();
    expect(a.retained.has('x')).toBe(false);
    a.s.close();
    b.s.close();
  });

  it('$SYS stays per node; a failed write resolves (never hangs a PUBACK) and is counted', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', []);
    expect(a.s.put(msg('$SYS/broker/uptime'))).toBeUndefined();
    bucket.fail = true;
    await expect(a.s.put(msg('t'))).resolves.toBeUndefined();
    expect(a.metrics.snapshot().counters['cluster_errors_total{op="kv_put"}']).toBe(1);
    a.s.close();
  });
});

describe('SharedIm', () => {
  const start = async (bucket: MemoryKv, node: string, o: Parameters<typeof port>[0]) => {
    const c = port(o);
    const s = new SharedIm(bucket.kv(), c.p, node, 1000, new Metrics(node), log);
    await s.start(1000);
    await s.activate();
    return { s, ...c };
  };

  it('the first node seeds; a later node adopts the bucket (its own extra entries go); edits reach the other node', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', { directory: [{ uid: 'jim', groups: ['g'] }], templates: ['/{ns}/im/u/{uid}', 'extra/{uid}'] });
    const b = await start(bucket, 'b', { directory: [{ uid: 'old' }] });
    expect([...b.im.directory.keys()]).toEqual(['jim']);
    expect(b.im.templates).toEqual(['/{ns}/im/u/{uid}', 'extra/{uid}']);
    expect(b.applied).toEqual(['refreshAll']);
    // An admin edit on a.
    a.im.directory.set('ann', { uid: 'ann', topics: ['news/ann'] });
    await a.s.edited({ kind: 'user', uid: 'ann' });
    a.im.directory.delete('jim');
    await a.s.edited({ kind: 'user', uid: 'jim' });
    await settle();
    expect(b.applied).toEqual(['refreshAll', 'user ann', 'user jim']);
    expect([...b.im.directory.keys()]).toEqual(['ann']);
    // Its own echo changes nothing on a.
    expect(a.applied).toEqual([]);
    a.s.close();
    b.s.close();
  });

  it('concurrent template edits on two nodes end the same on both', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', {});
    const b = await start(bucket, 'b', {});
    a.im.templates = ['/{ns}/im/u/{uid}', 'from-a/{uid}'];
    b.im.templates = ['/{ns}/im/u/{uid}', 'from-b/{uid}'];
    await Promise.all([a.s.edited({ kind: 'templates' }), b.s.edited({ kind: 'templates' })]);
    await settle();
    expect(a.im.templates).toEqual(b.im.templates);
    a.s.close();
    b.s.close();
  });

  it('an edit JetStream does not take is refused with a reason', async () => {
    const bucket = new MemoryKv();
    const a = await start(bucket, 'a', {});
    bucket.fail = true;
    await expect(a.s.edited({ kind: 'templates' })).rejects.toThrow(/could not be stored/);
    a.s.close();
  });
});
