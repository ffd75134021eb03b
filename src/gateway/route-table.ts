/**
 * The gateway's replica of the route table: topic filter -> bitmask of the shards with at
 * least one subscriber of it. The shards are the authority (routeAdd/routeDel/snapshot);
 * a publish reads only this replica, so it never waits on another thread to be routed.
 */
import { TopicTrie } from '../router/topic-trie.js';

export class RouteTable {
  private readonly trie = new TopicTrie<number>();

  /** Adds `shard` to each filter; returns the filters no shard had before (newly routed). */
  add(shard: number, filters: string[]): string[] {
    const bit = 1 << shard;
    const fresh: string[] = [];
    for (const f of filters) {
      const m = this.trie.get(f);
      if (m === undefined) fresh.push(f);
      this.trie.set(f, (m ?? 0) | bit);
    }
    return fresh;
  }

  /** Removes `shard` from each filter; returns the filters no shard wants any more. */
  remove(shard: number, filters: string[]): string[] {
    const bit = 1 << shard;
    const gone: string[] = [];
    for (const f of filters) {
      const m = this.trie.get(f);
      if (m === undefined) continue;
      const next = m & ~bit;
      if (next === m) continue;
      if (next === 0) {
        this.trie.delete(f);
        gone.push(f);
      } else this.trie.set(f, next);
    }
    return gone;
  }

  /** Forgets every route of a shard (it restarted empty); returns the filters no shard wants any more. */
  dropShard(shard: number): string[] {
    const all: string[] = [];
    for (const [f] of this.trie.filters()) all.push(f);
    return this.remove(shard, all);
  }

  /** Bitmask of the shards that want a message on this topic. */
  lookup(topic: string): number {
    let mask = 0;
    this.trie.match(topic, (m) => {
      mask |= m;
    });
    return mask;
  }

  get size(): number {
    return this.trie.size;
  }
}
