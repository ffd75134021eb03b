/**
 * Connection ids are unique per node and name their gateway: id = counter * 64 + gateway.
 * So any actor can answer a connection without a lookup table (at most 64 gateways).
 */
export const MAX_GATEWAYS = 64;

export function makeConnId(counter: number, gateway: number): number {
  return counter * MAX_GATEWAYS + gateway;
}

export function gatewayOf(connId: number): number {
  return connId % MAX_GATEWAYS;
}
