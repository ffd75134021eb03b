/**
 * MQTT 5 enhanced authentication (section 4.12): the interface of an authentication
 * method, built in (SCRAM-SHA-256, scram-method.ts) or loaded from a module named in
 * `auth.enhanced.methods` (registry.ts; docs/authentication.md).
 *
 * A method sees only Authentication Data and answers with steps; the broker does the
 * MQTT side (src/channel/auth.ts): AUTH 0x18 for `continue`, CONNACK 0x00 or AUTH 0x00
 * (re-authentication) for `success`, CONNACK / DISCONNECT 0x87 for `failure`, the
 * Authentication Method on every packet [MQTT-4.12.0-5], bounds on steps and time.
 *
 * An exchange is a chain: `start` answers the CONNECT's (or the re-authenticating AUTH
 * 0x19's) data; a `continue` step carries the server data to send and `next`, which takes
 * the client's answer (its AUTH 0x18's data) and gives the following step. Each exchange
 * has its own chain, so a method keeps per-exchange state in closures, never globally.
 * A step may be returned directly or as a promise; a thrown error or a rejected promise
 * is a failure (logged).
 */

/** What the broker knows about the connection when an exchange starts. */
export interface AuthContext {
  readonly clientId: string;
  /** The CONNECT's User Name, if any: a successful identity must equal it (the broker checks). */
  readonly username?: string;
  /** The CONNECT's Password, if any: not checked by the broker when a method is used. */
  readonly password?: Buffer;
  /** 'connect': between CONNECT and CONNACK; 'reauth': a live connection's AUTH 0x19 [MQTT-4.12.1-1]. */
  readonly phase: 'connect' | 'reauth';
  /** reauth: the identity the connection has (the username it authenticated as). */
  readonly identity?: string;
  /** Address of the peer, for logs. */
  readonly remote?: string;
}

export type AuthStep =
  /** More data is needed: send `data` (AUTH 0x18) and hand the client's answer to `next`. */
  | { readonly kind: 'continue'; readonly data?: Buffer; next(clientData: Buffer | undefined): AuthStep | Promise<AuthStep> }
  /** Authenticated as `identity` (a username, used as a password login's would be); `data` is the final server data. */
  | { readonly kind: 'success'; readonly identity: string; readonly data?: Buffer }
  /**
   * Refused. `reason` goes to the client as the Reason String, so it must not tell an
   * unknown user from a wrong secret; `detail` is for the broker's log only.
   */
  | { readonly kind: 'failure'; readonly reason: string; readonly detail?: string };

export interface AuthMethod {
  /** The Authentication Method name clients send (case-sensitive, e.g. "SCRAM-SHA-256"). */
  readonly name: string;
  /** `data`: the Authentication Data of the CONNECT or of the AUTH 0x19 (absent: none). */
  start(data: Buffer | undefined, ctx: AuthContext): AuthStep | Promise<AuthStep>;
}

/**
 * What a plug-in module exports (default export, or a named export `createAuthMethod`):
 * a factory called once per gateway thread with the `options` of its config entry.
 * The registry gives the method its configured name.
 */
export type AuthMethodFactory = (options: Readonly<Record<string, unknown>>, env: AuthMethodEnv) => Omit<AuthMethod, 'name'> | Promise<Omit<AuthMethod, 'name'>>;

export interface AuthMethodEnv {
  /** The configured name of the method. */
  readonly name: string;
  /** Structured logging into the broker's log (pino-style: an object, then a message). */
  readonly log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void; error(obj: object, msg: string): void };
}

/** The methods a gateway offers, by name. */
export type AuthMethods = ReadonlyMap<string, AuthMethod>;
