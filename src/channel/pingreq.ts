/** PINGREQ: answer PINGRESP [MQTT-3.12.4-1]; the read itself already reset the keepalive timer. */
import type { IPingreqPacket } from 'mqtt-packet';
import type { Handler } from './types.js';

export const handlePingreq: Handler<IPingreqPacket> = () => [{ e: 'send', packet: { cmd: 'pingresp' } }];
