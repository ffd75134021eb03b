/**
 * Retained messages, one per topic [MQTT-3.3.1-5], in a tree keyed by topic levels so a
 * new subscription's filter walks only the branches it can match instead of scanning
 * every retained topic. Bounded by limits.maxRetainedMessages.
 */
import type { AppMessage } from '../protocol/messages.js';

/**
 * One topic level. `children` is made with the first child: most nodes are leaves (a
 * user's presence topic, one per user), and an empty Map costs ~230 bytes.
 */
interface Node {
  children: Map<string, Node> | null;
  msg: AppMessage | undefined;
}

const newNode = (): Node => ({ children: null, msg: undefined });
/** The children of a leaf, for iterating. */
const NO_CHILDREN: ReadonlyMap<string, Node> = new Map();

export class RetainedStore {
  private readonly root: Node = newNode();
  private count = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /**
   * Stores or replaces; an empty payload deletes [MQTT-3.3.1-10] (and is not stored
   * [MQTT-3.3.1-11]). Returns false when the store is full and the topic is new.
   */
  set(msg: AppMessage): boolean {
    const levels = msg.topic.split('/');
    if (msg.payload.length === 0) {
      this.delete(levels);
      return true;
    }
    let node = this.root;
    for (const l of levels) {
      let next = node.children?.get(l);
      if (!next) {
        if (this.count >= this.capacity && !this.has(levels)) return false;
        next = newNode();
        (node.children ??= new Map()).set(l, next);
      }
      node = next;
    }
    if (!node.msg) {
      if (this.count >= this.capacity) return false;
      this.count++;
    }
    node.msg = msg;
    return true;
  }

  private has(levels: string[]): boolean {
    let node: Node | undefined = this.root;
    for (const l of levels) if (!(node = node.children?.get(l))) return false;
    return node.msg !== undefined;
  }

  private delete(levels: string[]): void {
    const path: Node[] = [this.root];
    let node = this.root;
    for (const l of levels) {
      const next = node.children?.get(l);
      if (!next) return;
      path.push(next);
      node = next;
    }
    if (!node.msg) return;
    node.msg = undefined;
    this.count--;
    // Prune empty branches so deleted topics cost no memory.
    for (let i = levels.length; i > 0; i--) {
      const n = path[i]!;
      if (n.msg || (n.children !== null && n.children.size > 0)) break;
      const parent = path[i - 1]!;
      parent.children!.delete(levels[i - 1]!);
      if (parent.children!.size === 0) parent.children = null;
    }
  }

  /** Every retained message whose topic matches the filter, with the `$` rule [MQTT-4.7.2-1]. */
  match(filter: string, now = Date.now()): AppMessage[] {
    const out: AppMessage[] = [];
    const levels = filter.split('/');
    const walk = (node: Node, i: number): void => {
      if (i === levels.length) {
        if (node.msg) out.push(node.msg);
        return;
      }
      const l = levels[i]!;
      if (l === '#') {
        collect(node, i === 0);
        return;
      }
      if (l === '+') {
        for (const [name, child] of node.children ?? NO_CHILDREN) if (!(i === 0 && name.startsWith('$'))) walk(child, i + 1);
        return;
      }
      const child = node.children?.get(l);
      if (child) walk(child, i + 1);
    };
    // '#' matches the parent level too (`a/#` matches `a`) [MQTT-4.7.1-2].
    const collect = (node: Node, top: boolean): void => {
      if (node.msg && !top) out.push(node.msg);
      for (const [name, child] of node.children ?? NO_CHILDREN) if (!(top && name.startsWith('$'))) collect(child, false);
    };
    walk(this.root, 0);
    // Expired retained messages are not delivered [MQTT-3.3.2-5].
    return out.filter((m) => m.props?.expiresAt === undefined || m.props.expiresAt > now);
  }
}
