/**
 * A Map and a Set for collections that usually hold one entry: a session's subscriptions
 * and pre-subscriptions (an IM user's inbox), the subscribers of a filter in the shard's
 * trie (an inbox has one). The one entry is kept in the object itself; a real Map or Set
 * is made from the second on. An empty Map costs ~180 bytes and a Set ~150: with 10,000s
 * of idle sessions, that is most of what a session costs.
 *
 * Iteration order is insertion order, as for Map and Set. Unlike theirs, an iterator over
 * the inline entry does not see changes made while iterating (callers never do that).
 */
const NONE: unique symbol = Symbol('none');

export class SmallMap<K, V> implements Iterable<[K, V]> {
  private k: K | typeof NONE = NONE;
  private v: V | undefined = undefined;
  private map: Map<K, V> | null = null;

  get size(): number {
    return this.map !== null ? this.map.size : this.k === NONE ? 0 : 1;
  }

  get(key: K): V | undefined {
    if (this.map !== null) return this.map.get(key);
    return this.k === key ? this.v : undefined;
  }

  has(key: K): boolean {
    if (this.map !== null) return this.map.has(key);
    return this.k === key;
  }

  set(key: K, value: V): this {
    if (this.map !== null) this.map.set(key, value);
    else if (this.k === NONE || this.k === key) {
      this.k = key;
      this.v = value;
    } else {
      this.map = new Map([
        [this.k, this.v as V],
        [key, value],
      ]);
      this.k = NONE;
      this.v = undefined;
    }
    return this;
  }

  delete(key: K): boolean {
    if (this.map !== null) {
      if (!this.map.delete(key)) return false;
      if (this.map.size === 0) this.map = null;
      return true;
    }
    if (this.k === NONE || this.k !== key) return false;
    this.k = NONE;
    this.v = undefined;
    return true;
  }

  clear(): void {
    this.k = NONE;
    this.v = undefined;
    this.map = null;
  }

  keys(): IterableIterator<K> {
    if (this.map !== null) return this.map.keys();
    return (this.k === NONE ? [] : [this.k]).values();
  }

  values(): IterableIterator<V> {
    if (this.map !== null) return this.map.values();
    return (this.k === NONE ? [] : [this.v as V]).values();
  }

  entries(): IterableIterator<[K, V]> {
    if (this.map !== null) return this.map.entries();
    return (this.k === NONE ? [] : [[this.k, this.v as V] as [K, V]]).values();
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}

export class SmallSet<T> implements Iterable<T> {
  private one: T | typeof NONE = NONE;
  private set: Set<T> | null = null;

  constructor(values?: Iterable<T>) {
    if (values) for (const v of values) this.add(v);
  }

  get size(): number {
    return this.set !== null ? this.set.size : this.one === NONE ? 0 : 1;
  }

  has(value: T): boolean {
    if (this.set !== null) return this.set.has(value);
    return this.one === value;
  }

  add(value: T): this {
    if (this.set !== null) this.set.add(value);
    else if (this.one === NONE) this.one = value;
    else if (this.one !== value) {
      this.set = new Set([this.one, value]);
      this.one = NONE;
    }
    return this;
  }

  delete(value: T): boolean {
    if (this.set !== null) {
      if (!this.set.delete(value)) return false;
      if (this.set.size === 0) this.set = null;
      return true;
    }
    if (this.one === NONE || this.one !== value) return false;
    this.one = NONE;
    return true;
  }

  clear(): void {
    this.one = NONE;
    this.set = null;
  }

  values(): IterableIterator<T> {
    if (this.set !== null) return this.set.values();
    return (this.one === NONE ? [] : [this.one]).values();
  }

  [Symbol.iterator](): IterableIterator<T> {
    return this.values();
  }
}
