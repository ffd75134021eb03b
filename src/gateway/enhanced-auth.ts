/**
 * The gateway's side of enhanced authentication: runs the steps of each connection's
 * exchange with its method (src/auth/enhanced/) and hands the answers back, as
 * StepOutcomes, for the channel (src/channel/auth.ts) to turn into packets. What a method
 * keeps between steps (its `next`) lives here, per connection, never in the channel state.
 */
import type { AuthContext, AuthMethods, AuthStep } from '../auth/enhanced/method.js';
import type { StepOutcome } from '../channel/auth.js';

interface Exchange {
  /** The continuation of the last `continue` step (absent while a step runs, or at the start). */
  next?: AuthStep & { kind: 'continue' };
  /** When the exchange started (ms): re-authentication is bounded by auth.enhanced.reauthTimeout. */
  since: number;
  /** Bumped by every step, so that an answer to an abandoned step is dropped. */
  seq: number;
}

export class EnhancedAuthExchanges {
  private readonly byConn = new WeakMap<object, Exchange>();

  constructor(private readonly methods: AuthMethods) {}

  /**
   * Hands `data` to the connection's exchange: a new one (`start`) or the one under way.
   * `done` gets the method's answer, or the error it failed with; it is not called once
   * `drop` ended the exchange.
   */
  step(conn: object, o: { method: string; data?: Buffer; start: boolean; ctx: AuthContext }, done: (r: StepOutcome | { error: unknown }) => void): void {
    let ex = this.byConn.get(conn);
    if (o.start || !ex) this.byConn.set(conn, (ex = { since: Date.now(), seq: 0 }));
    const seq = ++ex.seq;
    const cont = ex.next;
    ex.next = undefined;
    let pending: AuthStep | Promise<AuthStep>;
    try {
      if (o.start) {
        const method = this.methods.get(o.method);
        if (!method) throw new Error(`no method ${o.method}`); // connect.ts checked it is offered
        pending = method.start(o.data, o.ctx);
      } else {
        if (!cont) throw new Error('no step to continue');
        pending = cont.next(o.data);
      }
    } catch (error) {
      done({ error });
      return;
    }
    Promise.resolve(pending).then(
      (s) => {
        if (this.byConn.get(conn) !== ex || ex.seq !== seq) return;
        let out: StepOutcome;
        try {
          out = outcomeOf(s);
        } catch (error) {
          this.byConn.delete(conn);
          return done({ error });
        }
        if (s.kind === 'continue') ex.next = s;
        else this.byConn.delete(conn);
        done(out);
      },
      (error: unknown) => {
        if (this.byConn.get(conn) !== ex || ex.seq !== seq) return;
        this.byConn.delete(conn);
        done({ error });
      },
    );
  }

  /** When the connection's exchange under way started, if there is one. */
  startedAt(conn: object): number | undefined {
    return this.byConn.get(conn)?.since;
  }

  /** Ends the connection's exchange (it closed, or failed): a step still running is ignored. */
  drop(conn: object): void {
    this.byConn.delete(conn);
  }
}

/** A plug-in's answer, checked: it is code the broker does not control. Throws when unusable. */
function outcomeOf(s: AuthStep | undefined): StepOutcome {
  switch (s?.kind) {
    case 'continue':
      if (typeof s.next !== 'function') throw new Error('a continue step without next()');
      return { kind: 'continue', data: bytes(s.data) };
    case 'success':
      if (typeof s.identity !== 'string' || s.identity.length === 0) throw new Error('a success step without an identity');
      return { kind: 'success', identity: s.identity, data: bytes(s.data) };
    case 'failure':
      return { kind: 'failure', reason: typeof s.reason === 'string' && s.reason !== '' ? s.reason : 'authentication failed', detail: s.detail };
    default:
      throw new Error('the method answered no step');
  }
}

/** Binary Data on the wire: at most 65535 bytes (section 1.5.6); a method's Uint8Array is taken as is. */
function bytes(d: Buffer | Uint8Array | undefined): Buffer | undefined {
  if (d === undefined) return undefined;
  const b = Buffer.isBuffer(d) ? d : Buffer.from(d);
  if (b.length > 65535) throw new Error('Authentication Data longer than 65535 bytes');
  return b;
}
