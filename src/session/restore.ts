/**
 * Rebuilds a shard's sessions from what its store kept (at start, and when the shard's
 * thread restarts after a crash). Every session comes back offline (its connection died
 * with the process or thread) and evicted: its messages stay on disk until its client
 * reconnects (`Journal.reload`), so a restart reads records, not payloads.
 *
 * A session that was online when the process died counts as offline since the restart
 * (the moment of the crash is unknown; its expiry starts again, never cut short), and as
 * its connection was lost without DISCONNECT its will is due [MQTT-3.1.2-8]. Sessions
 * whose expiry ran out while the broker was down are purged [MQTT-3.1.2-23].
 */
import type { AppMessage } from '../protocol/messages.js';
import type { OutboundRecord, ShardIndex } from '../store/types.js';
import type { ShardCore } from './shard-core.js';
import { Session } from './session.js';

export interface RestoreHooks {
  onExpired(): void;
  /** Starts the will and expiry timers of a restored session, offline for `elapsed` ms. */
  afterOffline(s: Session, elapsed: number): void;
}

export function restoreSessions(core: ShardCore, index: ShardIndex, hooks: RestoreHooks): { sessions: number; messages: number; expired: number } {
  const now = Date.now();
  const journal = core.journal;
  let expired = 0;
  let messages = 0;
  const routes: string[] = [];
  const timers: Array<[Session, number]> = [];
  for (const r of index.sessions) {
    const since = r.offlineSince ?? now;
    if (r.expiry < 0xffffffff && since + r.expiry * 1000 <= now) {
      // Expired while the broker was down: purged with its messages (their bodies are
      // compacted below, as nothing counts them).
      expired++;
      hooks.onExpired();
      const gone = new Session(r.clientId, 0);
      gone.stored = true;
      journal.drop(gone);
      continue;
    }
    const s = new Session(r.clientId, core.maxQueuedMessages);
    s.stored = true;
    s.username = r.username;
    s.uid = r.uid;
    s.ns = r.ns;
    s.protocolVersion = r.protocolVersion;
    s.expiry = r.expiry;
    s.receiveMaximum = r.receiveMaximum;
    s.qos2In = r.qos2In;
    s.hold = r.hold;
    s.will = r.will;
    s.offlineSince = since;
    for (const f of r.presub) s.presub.add(f);
    core.sessions.set(s.clientId, s);
    core.countAnonymous(s, r.username === undefined && r.uid === undefined && !r.hold);
    for (const [filter, opts] of r.subs) {
      // Written before SUBSCRIBE refused a repeated Subscription Identifier, it may be a
      // list, which no PUBLISH could carry: the first one is kept (issue 9 item 8).
      const id: unknown = opts.subId;
      if (Array.isArray(id)) {
        if (typeof id[0] === 'number') opts.subId = id[0];
        else delete opts.subId;
      }
      if (core.addSub(s, filter, opts)) routes.push(filter);
    }
    const evicted = { queued: 0, inflight: 0, tail: [] };
    for (const o of index.outbound.get(r.clientId) ?? []) {
      if (o.state !== 'pubrel') journal.countRef(o.body);
      if (o.packetId !== undefined) evicted.inflight++;
      else evicted.queued++;
    }
    s.evicted = evicted;
    messages += evicted.queued + evicted.inflight;
    timers.push([s, now - since]);
  }
  journal.compactBodies(index.bodyIds);
  core.routeAdd(routes);
  // Timers last: a will due at once is published once every session is back.
  for (const [s, elapsed] of timers) hooks.afterOffline(s, elapsed);
  return { sessions: core.sessions.size, messages, expired };
}

/**
 * Puts a session's stored stream back in memory: records without a packet id into the
 * queue, sent ones into the inflight window under their packet ids, to be resent with
 * DUP on resume [MQTT-4.4.0-1]. `overflow` gets what the queue limit no longer takes.
 */
export function rebuildStream(s: Session, outbound: readonly OutboundRecord[], bodies: Map<number, AppMessage>, overflow: (r: OutboundRecord) => void): void {
  for (const o of outbound) {
    if (o.state === 'pubrel' && o.packetId !== undefined) {
      // Delivered (PUBREC came); only the PUBREL/PUBCOMP exchange is left to finish.
      const msg: AppMessage = { topic: '', payload: new Uint8Array(0), qos: 2, retain: false };
      s.inflight.restore(o.packetId, { msg, qos: 2, retain: false, state: 'pubrel', seq: o.seq });
      continue;
    }
    const body = bodies.get(o.body);
    if (!body) continue; // a record and its body are written in one transaction: not expected
    const entry = { msg: body, qos: o.qos, retain: o.retain, subIds: o.subIds, share: o.share, seq: o.seq, body: o.body };
    if (o.packetId !== undefined) s.inflight.restore(o.packetId, { ...entry, state: 'publish' });
    else if (!s.queue.push(entry)) overflow(o);
  }
}
