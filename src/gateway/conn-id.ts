/**
 * Connection ids are unique per node and name their gateway: id = counter * 64 + gateway.
 * So any actor can answer a connection without a lookup table (at most 64 gateways).
 */
export const MAX_GATEWAYS = 64;

export function makeConnId(counter: number, gateway: number): number {
  return smallInt(counter * MAX_GATEWAYS + gateway);
}

/**
 * The same number, as a small integer (a V8 "Smi") when it is one: arithmetic on a double
 * (GENERATION_SPAN is one) gives a boxed number even when the result is integral, and a
 * connection id is kept in several places per connection (the gateway's record and map,
 * the channel state, the session's binding), a 16-byte box each. `x | 0` is exact below
 * 2^30.
 */
export function smallInt(x: number): number {
  return x >= 0 && x < 0x40000000 ? x | 0 : x;
}

/**
 * Every gateway restart is a new generation whose counters start above the previous
 * generation's ids, so a shard can tell a dead generation's connections from new ones
 * (`gatewayDown.before`). 2^36 connections per generation, 2^11 generations within 2^53.
 */
export const GENERATION_SPAN = 2 ** 36;

export function firstConnId(generation: number, gateway: number): number {
  return makeConnId(generation * GENERATION_SPAN, gateway);
}

export function gatewayOf(connId: number): number {
  return connId % MAX_GATEWAYS;
}
