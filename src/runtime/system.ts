/**
 * The actor system of one thread.
 *
 * An actor is `receive(msg)` over private state. A reference (`ActorRef`) looks the same
 * whether the actor lives in this thread (its message goes on this thread's run queue)
 * or in another thread (its message goes into the batch of the PortLink to that thread,
 * flushed once per event-loop turn). Placement, which thread hosts which actor name, is a
 * pure function fixed at start, so every thread computes the same answer without asking.
 *
 * Local delivery: one FIFO run queue per thread, drained in a microtask, one message at a
 * time. A message an actor sends to a local actor while handling another is appended to
 * the queue, never handled re-entrantly, so every actor sees one message at a time.
 */
import type { PortLink } from './port-link.js';

export interface Actor<M> {
  receive(msg: M): void;
}

export interface ActorRef<M> {
  readonly name: string;
  tell(msg: M): void;
}

export type Placement = (actorName: string) => string;

export class ActorSystem {
  readonly thread: string;
  private readonly placement: Placement;
  private readonly actors = new Map<string, Actor<unknown>>();
  private readonly links = new Map<string, PortLink>();
  private readonly refs = new Map<string, ActorRef<unknown>>();
  // Run queue as two parallel arrays with a moving head: no per-message allocation.
  private qActors: Actor<unknown>[] = [];
  private qMsgs: unknown[] = [];
  private qHead = 0;
  private draining = false;
  /** Messages for actors that are not (or no longer) reachable, by reason. */
  readonly undeliverable = { no_actor: 0, no_link: 0 };
  /** Messages whose receive threw (handed to onActorError, then skipped); `actor_errors_total`. */
  actorErrors = 0;
  /** Called for a message that throws inside receive; the default rethrows (crash the thread). */
  onActorError: (actor: string, err: unknown) => void = (_a, err) => {
    throw err;
  };

  constructor(thread: string, placement: Placement) {
    this.thread = thread;
    this.placement = placement;
  }

  spawn<M>(name: string, actor: Actor<M>): ActorRef<M> {
    if (this.placement(name) !== this.thread) {
      throw new Error(`actor ${name} is placed on ${this.placement(name)}, not ${this.thread}`);
    }
    this.actors.set(name, actor as Actor<unknown>);
    return this.ref<M>(name);
  }

  ref<M>(name: string): ActorRef<M> {
    let r = this.refs.get(name);
    if (!r) {
      const thread = this.placement(name);
      r =
        thread === this.thread
          ? { name, tell: (msg: unknown) => this.enqueueLocal(name, msg) }
          : { name, tell: (msg: unknown) => this.sendRemote(thread, name, msg) };
      this.refs.set(name, r);
    }
    return r as ActorRef<M>;
  }

  addLink(thread: string, link: PortLink): void {
    this.links.get(thread)?.close();
    this.links.set(thread, link);
    link.onBatch = (names, msgs) => {
      for (let i = 0; i < names.length; i++) this.enqueueLocal(names[i]!, msgs[i]);
    };
  }

  removeLink(thread: string): void {
    this.links.get(thread)?.close();
    this.links.delete(thread);
  }

  /** True when some peer thread has more undelivered records from us than its high-water mark. */
  congested(): boolean {
    for (const l of this.links.values()) if (l.congested()) return true;
    return false;
  }

  mailboxDepth(): number {
    return this.qActors.length - this.qHead;
  }

  /** Flushes every link now (used before a thread exits so nothing queued is lost). */
  flushAll(): void {
    for (const l of this.links.values()) l.flush();
  }

  close(): void {
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }

  private sendRemote(thread: string, name: string, msg: unknown): void {
    const link = this.links.get(thread);
    if (!link) {
      this.undeliverable.no_link++;
      return;
    }
    link.send(name, msg);
  }

  private enqueueLocal(name: string, msg: unknown): void {
    const actor = this.actors.get(name);
    if (!actor) {
      this.undeliverable.no_actor++;
      return;
    }
    this.qActors.push(actor);
    this.qMsgs.push(msg);
    if (!this.draining) {
      this.draining = true;
      queueMicrotask(this.drain);
    }
  }

  private readonly drain = (): void => {
    try {
      while (this.qHead < this.qActors.length) {
        const i = this.qHead++;
        const actor = this.qActors[i]!;
        const msg = this.qMsgs[i];
        this.qMsgs[i] = undefined;
        try {
          actor.receive(msg);
        } catch (err) {
          this.actorErrors++;
          this.onActorError(this.nameOf(actor), err);
        }
      }
    } finally {
      this.qActors.length = 0;
      this.qMsgs.length = 0;
      this.qHead = 0;
      this.draining = false;
    }
  };

  private nameOf(actor: Actor<unknown>): string {
    for (const [n, a] of this.actors) if (a === actor) return n;
    return '?';
  }
}
