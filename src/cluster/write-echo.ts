/**
 * Which watched KV values a node should apply, when it writes the same keys itself.
 *
 * A node applies its own edit at once and writes it to the bucket; the watch later brings
 * that value back (the echo), among the other nodes' values, in the stream's order. The
 * stream's order is the truth every node converges to, so:
 *
 * - while a write of ours to a key is still on its way, any value of that key arriving is
 *   older than ours in the stream (ours comes after it): skip it, ours wins;
 * - when our last pending write comes back, apply it if our state drifted meanwhile;
 * - with nothing pending, apply what arrives.
 *
 * Values carry their writer (`by`) so an echo is recognised. Pure bookkeeping.
 */
export class WriteEcho {
  private readonly pending = new Map<string, number>();

  constructor(readonly self: string) {}

  /** We are writing `key`. */
  wrote(key: string): void {
    this.pending.set(key, (this.pending.get(key) ?? 0) + 1);
  }

  /** Our write of `key` failed (it will not come back). Returns true when none of ours is pending any more. */
  failed(key: string): boolean {
    return this.settle(key);
  }

  /** A value of `key` written by `by` arrived: should it be applied? */
  arrived(key: string, by: string | undefined): boolean {
    if (!this.pending.has(key)) return true;
    if (by !== this.self) return false; // ours comes later in the stream
    return this.settle(key);
  }

  pendingFor(key: string): boolean {
    return this.pending.has(key);
  }

  private settle(key: string): boolean {
    const n = (this.pending.get(key) ?? 0) - 1;
    if (n > 0) {
      this.pending.set(key, n);
      return false;
    }
    this.pending.delete(key);
    return true;
  }
}
