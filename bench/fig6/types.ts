/** Shared types of the figure-6 traffic benchmark. */

/** Bytes in each direction: up = client -> server, down = server -> client (both clients summed). */
export interface Bytes {
  up: number;
  down: number;
}

export type Phase = 'setup' | 'messages' | 'teardown';
export const PHASES: readonly Phase[] = ['setup', 'messages', 'teardown'];

/** IP-level view of a phase from tshark (headers included). */
export interface WireBytes {
  packets: number;
  /** Sum of IP total length (IP header + TCP/UDP header + payload); no link-layer header. */
  ipBytes: number;
  /** Sum of transport payload bytes as tshark saw them (cross-check of the socket counters). */
  payloadBytes: number;
}

export interface RunResult {
  variant: string;
  n: number;
  /** Payload bytes per phase: setup (connect + login of both clients), messages, teardown. */
  bytes: Record<Phase, Bytes>;
  /** setup + messages + teardown */
  total: Bytes;
  /** Messages the receiver got (must equal n). */
  received: number;
  /** Wall-clock milliseconds of the run (informative only). */
  ms: number;
  /** Phase boundaries, ms since the epoch: start, end of setup, end of messages, end. */
  marks: [number, number, number, number];
  /** Local ports of the clients' sockets (to find the run's packets in a capture). */
  clientPorts: number[];
  /** Filled in from the tshark capture when there was one. */
  wire?: Record<Phase | 'total', WireBytes>;
}

/** Static description of a protocol variant (goes into the JSON and the README table). */
export interface VariantInfo {
  id: string;
  label: string;
  protocol: 'MQTT' | 'XMPP' | 'SIP';
  transport: 'TCP' | 'UDP';
  notes: string;
}

export interface Variant extends VariantInfo {
  /** The server's own address; TCP variants get a counting proxy in front of it. */
  server: { host: string; port: number };
  /** One run: both clients log in, alice sends n messages to bob, both log out. */
  run(n: number, ctx: RunContext): Promise<number>;
}

export interface RunContext {
  /** Where the clients connect (the counting proxy for TCP, the server for UDP). */
  host: string;
  port: number;
  /** The byte counter of this run; UDP clients count their own datagrams into it. */
  tally: Tally;
  text: string;
  pace: 'lockstep' | 'burst';
  /** The variant calls this when setup is complete; it waits for the traffic to go quiet. */
  endSetup(): Promise<void>;
  /** The variant calls this when every message has been received (and acknowledged). */
  endMessages(): Promise<void>;
  addClientPort(port: number): void;
}

/** `--trace`: print every chunk the clients send and receive (binary bytes as \xNN). */
export const trace = {
  on: false,
  write(dir: 'up' | 'down', data: Buffer): void {
    const text = [...data].map((b) => (b === 10 || b === 13 || (b >= 32 && b < 127) ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
    process.stderr.write(`${dir === 'up' ? '>>' : '<<'} ${data.length} B\n${text}\n`);
  },
};

/** Counts bytes both ways and remembers when traffic last flowed. */
export class Tally {
  up = 0;
  down = 0;
  last = Date.now();

  add(dir: 'up' | 'down', n: number, data?: Buffer): void {
    this[dir] += n;
    this.last = Date.now();
    if (trace.on && data) trace.write(dir, data);
  }

  snapshot(): Bytes {
    return { up: this.up, down: this.down };
  }

  /** Resolves once no byte has flowed for `quietMs` (or after `maxMs`). */
  async quiet(quietMs = 150, maxMs = 5000): Promise<void> {
    const start = Date.now();
    for (;;) {
      const idle = Date.now() - this.last;
      if (idle >= quietMs || Date.now() - start >= maxMs) return;
      await sleep(quietMs - idle + 5);
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function diff(a: Bytes, b: Bytes): Bytes {
  return { up: b.up - a.up, down: b.down - a.down };
}

/** Resolves when `cond()` is true; rejects after `ms` with `what` in the message. */
export async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > ms) throw new Error(`timeout after ${ms} ms waiting for ${what}`);
    await sleep(2);
  }
}
