/**
 * Control messages between the supervisor and a worker thread over the worker's
 * parentPort (actor traffic uses the PortLinks). Declared here with the thread protocol.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Config } from '../config/schema.js';
import type { Topology } from '../runtime/topology.js';

export interface LinkSpec {
  thread: string;
  port: MessagePort;
  counters: Int32Array;
  side: 0 | 1;
}

export interface WorkerInit {
  role: 'gateway' | 'shard';
  index: number;
  thread: string;
  config: Config;
  topology: Topology;
  links: LinkSpec[];
  /** Gateways: node-wide connection counter. */
  connCounter: Int32Array;
  /** Gateways: the node's readiness cell (READINESS_STATES), written by the supervisor only. */
  readiness: Int32Array;
  /** Gateways: how many times the gateway group was restarted (connection id generation). */
  generation?: number;
  /** Gateways other than the first: the TCP and TLS listening descriptors and the bound ports. */
  tcpFd?: number;
  tcpPort?: number;
  wsPort?: number;
  tlsFd?: number;
  tlsPort?: number;
  wssPort?: number;
}

/**
 * Node readiness (/readyz), shared with every gateway thread as one Int32 on a
 * SharedArrayBuffer (WorkerInit.readiness) holding the index of one of these states: the
 * supervisor is its only writer, a gateway reads it for each /readyz (one Atomics.load, no
 * message, so a probe is answered at once however busy the coordinator is). Only `ready`
 * answers 200. `restarting`: a crashed thread is being replaced (a shard reloading its
 * sessions, or the gateways reopening the listeners). src/runtime/readiness.ts reads and
 * writes it.
 */
export const READINESS_STATES = ['starting', 'ready', 'restarting', 'stopping'] as const;
export type ReadinessState = (typeof READINESS_STATES)[number];

export type ToWorker =
  | { t: 'link'; link: LinkSpec }
  | { t: 'unlink'; thread: string }
  | { t: 'stop' }
  | { t: 'crash' }
  /**
   * A message for an actor of that thread, on the control channel: ordered with `link`,
   * so the news that a peer thread died always arrives before the link to its successor
   * (on the actor links the two could cross, and a publish could reach the new thread
   * before the gateway knew the old one lost the publishes before it).
   */
  | { t: 'tell'; to: string; msg: unknown }
  /** Gateways: new TLS handshakes use the certificate files as they are now (SIGHUP). */
  | { t: 'reloadTls' };

export type FromWorker =
  | { t: 'ready' }
  | { t: 'listening'; tcpPort?: number; tcpFd?: number; wsPort?: number; tlsPort?: number; tlsFd?: number; wssPort?: number }
  /** Answer to reloadTls; `error` when the files could not be used (the old certificate stays). */
  | { t: 'tlsReloaded'; error?: string }
  | { t: 'stopped' };
