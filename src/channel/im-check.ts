/**
 * The IM layer's check of a PUBLISH on an IM topic (`/{ns}/im/...`, IM-PROTOCOL.md
 * section 3): the default IM ACL, the payload format, and the sender's identity.
 * Pure, like every channel handler; the publish handler turns a refusal into the
 * reason code (v5) or a counted drop (3.1.1).
 */
import { decodeImPayload, encodeImPayload, ImPayloadError, type ImMessage } from '../im/payload.js';
import { imCanPublish } from '../im/im-acl.js';
import type { ImTopic } from '../im/topics.js';
import { RC } from '../mqtt/reason-codes.js';
import type { ChannelEnv, ChannelState } from './types.js';

export type ImCheck =
  | { ok: true; payload: Uint8Array; counter?: string }
  | { ok: false; rc: number; why: string; counter: string; detail: string };

/** im.superusers names users: by username, or by uid for a JWT login without one. */
export function isImSuperuser(st: ChannelState, env: ChannelEnv): boolean {
  const who = st.username ?? st.im?.uid;
  return who !== undefined && env.im !== null && env.im.superusers.has(who);
}

export function checkImPublish(st: ChannelState, env: ChannelEnv, t: ImTopic, payload: Uint8Array): ImCheck {
  const im = env.im!;
  const superuser = isImSuperuser(st, env);
  if (!superuser && !imCanPublish(st.im, t)) {
    return {
      ok: false,
      rc: RC.NOT_AUTHORIZED,
      why: 'im_acl',
      counter: 'publish_denied_total',
      detail: t.kind === 'p' ? 'presence topics are maintained by the broker' : `not allowed to publish to ${t.kind === 'other' ? 'this IM topic' : `namespace ${t.ns}`}`,
    };
  }
  // Presence is broker-made JSON, not an IM payload; only superusers get here with it.
  if (t.kind === 'p') return { ok: true, payload };
  let m: ImMessage;
  try {
    m = decodeImPayload(payload);
  } catch (err) {
    if (!(err instanceof ImPayloadError)) throw err;
    // 0x99 Payload format invalid: the spec's answer to an IM payload that does not parse.
    return { ok: false, rc: RC.PAYLOAD_FORMAT_INVALID, why: 'im_payload_invalid', counter: `im_payload_invalid_total{code="${err.code}"}`, detail: err.message };
  }
  const uid = st.im?.uid;
  if (superuser || m.sender === uid) return { ok: true, payload };
  if (im.senderCheck === 'rewrite' && uid !== undefined) {
    // The broker knows who published: it writes that identity into the message.
    return { ok: true, payload: encodeImPayload({ ...m, sender: uid }), counter: 'im_sender_rewritten_total' };
  }
  // The payload is well formed, but the publisher may not speak as that sender: 0x87.
  return { ok: false, rc: RC.NOT_AUTHORIZED, why: 'im_sender_mismatch', counter: 'im_sender_mismatch_total', detail: `Sender "${m.sender}" is not the authenticated uid` };
}
