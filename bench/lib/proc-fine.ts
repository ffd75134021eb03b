/**
 * Finer /proc readings than brokers.ts's procSample (which counts CPU in 10 ms clock ticks
 * and RSS in whole MB): the conns scenario measures pushes that last a few milliseconds
 * and memory per connection in KiB.
 */
import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of every live thread of a process, in nanoseconds: the sum of the first field
 * of /proc/<pid>/task/<tid>/schedstat (time on a CPU). Threads that ended are not
 * counted, so deltas are clamped at 0 by cpuDeltaMs. undefined if the process is gone.
 */
export function cpuNs(pid: number): number | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  let sum = 0;
  for (const tid of tids) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8');
      sum += Number(s.slice(0, s.indexOf(' ')));
    } catch {
      /* thread ended */
    }
  }
  return sum;
}

/** Sum of cpuNs over several processes (missing ones count 0). */
export function cpuNsOf(pids: readonly number[]): number {
  let sum = 0;
  for (const pid of pids) sum += cpuNs(pid) ?? 0;
  return sum;
}

export const cpuDeltaMs = (before: number | undefined, after: number | undefined): number =>
  before === undefined || after === undefined ? 0 : Math.max(0, (after - before) / 1e6);

/** Resident set size of a process in KiB (VmRSS), undefined if the process is gone. */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
