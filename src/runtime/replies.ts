/**
 * Request/reply bookkeeping between actors: a request gets an id, the asker waits for
 * `n` replies carrying that id (one per thread asked), then `done` runs once with what
 * arrived. With a deadline, `done` also runs when it passes, with the replies so far: a
 * thread that is restarting must not hang the asker.
 */
interface Open<T> {
  waiting: number;
  got: T[];
  done: (got: T[]) => void;
  timer?: NodeJS.Timeout;
}

export class Replies<T> {
  private seq = 0;
  private readonly open = new Map<number, Open<T>>();

  /** Starts waiting for `n` replies; `timeoutMs` undefined = no deadline. Returns the request id. */
  expect(n: number, done: (got: T[]) => void, timeoutMs?: number): number {
    const id = ++this.seq;
    const w: Open<T> = { waiting: n, got: [], done };
    this.open.set(id, w);
    if (n <= 0) this.finish(id);
    else if (timeoutMs !== undefined) w.timer = setTimeout(() => this.finish(id), timeoutMs);
    return id;
  }

  /** One reply; replies to unknown (finished, timed out) requests are ignored. */
  reply(id: number, value: T): void {
    const w = this.open.get(id);
    if (!w) return;
    w.got.push(value);
    if (--w.waiting === 0) this.finish(id);
  }

  close(): void {
    for (const w of this.open.values()) clearTimeout(w.timer);
    this.open.clear();
  }

  private finish(id: number): void {
    const w = this.open.get(id);
    if (!w) return;
    clearTimeout(w.timer);
    this.open.delete(id);
    w.done(w.got);
  }
}
