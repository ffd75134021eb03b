/**
 * The part of NATS a node uses, behind an interface so the cluster actor can be tested
 * with an in-memory bus: subject subscriptions, publish, and flush (a round trip that
 * proves the server has seen everything sent so far, subscriptions included).
 */
export interface BusSubscription {
  unsubscribe(): void;
}

export interface Bus {
  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string) => void): BusSubscription;
  publish(subject: string, data: Uint8Array): void;
  /** Resolves once the server processed everything sent before; rejects on timeout or close. */
  flush(): Promise<void>;
  /** The largest message the server takes (bytes), when known. */
  readonly maxPayload?: number;
  /** Sends what is buffered, then closes. */
  close(): Promise<void>;
}
