/**
 * Connection ids are unique per node and name their gateway: id = counter * 64 + gateway.
 * So any actor can answer a connection without a lookup table (at most 64 gateways).
 */
export const MAX_GATEWAYS = 64;

export function makeConnId(counter: number, gateway: number): number {
  return counter * MAX_GATEWAYS + gateway;
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
