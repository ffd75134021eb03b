/**
 * The one dispatch table: packet type -> handler. Anything but CONNECT before CONNECT
 * closes the connection [MQTT-3.1.0-1]; packets only a server sends are protocol errors.
 */
import type { Packet } from 'mqtt-packet';
import { RC } from '../mqtt/reason-codes.js';
import { handleConnect } from './connect.js';
import { duringConnectExchange, handleAuth } from './auth.js';
import { handleDisconnect } from './disconnect.js';
import { handlePingreq } from './pingreq.js';
import { handlePuback } from './puback.js';
import { handlePublish } from './publish.js';
import { handlePubrel } from './pubrel.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';
import { protocolError, type ChannelEnv, type ChannelState, type Effect } from './types.js';
import { propertyError } from './properties.js';

export function handleIn(st: ChannelState, p: Packet, env: ChannelEnv): Effect[] {
  if (p.cmd === 'connect') return handleConnect(st, p, env);
  if (st.phase === 'new') return protocolError(st, RC.PROTOCOL_ERROR, 'packet_before_connect'); // [MQTT-3.1.0-1]
  // An enhanced-authentication exchange before CONNACK: AUTH and DISCONNECT only [MQTT-3.1.2-30].
  if (st.phase === 'auth' && st.enhanced) return duringConnectExchange(st, p, env);
  if (st.phase !== 'connected') {
    // Packets that arrive while the session opens wait in the gateway (see gateway-actor).
    return protocolError(st, RC.PROTOCOL_ERROR, 'packet_while_connecting');
  }
  // A repeated or truncated property (properties.ts).
  const bad = st.version === 5 ? propertyError((p as { properties?: object }).properties) : undefined;
  if (bad) return protocolError(st, bad.reason, bad.why);
  switch (p.cmd) {
    case 'publish':
      return handlePublish(st, p, env);
    case 'puback':
    case 'pubrec':
    case 'pubcomp':
      return handlePuback(st, p, env);
    case 'pubrel':
      return handlePubrel(st, p, env);
    case 'subscribe':
      return handleSubscribe(st, p, env);
    case 'unsubscribe':
      return handleUnsubscribe(st, p, env);
    case 'pingreq':
      return handlePingreq(st, p, env);
    case 'disconnect':
      return handleDisconnect(st, p, env);
    case 'auth':
      // Re-authentication, or a Protocol Error without enhanced authentication (auth.ts).
      return handleAuth(st, p, env);
    default:
      return protocolError(st, RC.PROTOCOL_ERROR, `unexpected_${p.cmd}`);
  }
}

export { afterAuth } from './connect.js';
export { authStep, methodError, reauthExpired, type StepOutcome } from './auth.js';
export { sessionReady, sessionRefused } from './session-ready.js';
export * from './types.js';
