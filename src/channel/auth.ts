/**
 * AUTH (MQTT 5.0 sections 3.15 and 4.12): enhanced authentication, between CONNECT and
 * CONNACK and as re-authentication of a live connection. The exchange itself is the
 * method's (src/auth/enhanced/); this handler keeps the protocol: whose turn it is, the
 * method on every packet, the bounds, and what success and failure look like on the wire.
 *
 *   CONNECT method=M data=d0  -> effect authExchange(start)     (connect.ts)
 *   method: continue(d1)      -> AUTH 0x18 M d1                  [MQTT-4.12.0-2]
 *   AUTH 0x18 M d2            -> effect authExchange(next)       [MQTT-4.12.0-3]
 *   method: success(user, d3) -> effect identified -> ... CONNACK 0x00 M d3 [MQTT-4.12.0-5]
 *   method: failure           -> CONNACK 0x87 + Reason String, close [MQTT-4.12.0-4]
 *
 *   connected: AUTH 0x19 M d  -> the same exchange; success: AUTH 0x00 M d3; failure:
 *   DISCONNECT 0x87 + Reason String [MQTT-4.12.1-1][MQTT-4.12.1-2]. Other packets keep
 *   flowing meanwhile under the previous authentication (section 4.12.1).
 *
 * Failures are 0x87 Not authorized, not 0x86 Bad User Name or Password: what failed is
 * the Authentication Data exchange, not the User Name / Password fields; and one code for
 * every cause (unknown user, wrong secret, a method's own refusal) tells an attacker nothing.
 */
import type { IAuthPacket, Packet } from 'mqtt-packet';
import { CONNACK_V3, RC } from '../mqtt/reason-codes.js';
import { refuse } from './connect.js';
import { reasonName } from './problem-info.js';
import { propertyError } from './properties.js';
import { protocolError, type ChannelEnv, type ChannelState, type Effect, type EnhancedAuthState, type Handler } from './types.js';

/** What the method answered (src/auth/enhanced/method.ts AuthStep, without its continuation). */
export type StepOutcome =
  | { kind: 'continue'; data?: Buffer }
  | { kind: 'success'; identity: string; data?: Buffer }
  | { kind: 'failure'; reason: string; detail?: string };

const DEFAULT_MAX_STEPS = 10;

/** A protocol violation: before CONNACK a CONNACK 0x82 (section 4.13), after it a DISCONNECT 0x82. */
function violation(st: ChannelState, why: string, text: string): Effect[] {
  if (st.phase === 'auth') return refuse(st, RC.PROTOCOL_ERROR, CONNACK_V3.NOT_AUTHORIZED, why, `protocol_errors_total{reason="${why}"}`, `${reasonName(RC.PROTOCOL_ERROR)}: ${text}`);
  return protocolError(st, RC.PROTOCOL_ERROR, why, `${reasonName(RC.PROTOCOL_ERROR)}: ${text}`);
}

/** The exchange failed: CONNACK 0x87 and the close [MQTT-4.12.0-4], or DISCONNECT 0x87 on a live connection [MQTT-4.12.1-2]. Counted and logged. */
function failed(st: ChannelState, en: EnhancedAuthState, why: string, text: string, detail?: string): Effect[] {
  const reauth = st.phase !== 'auth';
  const reason = `${reauth ? 'reauth' : 'enhanced'}_${why}`;
  const counter = `auth_failures_total{reason="${reason}"}`;
  const log: Effect = { e: 'log', msg: 'enhanced authentication failed', data: { clientId: st.clientId, username: st.username, method: en.method, reauth, why, ...(detail !== undefined ? { detail } : {}) } };
  en.turn = undefined;
  const full = `${reasonName(RC.NOT_AUTHORIZED)}: ${text}`;
  if (!reauth) return [log, ...refuse(st, RC.NOT_AUTHORIZED, CONNACK_V3.NOT_AUTHORIZED, reason, counter, full)];
  return [log, { e: 'close', reason: RC.NOT_AUTHORIZED, why: reason, counter, text: full }];
}

