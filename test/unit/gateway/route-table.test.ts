/** The route-table replica (src/gateway/route-table.ts): masks per filter, and which filters a change newly routes or unroutes. */
import { describe, expect, it } from 'vitest';
import { RouteTable } from '../../../src/gateway/route-table.js';

describe('RouteTable', () => {
  it('looks up the shards whose filters match a topic', () => {
    const r = new RouteTable();
    r.add(0, ['a/+', 'b']);
    r.add(2, ['a/#']);
    expect(r.lookup('a/x')).toBe(0b101);
    expect(r.lookup('a')).toBe(0b100);
    expect(r.lookup('b')).toBe(0b001);
    expect(r.lookup('c')).toBe(0);
  });

  it('add returns the filters no shard had; remove and dropShard those no shard keeps', () => {
    const r = new RouteTable();
    expect(r.add(0, ['x', 'y'])).toEqual(['x', 'y']);
    expect(r.add(1, ['y', 'z'])).toEqual(['z']);
    expect(r.add(1, ['z'])).toEqual([]); // already there
    expect(r.remove(0, ['y'])).toEqual([]); // shard 1 still wants it
    expect(r.remove(0, ['z', 'nope'])).toEqual([]); // not shard 0's, unknown
    expect(r.remove(1, ['y'])).toEqual(['y']);
    expect(r.dropShard(1)).toEqual(['z']);
    expect(r.size).toBe(1);
    expect(r.dropShard(0)).toEqual(['x']);
    expect(r.size).toBe(0);
  });
});
