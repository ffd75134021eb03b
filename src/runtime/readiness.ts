/**
 * The node's readiness cell (/readyz): one Int32 in shared memory holding the index of a
 * state of READINESS_STATES (src/protocol/control.ts). The supervisor writes it as the
 * broker starts, replaces a crashed thread and stops; every gateway thread reads it.
 */
import { READINESS_STATES, type ReadinessState } from '../protocol/control.js';

/** A new cell, in state `starting` (index 0). */
export function createReadinessCell(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

export function setReadiness(cell: Int32Array, state: ReadinessState): void {
  Atomics.store(cell, 0, READINESS_STATES.indexOf(state));
}

export function readReadiness(cell: Int32Array): ReadinessState {
  return READINESS_STATES[Atomics.load(cell, 0)] ?? 'starting';
}
