/**
 * How the owner of a shared subscription picks the one member that gets a message
 * (sharedSubscriptions.strategy). The owner passes the members that may take it (online
 * ones when there are any, see shared-groups.ts), in the order they joined:
 *
 *  - round_robin (default): in turn, so a steady group shares the load evenly;
 *  - random: uniformly at random;
 *  - sticky: the same member for as long as it stays a candidate (online), then another
 *    one, which is kept in turn;
 *  - hash: FNV-1a of the publisher's client id (of the topic for broker-made messages,
 *    which have none) modulo the candidates: every message of one publisher goes to the
 *    same member, so it keeps their order, as long as the candidates do not change.
 *
 * The spec leaves the choice to the server [MQTT 5.0 section 4.8.2].
 */
import type { AppMessage } from '../protocol/messages.js';
import type { SharedStrategy } from '../config/schema.js';
import { shardOf } from '../runtime/sharding.js';

export type { SharedStrategy } from '../config/schema.js';

/** What a group remembers between picks. */
export interface PickState {
  /** round_robin position (also where sticky picks its next member). */
  next: number;
  /** sticky: the client id of the current member. */
  sticky?: string;
}

export function newPickState(): PickState {
  return { next: 0 };
}

/** One of `candidates` (non-empty), by `strategy`; `random` is injectable for tests. */
export function pickMember<M extends { clientId: string }>(
  strategy: SharedStrategy,
  candidates: readonly M[],
  state: PickState,
  msg: AppMessage,
  random: () => number = Math.random,
): M {
  const n = candidates.length;
  switch (strategy) {
    case 'random':
      return candidates[Math.min(n - 1, Math.floor(random() * n))]!;
    case 'hash':
      return candidates[shardOf(msg.origin ?? msg.topic, n)]!;
    case 'sticky': {
      if (state.sticky !== undefined) for (const c of candidates) if (c.clientId === state.sticky) return c;
      const c = inTurn(candidates, state);
      state.sticky = c.clientId;
      return c;
    }
    case 'round_robin':
      return inTurn(candidates, state);
  }
}

function inTurn<M>(candidates: readonly M[], state: PickState): M {
  const i = state.next % candidates.length;
  // Kept small: the position only matters modulo the number of candidates.
  state.next = (i + 1) % 0x3fffffff;
  return candidates[i]!;
}
