import { describe, it, expect, afterEach } from 'vitest';
import { MessageChannel } from 'node:worker_threads';
import { ActorSystem } from '../../../src/runtime/system.js';
import { PortLink, createLinkPair } from '../../../src/runtime/port-link.js';

/** Names `a:*` live on thread A, everything else on thread B. */
const placement = (name: string): string => (name.startsWith('a:') ? 'A' : 'B');

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

async function until(cond: () => boolean, what: string, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

interface Pair {
  sa: ActorSystem;
  sb: ActorSystem;
  la: PortLink;
  lb: PortLink;
  /** Messages received by actor b:rx on thread B. */
  rxB: unknown[];
  /** Messages received by actor a:rx on thread A. */
  rxA: unknown[];
}

const open: ActorSystem[] = [];

function pair(opts: { highWater?: number; maxBatch?: number } = {}): Pair {
  const { a, b } = createLinkPair(new MessageChannel());
  const sa = new ActorSystem('A', placement);
  const sb = new ActorSystem('B', placement);
  const la = new PortLink(a, opts);
  const lb = new PortLink(b, opts);
  sa.addLink('B', la);
  sb.addLink('A', lb);
  const rxA: unknown[] = [];
  const rxB: unknown[] = [];
  sa.spawn('a:rx', { receive: (m) => void rxA.push(m) });
  sb.spawn('b:rx', { receive: (m) => void rxB.push(m) });
  open.push(sa, sb);
  return { sa, sb, la, lb, rxA, rxB };
}

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

describe('createLinkPair', () => {
  it('gives both ends one shared counter array and opposite sides', () => {
    const { a, b } = createLinkPair(new MessageChannel());
    expect(a.counters).toBe(b.counters);
    expect(a.counters.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(a.counters.length).toBe(2);
    expect([a.side, b.side]).toEqual([0, 1]);
    a.port.close();
  });
});

describe('ActorSystem remote delivery over PortLink', () => {
  it('delivers messages in order, both ways', async () => {
    const p = pair();
    const toB = p.sa.ref<unknown>('b:rx');
    const toA = p.sb.ref<unknown>('a:rx');
    for (let i = 0; i < 50; i++) toB.tell({ i });
    for (let i = 0; i < 20; i++) toA.tell(i);
    await until(() => p.rxB.length === 50 && p.rxA.length === 20, 'delivery');
    expect(p.rxB).toEqual(Array.from({ length: 50 }, (_, i) => ({ i })));
    expect(p.rxA).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('batches every send of one turn into one postMessage', async () => {
    const p = pair();
    const toB = p.sa.ref<string>('b:rx');
    toB.tell('x');
    toB.tell('y');
    toB.tell('z');
    // Nothing is posted synchronously: the batch is flushed on setImmediate.
    expect(p.la.sentBatches).toBe(0);
    await turn();
    expect(p.la.sentBatches).toBe(1);
    expect(p.la.sentRecords).toBe(3);
    await until(() => p.rxB.length === 3, 'delivery');
    expect(p.rxB).toEqual(['x', 'y', 'z']);
    // A second turn gives a second batch.
    toB.tell('w');
    await until(() => p.rxB.length === 4, 'second delivery');
    expect(p.la.sentBatches).toBe(2);
    expect(p.la.sentRecords).toBe(4);
  });

  it('flushes early when the batch reaches maxBatch, keeping the order', async () => {
    const p = pair({ maxBatch: 3 });
    const toB = p.sa.ref<number>('b:rx');
    for (let i = 0; i < 7; i++) toB.tell(i);
    expect(p.la.sentBatches).toBe(2); // 3 + 3 posted synchronously
    expect(p.la.sentRecords).toBe(6);
    await until(() => p.rxB.length === 7, 'delivery');
    expect(p.la.sentBatches).toBe(3);
    expect(p.rxB).toEqual([0, 1, 2, 3, 4, 5, 6]);
  });

  it('binary payloads (Uint8Array, Buffer) survive the trip', async () => {
    const p = pair();
    const bytes = new Uint8Array(300);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
    const msg = { t: 'publish', msg: { topic: 'a/b', payload: bytes, qos: 1, retain: false } };
    p.sa.ref('b:rx').tell(msg);
    p.sa.ref('b:rx').tell({ buf: Buffer.from([0, 1, 2, 255]), empty: new Uint8Array(0) });
    await until(() => p.rxB.length === 2, 'delivery');
    const got = p.rxB[0] as typeof msg;
    expect(got.msg.payload).toBeInstanceOf(Uint8Array);
    expect(Array.from(got.msg.payload)).toEqual(Array.from(bytes));
    expect(got.msg.topic).toBe('a/b');
    const second = p.rxB[1] as { buf: Uint8Array; empty: Uint8Array };
    expect(second.buf).toBeInstanceOf(Uint8Array);
    expect(Array.from(second.buf)).toEqual([0, 1, 2, 255]);
    expect(second.empty).toBeInstanceOf(Uint8Array);
    expect(second.empty.length).toBe(0);
  });

  it('the shared pending counter rises on flush and returns to 0 once the peer handled the batch', async () => {
    const p = pair();
    const toB = p.sa.ref<number>('b:rx');
    for (let i = 0; i < 5; i++) toB.tell(i);
    expect(p.la.pending()).toBe(0); // not flushed yet
    p.la.flush();
    expect(p.la.pending()).toBe(5);
    expect(p.lb.pending()).toBe(0); // the other direction is separate
    await until(() => p.rxB.length === 5, 'delivery');
    expect(p.la.pending()).toBe(0);
    // The other direction uses the other slot.
    p.sb.ref<number>('a:rx').tell(1);
    p.lb.flush();
    expect(p.lb.pending()).toBe(1);
    expect(p.la.pending()).toBe(0);
    await until(() => p.rxA.length === 1, 'reverse delivery');
    expect(p.lb.pending()).toBe(0);
  });

  it('congested() is true above highWater until the peer catches up', async () => {
    const p = pair({ highWater: 2 });
    const toB = p.sa.ref<number>('b:rx');
    toB.tell(1);
    toB.tell(2);
    p.la.flush();
    expect(p.la.congested()).toBe(false); // 2 is not above 2
    expect(p.sa.congested()).toBe(false);
    toB.tell(3);
    p.la.flush();
    expect(p.la.pending()).toBe(3);
    expect(p.la.congested()).toBe(true);
    expect(p.sa.congested()).toBe(true);
    expect(p.sb.congested()).toBe(false); // B has sent nothing
    await until(() => p.rxB.length === 3, 'delivery');
    expect(p.sa.congested()).toBe(false);
  });

  it('a batch for an actor missing on the peer counts there as no_actor and still releases the counter', async () => {
    const p = pair();
    p.sa.ref('b:nobody').tell('x');
    p.sa.ref('b:rx').tell('y');
    await until(() => p.rxB.length === 1, 'delivery');
    expect(p.sb.undeliverable.no_actor).toBe(1);
    expect(p.sa.undeliverable).toEqual({ no_actor: 0, no_link: 0 });
    expect(p.la.pending()).toBe(0);
  });

  it('after removeLink sends count as no_link; close() flushes what was queued', async () => {
    const p = pair();
    const toB = p.sa.ref<string>('b:rx');
    toB.tell('last');
    p.sa.removeLink('B'); // closes the link, which flushes first
    expect(p.la.sentBatches).toBe(1);
    toB.tell('lost');
    expect(p.sa.undeliverable.no_link).toBe(1);
    await until(() => p.rxB.length === 1, 'delivery of the flushed batch');
    expect(p.rxB).toEqual(['last']);
    // A closed link drops sends silently.
    p.la.send('b:rx', 'ignored');
    p.la.flush();
    expect(p.la.sentBatches).toBe(1);
  });

  it('flushAll posts every link immediately', () => {
    const p = pair();
    p.sa.ref('b:rx').tell(1);
    p.sa.flushAll();
    expect(p.la.sentBatches).toBe(1);
    expect(p.la.pending()).toBe(1);
  });
});