/** AUTH from the client: before CONNACK (the CONNECT exchange) or on a live connection (re-authentication). */
export const handleAuth: Handler<IAuthPacket> = (st, p) => {
  // No AUTH in 3.1.1 (the parser refuses packet type 15 there already).
  if (st.version !== 5) return protocolError(st, RC.PROTOCOL_ERROR, 'auth_in_v3');
  const en = st.enhanced;
  // A client that did not name a method in CONNECT must not send AUTH [MQTT-4.12.0-7].
  if (!en) return violation(st, 'unexpected_auth', 'AUTH without enhanced authentication (no Authentication Method in CONNECT)');
  const method = p.properties?.authenticationMethod;
  // The Authentication Method is required in AUTH (section 3.15.2.2.2), and is the CONNECT's [MQTT-4.12.0-5][MQTT-4.12.1-1].
  if (method === undefined) return violation(st, 'auth_without_method', 'AUTH without an Authentication Method');
  if (method !== en.method) return violation(st, 'auth_method_changed', 'AUTH with another Authentication Method than the CONNECT');
  const data = p.properties?.authenticationData;
  switch (p.reasonCode) {
    case RC.CONTINUE_AUTHENTICATION:
      // Only as the answer to the server's AUTH 0x18 [MQTT-4.12.0-3].
      if (en.turn !== 'client') return violation(st, 'unexpected_auth_continue', 'AUTH 0x18 without a challenge to answer');
      en.turn = 'server';
      return [{ e: 'authExchange', method, data, start: false }];
    case RC.RE_AUTHENTICATE:
      // After CONNACK only [MQTT-4.12.1-1]; one exchange at a time.
      if (st.phase === 'auth') return violation(st, 'reauth_before_connack', 'AUTH 0x19 (Re-authenticate) before CONNACK');
      if (en.turn !== undefined) return violation(st, 'reauth_in_progress', 'AUTH 0x19 while a re-authentication is under way');
      en.reauth = true;
      en.steps = 0;
      en.turn = 'server';
      return [{ e: 'authExchange', method, data, start: true }];
    default:
      // 0x00 Success is the server's to send (section 3.15.2.1).
      return violation(st, 'unexpected_auth_reason', `AUTH with reason code 0x${(p.reasonCode ?? 0).toString(16).padStart(2, '0')} from a client`);
  }
};

/**
 * A packet while the CONNECT exchange runs (phase `auth` with a method): until CONNACK the
 * client may send only AUTH or DISCONNECT [MQTT-3.1.2-30].
 */
export function duringConnectExchange(st: ChannelState, p: Packet, env: ChannelEnv): Effect[] {
  const bad = propertyError((p as { properties?: object }).properties);
  if (bad) return refuse(st, bad.reason, CONNACK_V3.NOT_AUTHORIZED, bad.why, `protocol_errors_total{reason="${bad.why}"}`);
  if (p.cmd === 'auth') return handleAuth(st, p, env);
  if (p.cmd === 'disconnect') {
    // The client gives up: no session was opened, so there is no will and no shard to tell.
    st.phase = 'closed';
    return [{ e: 'close', why: 'client_disconnect_during_auth' }];
  }
  return violation(st, 'packet_during_auth', `${p.cmd.toUpperCase()} before CONNACK while authenticating (only AUTH or DISCONNECT)`);
}

/** The method answered the data last handed to it (effect authExchange). */
export function authStep(st: ChannelState, outcome: StepOutcome, env: ChannelEnv): Effect[] {
  const en = st.enhanced;
  // The connection ended, or failed, meanwhile: nothing to answer.
  if (!en || en.turn !== 'server' || (st.phase !== 'auth' && st.phase !== 'connected')) return [];
  const maxSteps = env.enhancedAuth?.maxSteps ?? DEFAULT_MAX_STEPS;
  switch (outcome.kind) {
    case 'continue': {
      if (en.steps >= maxSteps) return failed(st, en, 'too_many_steps', `authentication did not conclude within ${maxSteps} steps`);
      en.steps++;
      en.turn = 'client';
      // 0x18 with the method [MQTT-4.12.0-2][MQTT-4.12.0-5].
      const properties: IAuthPacket['properties'] = { authenticationMethod: en.method };
      if (outcome.data !== undefined) properties.authenticationData = outcome.data;
      return [{ e: 'send', packet: { cmd: 'auth', reasonCode: RC.CONTINUE_AUTHENTICATION, properties } }];
    }
    case 'failure':
      return failed(st, en, 'failed', outcome.reason, outcome.detail);
    case 'success': {
      if (st.phase === 'auth') {
        // One connection, one identity: a User Name in CONNECT must be the one authenticated.
        if (st.username !== undefined && st.username !== outcome.identity) return failed(st, en, 'username_mismatch', 'the User Name is not the authenticated user');
        en.turn = undefined;
        st.username = outcome.identity;
        en.finalData = outcome.data; // sent in CONNACK (session-ready.ts)
        return [{ e: 'identified', user: outcome.identity }];
      }
      // The session, the ACL context, the IM identity and presence belong to the user of the
      // CONNECT: re-authentication may only prove that user again.
      if (outcome.identity !== st.username) return failed(st, en, 'other_user', 'the re-authenticated user is not the user of this connection', `authenticated as ${JSON.stringify(outcome.identity)}`);
      en.turn = undefined;
      en.reauth = false;
      const properties: IAuthPacket['properties'] = { authenticationMethod: en.method };
      if (outcome.data !== undefined) properties.authenticationData = outcome.data;
      return [{ e: 'send', packet: { cmd: 'auth', reasonCode: RC.SUCCESS, properties } }];
    }
  }
}

/** The method failed with an error (a bug or an outage in it): a failure like any other, logged by the gateway. */
export const methodError = (st: ChannelState, env: ChannelEnv): Effect[] => authStep(st, { kind: 'failure', reason: 'authentication failed', detail: 'the method failed with an error' }, env);

/** A re-authentication that did not conclude within auth.enhanced.reauthTimeout. */
export function reauthExpired(st: ChannelState): Effect[] {
  const en = st.enhanced;
  if (!en?.reauth || en.turn === undefined || st.phase !== 'connected') return [];
  return failed(st, en, 'timeout', 're-authentication did not conclude in time');
}
