/**
 * Which thread hosts which actor. `gateways: 0` / `shards: 0` put that role's single actor
 * on the main thread, so `0 + 0` runs the whole broker in one thread (tests, small
 * deployments) with the same actor code as a multi-thread node.
 */
import { COORDINATOR } from '../protocol/messages.js';
import type { Placement } from './system.js';

export interface Topology {
  /** Gateway threads (0 = the gateway actor runs on main). */
  gatewayThreads: number;
  shardThreads: number;
}

export const MAIN = 'main';

export function gatewayCount(t: Topology): number {
  return Math.max(1, t.gatewayThreads);
}

export function shardCount(t: Topology): number {
  return Math.max(1, t.shardThreads);
}

export function gatewayThread(t: Topology, i: number): string {
  return t.gatewayThreads === 0 ? MAIN : `gw${i}`;
}

export function shardThread(t: Topology, i: number): string {
  return t.shardThreads === 0 ? MAIN : `shard${i}`;
}

/** Every thread name of the node, main first. */
export function threadNames(t: Topology): string[] {
  const names = [MAIN];
  for (let i = 0; i < t.gatewayThreads; i++) names.push(gatewayThread(t, i));
  for (let i = 0; i < t.shardThreads; i++) names.push(shardThread(t, i));
  return names;
}

export function placementOf(t: Topology): Placement {
  return (actor: string) => {
    if (actor === COORDINATOR) return MAIN;
    const [role, idx] = actor.split(':');
    const i = Number(idx);
    if (role === 'gateway') return gatewayThread(t, i);
    if (role === 'shard') return shardThread(t, i);
    return MAIN;
  };
}
