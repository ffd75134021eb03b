/**
 * TopicTrie: a map from MQTT Topic Filter to one value, with fast matching of
 * a concrete Topic Name against every stored filter.
 *
 * Used on the broker hot path as the per-shard subscription index
 * (filter -> subscribers) and as the route table (filter -> shard ids).
 *
 * Layout
 * ------
 * One node per filter level. Each node keeps its children in three slots:
 *   - `children`: Map of literal level -> node (created lazily, dropped when
 *     empty, so leaf nodes cost no Map),
 *   - `plus`: the `+` child,
 *   - `hash`: the `#` child; `#` is always the last level [MQTT-4.7.1-2], so
 *     this child is always a leaf that only carries a value.
 * Wildcards never live in `children`, so a literal lookup can never hit a
 * wildcard node by accident, and matching needs no string comparisons
 * against '+'/'#'.
 * A node that terminates a stored filter has `has = true` and remembers the
 * filter string, so `visit` gets it without re-joining levels.
 *
 * Matching
 * --------
 * The topic is split once into levels. `matchFrom(node, i)` is called with
 * the node reached after consuming `i` levels:
 *   1. if the node has a `#` child, that filter matches: `#` covers the
 *      parent level and any number of child levels, so `a/#` matches both
 *      `a` (reached with i === levels.length) and `a/b/c` [MQTT-4.7.1-2];
 *   2. if all levels are consumed, the node's own filter (if any) matches;
 *   3. otherwise descend into the literal child for levels[i] and into the
 *      `+` child, both with i + 1 [MQTT-4.7.1-3].
 * At the root (i === 0), the `+` and `#` children are skipped for topics
 * starting with `$` [MQTT-4.7.2-1].
 * Every stored filter corresponds to exactly one path of literal/`+` choices
 * and each choice consumes a fixed topic level, so each matching filter is
 * visited exactly once. Cost is O(levels x branching through `+`), not
 * O(number of filters). Recursion depth is bounded by the topic's level
 * count, which validateTopicName caps via maxTopicLevels.
 *
 * Exact filters
 * -------------
 * Filters without `+` or `#` (an IM inbox, a device's own topic: nearly every
 * filter of an IM broker) live in one Map keyed by the whole filter instead of
 * the trie: a match is one hash lookup of the topic, with no split into levels
 * (an array and a string per level per message, measured at 7 % of a broker
 * thread's time in the pairs benchmark), and the trie is walked only when it
 * holds wildcard filters. An exact filter equals exactly one topic
 * [MQTT-4.7.3-4] (case-sensitive, no normalisation), so the Map lookup has the
 * semantics of the walk.
 *
 * Mutating the trie from inside `visit` or during `filters()` iteration is
 * not supported.
 */

class Node<V> {
  children: Map<string, Node<V>> | null = null;
  plus: Node<V> | null = null;
  hash: Node<V> | null = null;
  has = false;
  value: V | undefined = undefined;
  filter = '';

  isEmpty(): boolean {
    return !this.has && this.children === null && this.plus === null && this.hash === null;
  }
}

const DOLLAR = 0x24; // '$'

const isWild = (filter: string): boolean => filter.includes('+') || filter.includes('#');

export class TopicTrie<V> {
  private readonly root = new Node<V>();
  /** Filters with a wildcard, stored in the trie. */
  private count = 0;
  private readonly exact = new Map<string, V>();

  /** Number of stored filters. */
  get size(): number {
    return this.count + this.exact.size;
  }

  get(filter: string): V | undefined {
    if (!isWild(filter)) return this.exact.get(filter);
    const node = this.find(filter);
    return node !== null && node.has ? node.value : undefined;
  }

  has(filter: string): boolean {
    if (!isWild(filter)) return this.exact.has(filter);
    const node = this.find(filter);
    return node !== null && node.has;
  }

  /**
   * Stores `value` for `filter`, replacing any previous value.
   * Throws on a `#` that is not the last level: the trie's `#` slot is a
   * leaf, and callers are expected to have run validateTopicFilter.
   */
  set(filter: string, value: V): void {
    if (!isWild(filter)) {
      this.exact.set(filter, value);
      return;
    }
    const levels = filter.split('/');
    const last = levels.length - 1;
    let node = this.root;
    for (let i = 0; i <= last; i++) {
      const level = levels[i];
      let next: Node<V> | null;
      if (level === '+') {
        next = node.plus;
        if (next === null) next = node.plus = new Node<V>();
      } else if (level === '#') {
        // [MQTT-4.7.1-2] '#' must be the last level.
        if (i !== last) throw new RangeError(`invalid topic filter: ${filter}`);
        next = node.hash;
        if (next === null) next = node.hash = new Node<V>();
      } else {
        if (node.children === null) node.children = new Map();
        next = node.children.get(level) ?? null;
        if (next === null) {
          next = new Node<V>();
          node.children.set(level, next);
        }
      }
      node = next;
    }
    if (!node.has) {
      node.has = true;
      node.filter = filter;
      this.count++;
    }
    node.value = value;
  }

