/**
 * One client connection as the gateway sees it, whatever the transport. TCP and TLS
 * (node:net, node:tls) and WebSocket with or without TLS (uWebSockets.js) all implement
 * ConnIO; the gateway gives each accepted connection a ConnSink for the bytes that arrive.
 */
export interface ConnIO {
  readonly transport: 'tcp' | 'ws' | 'tls' | 'wss';
  readonly remote: string;
  /**
   * TLS with `tls.clientCertUsername`: the subject CN of the client's verified certificate.
   * The gateway makes it the username of a CONNECT without one, and a CONNECT under that
   * username is authenticated by the certificate (no password).
   */
  readonly certUsername?: string;
  /** Writes now (the gateway already batched everything for this turn). */
  write(data: Buffer): void;
  /** Bytes accepted by write() and not yet handed to the kernel. */
  bufferedBytes(): number;
  /** Flushes what was written, then closes. Safe to call twice. */
  end(): void;
  /** Stops reading (TCP only; WebSocket reads cannot be paused and are bounded by maxPayloadLength). */
  pause(): void;
  resume(): void;
}

export interface ConnSink {
  data(chunk: Buffer): void;
  /** WebSocket only: a text frame arrived, which MQTT forbids [MQTT-6.0.0-1]. */
  textFrame(): void;
  closed(): void;
  /** The socket drained below its high-water mark (so QoS 0 messages flow again). */
  drained(): void;
}

export type Accept = (io: ConnIO) => ConnSink | null;
