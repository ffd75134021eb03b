/**
 * The gateway's replica of the route table: topic filter -> bitmask of the shards with at
 * least one subscriber of it. The shards are the authority (routeAdd/routeDel/snapshot);
 * a publish reads only this replica, so it never waits on another thread to be routed.
 */
import { TopicTrie } from '../router/topic-trie.js';

export class RouteTable {
  private readonly trie = new TopicTrie<number>();

  add(shard: number, filters: string[]): void {
    const bit = 1 << shard;
    for (const f of filters) this.trie.set(f, (this.trie.get(f) ?? 0) | bit);
  }

  remove(shard: number, filters: string[]): void {
    const bit = 1 << shard;
    for (const f of filters) {
      const m = this.trie.get(f);
      if (m === undefined) continue;
      const next = m & ~bit;
      if (next === 0) this.trie.delete(f);
      else this.trie.set(f, next);
    }
  }

  /** Forgets every route of a shard (it restarted empty). */
  dropShard(shard: number): void {
    const gone: string[] = [];
    for (const [f] of this.trie.filters()) gone.push(f);
    this.remove(shard, gone);
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
