/** What the admin API shows of a session (plain JSON; the shard answers with it). */
import type { Session } from './session.js';

export interface SessionSummary {
  clientId: string;
  uid?: string;
  username?: string;
  online: boolean;
  protocolVersion: number;
  subscriptions: number;
  queued: number;
  inflight: number;
  /** Seconds the session outlives its connection (4294967295 = never expires). */
  expiry: number;
  /** A holding session keeping messages for a directory user who never connected. */
  hold?: true;
}

export function sessionSummary(s: Session): SessionSummary {
  const out: SessionSummary = {
    clientId: s.clientId,
    online: s.binding !== null,
    protocolVersion: s.protocolVersion,
    subscriptions: s.subs.size,
    queued: s.queuedCount,
    inflight: s.inflightCount,
    expiry: s.expiry,
  };
  if (s.uid !== undefined) out.uid = s.uid;
  if (s.username !== undefined) out.username = s.username;
  if (s.hold) out.hold = true;
  return out;
}

export function sessionDetail(s: Session): Omit<SessionSummary, 'subscriptions'> & {
  subscriptions: Array<{ filter: string; qos: number; presubscribed: boolean }>;
} {
  return {
    ...sessionSummary(s),
    subscriptions: [...s.subs].map(([filter, o]) => ({ filter, qos: o.qos, presubscribed: s.presub.has(filter) })),
  };
}
