/** The admin API's operations on the sessions of one shard (answered with `adminShardReply`). */
import type { AdminShardOp } from '../protocol/messages.js';
import { RC } from '../mqtt/reason-codes.js';
import { sessionDetail, sessionSummary, type SessionSummary } from './session-view.js';
import type { ShardCore } from './shard-core.js';

export function adminOp(core: ShardCore, reqId: number, op: AdminShardOp): void {
  const reply = (status: number, body: unknown): void => core.toCoordinator({ t: 'adminShardReply', reqId, shard: core.index, status, body });
  if (op.op === 'list') {
    const out: SessionSummary[] = [];
    for (const s of core.sessions.values()) if (op.uid === undefined || s.uid === op.uid) out.push(sessionSummary(s));
    return reply(200, out);
  }
  const s = core.sessions.get(op.clientId);
  if (!s) return reply(404, { error: `no session for client id "${op.clientId}"` });
  switch (op.op) {
    case 'get':
      return reply(200, sessionDetail(s));
    case 'kick': {
      const kicked = s.binding !== null;
      if (s.binding) {
        core.toGateway(s.binding.gw, { t: 'kick', connId: s.binding.connId, clientId: s.clientId, reason: RC.ADMINISTRATIVE_ACTION, message: 'disconnected by an administrator' });
        // Closed by the server without DISCONNECT: like any lost connection, the will goes out.
        core.detached(s, true);
      }
      if (op.discard && core.sessions.get(s.clientId) === s) core.destroy(s);
      return reply(200, { kicked, discarded: !core.sessions.has(op.clientId) });
    }
    case 'sub': {
      const existed = s.subs.has(op.filter);
      if (!existed && s.subs.size >= core.maxSubscriptionsPerClient) return reply(409, { error: `client "${s.clientId}" is at its subscription limit` });
      if (core.addSub(s, op.filter, { qos: op.qos, noLocal: false, retainAsPublished: false })) core.routeAdd([op.filter]);
      s.presub.delete(op.filter);
      // Answer once every gateway routes the filter here, like a SUBACK.
      return core.afterRoutes(() => reply(200, { filter: op.filter, qos: op.qos }));
    }
    case 'unsub': {
      const removed = s.subs.delete(op.filter);
      s.presub.delete(op.filter);
      if (removed && core.removeSub(s.clientId, op.filter)) core.routeDel([op.filter]);
      return reply(200, { removed });
    }
  }
}
