import { describe, it, expect } from 'vitest';
import { ActorSystem, type Actor } from '../../../src/runtime/system.js';

/** Lets the run queue (a microtask) and anything it scheduled run. */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

function recorder<M>(log: M[]): Actor<M> {
  return { receive: (m) => void log.push(m) };
}

describe('ActorSystem local delivery', () => {
  it('delivers asynchronously (never inside tell), in FIFO order across actors', async () => {
    const sys = new ActorSystem('t', () => 't');
    const log: string[] = [];
    sys.spawn<string>('a', { receive: (m) => void log.push(`a:${m}`) });
    sys.spawn<string>('b', { receive: (m) => void log.push(`b:${m}`) });
    const a = sys.ref<string>('a');
    const b = sys.ref<string>('b');
    a.tell('1');
    b.tell('1');
    a.tell('2');
    b.tell('2');
    a.tell('3');
    expect(log).toEqual([]); // nothing handled synchronously
    expect(sys.mailboxDepth()).toBe(5);
    await Promise.resolve();
    expect(log).toEqual(['a:1', 'b:1', 'a:2', 'b:2', 'a:3']);
    expect(sys.mailboxDepth()).toBe(0);
  });

  it('an actor that tells a local actor (or itself) during receive is not re-entered', async () => {
    const sys = new ActorSystem('t', () => 't');
    const log: string[] = [];
    let depth = 0;
    let maxDepth = 0;
    const enter = (): void => {
      depth++;
      maxDepth = Math.max(maxDepth, depth);
    };
    const pong = sys.ref<number>('pong');
    const ping = sys.ref<number>('ping');
    sys.spawn<number>('ping', {
      receive(n) {
        enter();
        log.push(`ping>${n}`);
        if (n < 3) {
          pong.tell(n + 1);
          ping.tell(100 + n); // to itself, too
        }
        log.push(`ping<${n}`);
        depth--;
      },
    });
    sys.spawn<number>('pong', {
      receive(n) {
        enter();
        log.push(`pong>${n}`);
        ping.tell(n);
        log.push(`pong<${n}`);
        depth--;
      },
    });
    ping.tell(0);
    await turn();
    expect(maxDepth).toBe(1);
    // Every receive completes (>... <) before the next starts, and tells are appended to the queue.
    expect(log).toEqual([
      'ping>0', 'ping<0',
      'pong>1', 'pong<1',
      'ping>100', 'ping<100',
      'ping>1', 'ping<1',
      'pong>2', 'pong<2',
      'ping>101', 'ping<101',
      'ping>2', 'ping<2',
      'pong>3', 'pong<3',
      'ping>102', 'ping<102',
      'ping>3', 'ping<3',
    ]);
  });

  it('messages told during a drain are handled in the same drain (one microtask), after the queue', async () => {
    const sys = new ActorSystem('t', () => 't');
    const log: number[] = [];
    const ref = sys.ref<number>('x');
    sys.spawn<number>('x', {
      receive(n) {
        log.push(n);
        if (n < 5) ref.tell(n + 1);
      },
    });
    ref.tell(0);
    await Promise.resolve();
    expect(log).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('refs are cached per name; spawn refuses a name placed on another thread', () => {
    const sys = new ActorSystem('A', (n) => (n.startsWith('b:') ? 'B' : 'A'));
    expect(sys.ref('a:1')).toBe(sys.ref('a:1'));
    expect(sys.ref('a:1').name).toBe('a:1');
    expect(() => sys.spawn('b:1', recorder([]))).toThrow(/placed on B, not A/);
  });

  it('counts messages for a missing local actor as undeliverable no_actor', async () => {
    const sys = new ActorSystem('t', () => 't');
    sys.ref('ghost').tell('x');
    sys.ref('ghost').tell('y');
    await turn();
    expect(sys.undeliverable).toEqual({ no_actor: 2, no_link: 0 });
    expect(sys.mailboxDepth()).toBe(0);
  });

  it('counts messages for a remote actor without a link as undeliverable no_link', () => {
    const sys = new ActorSystem('A', (n) => (n.startsWith('b:') ? 'B' : 'A'));
    sys.ref('b:1').tell('x');
    expect(sys.undeliverable).toEqual({ no_actor: 0, no_link: 1 });
    expect(sys.congested()).toBe(false);
  });

  it('onActorError receives the actor name and the queue keeps draining', async () => {
    const sys = new ActorSystem('t', () => 't');
    const errors: Array<[string, unknown]> = [];
    sys.onActorError = (a, err) => void errors.push([a, err]);
    const log: string[] = [];
    sys.spawn<string>('bad', {
      receive(m) {
        if (m === 'boom') throw new Error('boom');
        log.push(`bad:${m}`);
      },
    });
    sys.spawn<string>('good', recorder(log));
    sys.ref('bad').tell('boom');
    sys.ref('good').tell('after');
    sys.ref('bad').tell('ok');
    await turn();
    expect(errors).toHaveLength(1);
    expect(errors[0]![0]).toBe('bad');
    expect((errors[0]![1] as Error).message).toBe('boom');
    expect(log).toEqual(['after', 'bad:ok']);
  });

  it('a later batch of tells after a drain schedules a new drain', async () => {
    const sys = new ActorSystem('t', () => 't');
    const log: number[] = [];
    sys.spawn<number>('x', recorder(log));
    sys.ref<number>('x').tell(1);
    await turn();
    sys.ref<number>('x').tell(2);
    await turn();
    expect(log).toEqual([1, 2]);
  });
});
