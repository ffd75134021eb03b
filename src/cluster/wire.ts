/**
 * What one node sends another over NATS: an application message, with the protocol
 * version and the sending node. Plain msgpack (no shared structure table: every NATS
 * message must decode on its own, on any node, in any order).
 */
import { pack, unpack } from 'msgpackr';
import { PROTOCOL_VERSION, type AppMessage } from '../protocol/messages.js';

export interface ClusterEnvelope {
  v: number;
  /** The sending node (cluster.node). */
  from: string;
  msg: AppMessage;
}

export function encodeEnvelope(from: string, msg: AppMessage): Uint8Array {
  // originConn names a connection of the sending node: meaningless (and harmful: flow
  // control would pause a stranger) anywhere else.
  return pack({ v: PROTOCOL_VERSION, from, msg: portable(msg) } satisfies ClusterEnvelope);
}

export class WireError extends Error {}

/** Decodes and checks an envelope; throws WireError on anything a node must not route. */
export function decodeEnvelope(data: Uint8Array): ClusterEnvelope {
  let e: Partial<ClusterEnvelope>;
  try {
    e = unpack(data) as Partial<ClusterEnvelope>;
  } catch (err) {
    throw new WireError(`undecodable message: ${(err as Error).message}`);
  }
  if (e === null || typeof e !== 'object') throw new WireError('not an envelope');
  if (e.v !== PROTOCOL_VERSION) throw new WireError(`protocol version ${String(e.v)}, this node speaks ${PROTOCOL_VERSION}`);
  checkMessage(e.msg);
  return e as ClusterEnvelope;
}

/** Throws WireError unless `m` has what every node needs to route an application message. */
export function checkMessage(m: unknown): asserts m is AppMessage {
  const a = m as Partial<AppMessage> | undefined;
  if (!a || typeof a.topic !== 'string' || !(a.payload instanceof Uint8Array) || ![0, 1, 2].includes(a.qos!) || typeof a.retain !== 'boolean')
    throw new WireError('malformed message');
}

/** A message as another node may see it: without the id of the local publisher's connection. */
export function portable(msg: AppMessage): AppMessage {
  const { originConn: _local, ...rest } = msg;
  return rest;
}
