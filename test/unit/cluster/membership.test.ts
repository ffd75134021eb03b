/** Heartbeat bookkeeping of the cluster link (src/cluster/membership.ts). */
import { describe, expect, it } from 'vitest';
import { Membership } from '../../../src/cluster/membership.js';

describe('Membership', () => {
  it('a node joins with its first heartbeat, is gone when silent too long, and a new start is a restart', () => {
    const m = new Membership('a', 3500);
    expect(m.heard('a', 1, 0)).toBeNull(); // itself
    expect(m.heard('b', 1, 0)).toEqual({ kind: 'joined', node: 'b' });
    expect(m.heard('b', 1, 1000)).toBeNull();
    expect(m.heard('b', 2, 2000)).toEqual({ kind: 'restarted', node: 'b' });
    expect(m.heard('c', 1, 2500)).toEqual({ kind: 'joined', node: 'c' });
    expect(m.sweep(5000)).toEqual([]);
    expect(m.sweep(5600)).toEqual([{ kind: 'gone', node: 'b' }]);
    expect(m.others().map((n) => n.node)).toEqual(['c']);
    expect(m.sweep(6100)).toEqual([{ kind: 'gone', node: 'c' }]);
    expect(m.heard('b', 2, 7000)).toEqual({ kind: 'joined', node: 'b' });
  });

  it('a sweep long after the previous one (this node was held up) forgets no one: the heartbeats of that time are not read yet', () => {
    const m = new Membership('a', 3500, 1000);
    m.heard('b', 1, 0);
    expect(m.sweep(1000)).toEqual([]);
    // Paused from 1000 to 6000: b kept beating, its heartbeats wait in the socket.
    expect(m.sweep(6000)).toEqual([]);
    expect(m.heard('b', 1, 6001)).toBeNull(); // still a member, not a new join
    expect(m.sweep(7000)).toEqual([]);
    // b really silent: gone on a sweep that is on time.
    expect(m.sweep(8000)).toEqual([]);
    expect(m.sweep(9000)).toEqual([]);
    expect(m.sweep(10000)).toEqual([{ kind: 'gone', node: 'b' }]);
  });
});
