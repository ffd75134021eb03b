/**
 * The admin API's session operations across the cluster (docs/cluster.md "Admin API"):
 * whichever node gets the call asks every live node over NATS request/reply on
 * `{prefix}.adm` (scatter-gather: as many answers as membership counts other nodes, or
 * whatever came within the timeout), and answers with the merge.
 *
 * - list: every node's sessions, each tagged with its node, sorted by client id. A node
 *   that does not answer in time is missing from the list (logged, counted).
 * - get / kick / sub / unsub: this node first; if it has no such session (404), the
 *   other nodes, and the first that has it answers.
 *
 * A node's own request never reaches it (the NATS connection is noEcho): it asks its
 * shards directly.
 */
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { pack, unpack } from 'msgpackr';
import type { Logger } from 'pino';
import type { Metrics } from '../admin/metrics.js';
import { PROTOCOL_VERSION, type AdminShardOp } from '../protocol/messages.js';
import type { SessionSummary } from '../session/session-view.js';
import type { AdminResponse } from '../coordinator/admin-api.js';
import type { CoordinatorPort, ShardOp } from './cluster-state.js';

interface AdminAsk {
  v: number;
  from: string;
  op: AdminShardOp;
}

interface AdminAnswer {
  v: number;
  node: string;
  status: number;
  body: unknown;
}

export class ClusterAdmin {
  private readonly sub: Subscription;
  private readonly subject: string;

  constructor(
    private readonly nc: NatsConnection,
    prefix: string,
    private readonly node: string,
    private readonly port: CoordinatorPort,
    /** How many other nodes are alive (membership). */
    private readonly othersCount: () => number,
    private readonly timeoutMs: number,
    private readonly metrics: Metrics,
    private readonly log: Logger,
  ) {
    this.subject = `${prefix}.adm`;
    this.sub = nc.subscribe(this.subject, {
      callback: (err, m) => {
        if (err) return;
        let ask: AdminAsk;
        try {
          ask = unpack(m.data) as AdminAsk;
        } catch {
          this.metrics.inc('cluster_errors_total{op="decode"}');
          return;
        }
        if (ask?.v !== PROTOCOL_VERSION || !ask.op || typeof ask.op !== 'object') {
          this.metrics.inc('cluster_errors_total{op="version"}');
          return;
        }
        const answer = (status: number, body: unknown): void => {
          try {
            m.respond(pack({ v: PROTOCOL_VERSION, node: this.node, status, body } satisfies AdminAnswer));
          } catch (e) {
            // Over max_payload (a very long session list), or the connection is closing.
            this.metrics.inc('cluster_errors_total{op="publish"}');
            this.log.warn({ err: e }, 'could not answer another node\'s admin request');
          }
        };
        this.local(ask.op).then(
          (r) => answer(r.status, r.body),
          (e: unknown) => answer(500, { error: (e as Error).message }),
        );
      },
    });
  }

  private async local(op: AdminShardOp): Promise<AdminResponse> {
    if (op.op === 'list') return { status: 200, body: await this.port.localSessions(op.uid) };
    return this.port.localShardOp(op);
  }

  /** Every live node's sessions. */
  async sessions(uid: string | undefined): Promise<Array<SessionSummary & { node: string }>> {
    const [mine, theirs] = await Promise.all([
      this.port.localSessions(uid),
      this.gather(uid === undefined ? { op: 'list' } : { op: 'list', uid }, () => false),
    ]);
    const all = mine.map((s) => ({ ...s, node: this.node }));
    for (const a of theirs) if (a.status === 200 && Array.isArray(a.body)) for (const s of a.body as SessionSummary[]) all.push({ ...s, node: a.node });
    return all.sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : a.node < b.node ? -1 : 1));
  }

  /** The operation on the node that has the client id. */
  async shardOp(op: ShardOp): Promise<AdminResponse> {
    const mine = await this.port.localShardOp(op);
    if (mine.status !== 404) return mine;
    const found = await this.gather(op, (a) => a.status !== 404);
    const hit = found.find((a) => a.status !== 404);
    return hit ? { status: hit.status, body: hit.body } : mine;
  }

  /** Asks the other live nodes; resolves with the answers that came within the timeout (early once `enough` says so). */
  private async gather(op: AdminShardOp, enough: (a: AdminAnswer) => boolean): Promise<AdminAnswer[]> {
    const expected = this.othersCount();
    if (expected === 0) return [];
    const out: AdminAnswer[] = [];
    try {
      const replies = await this.nc.requestMany(this.subject, pack({ v: PROTOCOL_VERSION, from: this.node, op } satisfies AdminAsk), {
        strategy: 'count',
        maxMessages: expected,
        maxWait: this.timeoutMs,
      });
      for await (const m of replies) {
        let a: AdminAnswer;
        try {
          a = unpack(m.data) as AdminAnswer;
        } catch {
          this.metrics.inc('cluster_errors_total{op="decode"}');
          continue;
        }
        if (a?.v !== PROTOCOL_VERSION || typeof a.node !== 'string') continue;
        out.push(a);
        if (enough(a)) break;
      }
    } catch (err) {
      // No responders (the others just left) or the connection is down: what came is all.
      this.log.debug({ err }, 'admin request to the other nodes ended');
    }
    if (out.length < expected && !out.some(enough)) {
      this.metrics.inc('cluster_errors_total{op="admin_timeout"}');
      this.log.warn({ expected, answered: out.map((a) => a.node) }, 'not every node answered an admin request in time');
    }
    return out;
  }

  close(): void {
    this.sub.unsubscribe();
  }
}