  /** Removes `filter`; prunes nodes left empty so churn does not leak memory. */
  delete(filter: string): boolean {
    if (!isWild(filter)) return this.exact.delete(filter);
    const levels = filter.split('/');
    // path[i] is the node from which levels[i] was taken.
    const path: Node<V>[] = [];
    let node: Node<V> | null = this.root;
    for (let i = 0; i < levels.length && node !== null; i++) {
      path.push(node);
      node = child(node, levels[i]);
    }
    if (node === null || !node.has) return false;
    node.has = false;
    node.value = undefined;
    node.filter = '';
    this.count--;
    for (let i = levels.length - 1; i >= 0 && node.isEmpty(); i--) {
      const parent: Node<V> = path[i];
      const level = levels[i];
      if (level === '+') parent.plus = null;
      else if (level === '#') parent.hash = null;
      else if (parent.children !== null) {
        parent.children.delete(level);
        if (parent.children.size === 0) parent.children = null;
      }
      node = parent;
    }
    return true;
  }

  /** Yields every stored [filter, value] pair (order unspecified). */
  *filters(): IterableIterator<[string, V]> {
    yield* this.exact;
    const stack: Node<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      if (node.has) yield [node.filter, node.value as V];
      if (node.hash !== null) stack.push(node.hash);
      if (node.plus !== null) stack.push(node.plus);
      if (node.children !== null) for (const c of node.children.values()) stack.push(c);
    }
  }

  /** Calls `visit` once per stored filter matching `topic` (semantics of matchTopic). */
  match(topic: string, visit: (value: V, filter: string) => void): void {
    if (this.exact.size !== 0) {
      const v = this.exact.get(topic);
      if (v !== undefined || this.exact.has(topic)) visit(v as V, topic);
    }
    if (this.count === 0) return;
    this.matchFrom(this.root, topic.split('/'), 0, topic.charCodeAt(0) === DOLLAR, visit);
  }

  /** Test/diagnostic helper: trie nodes including the root (1 when it holds no wildcard filter). */
  nodeCount(): number {
    let n = 0;
    const stack: Node<V>[] = [this.root];
    while (stack.length > 0) {
      const node = stack.pop()!;
      n++;
      if (node.hash !== null) stack.push(node.hash);
      if (node.plus !== null) stack.push(node.plus);
      if (node.children !== null) for (const c of node.children.values()) stack.push(c);
    }
    return n;
  }

  private matchFrom(
    node: Node<V>,
    levels: string[],
    i: number,
    dollar: boolean,
    visit: (value: V, filter: string) => void,
  ): void {
    // [MQTT-4.7.2-1] wildcards in the first filter level skip `$` topics.
    const wild = i !== 0 || !dollar;
    const hash = node.hash;
    // [MQTT-4.7.1-2] '#' matches this (parent) level and all deeper levels.
    if (wild && hash !== null && hash.has) visit(hash.value as V, hash.filter);
    if (i === levels.length) {
      if (node.has) visit(node.value as V, node.filter);
      return;
    }
    if (node.children !== null) {
      const next = node.children.get(levels[i]);
      if (next !== undefined) this.matchFrom(next, levels, i + 1, dollar, visit);
    }
    // [MQTT-4.7.1-3] '+' matches exactly one level (possibly empty).
    if (wild && node.plus !== null) this.matchFrom(node.plus, levels, i + 1, dollar, visit);
  }

  private find(filter: string): Node<V> | null {
    const levels = filter.split('/');
    let node: Node<V> | null = this.root;
    for (let i = 0; i < levels.length && node !== null; i++) node = child(node, levels[i]);
    return node;
  }
}

/** Child for one filter level, routing wildcards to their dedicated slots. */
function child<V>(node: Node<V>, level: string): Node<V> | null {
  if (level === '+') return node.plus;
  if (level === '#') return node.hash;
  return node.children?.get(level) ?? null;
}
