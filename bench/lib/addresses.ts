/**
 * Source addresses for many client connections to one broker port.
 *
 * A TCP connection is identified by (source address, source port, destination address,
 * destination port). Towards one broker port from one source address the kernel has only
 * the ephemeral port range (net.ipv4.ip_local_port_range, 28,232 ports by default) to
 * choose from, so more connections than that need more source addresses. Every address in
 * 127.0.0.0/8 reaches the loopback interface on Linux, so the clients spread over
 * 127.0.0.1, 127.0.0.2, ... (net.connect's `localAddress`).
 *
 * With a single address the clients do not bind at all: connect() without bind() picks
 * ports that only need to be unique per 4-tuple, so other programs on the machine can
 * still use those port numbers towards other destinations. A bind() (localAddress) takes
 * the port away from every connect() on the machine until the socket closes.
 */
import { readFileSync } from 'node:fs';

/** Ports a single source address is asked to carry at most. */
export const PORTS_PER_ADDRESS = 25_000;

/** The kernel's ephemeral port range, [low, high] inclusive. */
export function ephemeralPortRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo !== undefined && hi !== undefined && Number.isInteger(lo) && Number.isInteger(hi) && hi >= lo) return [lo, hi];
  } catch {
    /* not Linux: fall through */
  }
  return [32768, 60999];
}

/** How many connections one source address should carry: ~25k, less if the range is small. */
export function portsPerAddress(): number {
  const [lo, hi] = ephemeralPortRange();
  return Math.max(1, Math.min(PORTS_PER_ADDRESS, Math.floor((hi - lo + 1) * 0.9)));
}

/** Source addresses needed so that no address carries more than portsPerAddress() connections. */
export function addressesNeeded(connections: number): number {
  return Math.max(1, Math.ceil(connections / portsPerAddress()));
}

/** The k-th loopback source address, k = 0 -> 127.0.0.1 (up to 127.0.0.254). */
export function loopbackAddress(k: number): string {
  if (!Number.isInteger(k) || k < 0 || k > 253) throw new Error(`loopback address index ${k} out of range 0..253`);
  return `127.0.0.${k + 1}`;
}

/**
 * The `localAddress` list for `count` addresses: empty for one address (connect without
 * bind, the kernel picks 127.0.0.1 towards a 127.0.0.1 broker), else 127.0.0.1.. upwards.
 */
export function sourceAddresses(count: number): string[] {
  if (count <= 1) return [];
  return Array.from({ length: count }, (_, k) => loopbackAddress(k));
}
