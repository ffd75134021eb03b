/**
 * Optional packet capture with Wireshark's dumpcap/tshark on the loopback interface, to
 * report IP-level bytes (payload + TCP/UDP and IP headers, and the packets that carry no
 * payload: SYN, FIN, pure ACKs) next to the payload bytes counted at the sockets.
 * Only the client side of the traffic is captured: the proxy ports (TCP variants) and the
 * SIP server port (UDP). Packets are attributed to a run by client port and to a phase by
 * time (the phases end after 150 ms of silence, so the boundaries fall in quiet gaps).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileP, which } from './servers.js';
import { sleep, type Phase, type RunResult, type WireBytes } from './types.js';

export interface Capture {
  file: string;
  stop(): Promise<void>;
}

export async function startCapture(file: string, tcpPorts: number[], udpPorts: number[]): Promise<Capture | null> {
  if (!(await which('dumpcap')) || !(await which('tshark'))) return null;
  const filter = [...tcpPorts.map((p) => `tcp port ${p}`), ...udpPorts.map((p) => `udp port ${p}`)].join(' or ');
  const child: ChildProcess = spawn('dumpcap', ['-i', 'lo', '-f', filter, '-w', file, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
  process.once('exit', () => child.exitCode === null && child.kill('SIGKILL'));
  let err = '';
  let ready = false;
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (err.includes('Capturing on')) ready = true;
  });
  const start = Date.now();
  while (!ready) {
    if (child.exitCode !== null || Date.now() - start > 10_000) {
      child.kill('SIGKILL');
      process.stderr.write(`fig6: packet capture unavailable: ${err.trim() || 'dumpcap did not start'}\n`);
      return null;
    }
    await sleep(50);
  }
  await sleep(300); // the filter is in place once dumpcap says it captures; a margin anyway
  return {
    file,
    async stop() {
      if (child.exitCode !== null) return;
      await sleep(300);
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGINT');
      await exited;
    },
  };
}

const zero = (): WireBytes => ({ packets: 0, ipBytes: 0, payloadBytes: 0 });

/** Reads the capture and fills `wire` of every run it has packets for. */
export async function analyzeCapture(file: string, runs: RunResult[]): Promise<number> {
  const { stdout } = await execFileP(
    'tshark',
    ['-r', file, '-T', 'fields', '-E', 'separator=,', '-e', 'frame.time_epoch', '-e', 'ip.len', '-e', 'tcp.srcport', '-e', 'tcp.dstport', '-e', 'tcp.len', '-e', 'udp.srcport', '-e', 'udp.dstport', '-e', 'udp.length'],
    { maxBuffer: 256 * 1024 * 1024 },
  );
  for (const r of runs) r.wire = { setup: zero(), messages: zero(), teardown: zero(), total: zero() };
  let unassigned = 0;
  for (const line of stdout.split('\n')) {
    if (!line.trim()) continue;
    const [t, ipLen, tsp, tdp, tlen, usp, udp, ulen] = line.split(',');
    const ms = Number(t) * 1000;
    const ports = tsp ? [Number(tsp), Number(tdp)] : [Number(usp), Number(udp)];
    const payload = tsp ? Number(tlen || 0) : Math.max(0, Number(ulen || 8) - 8);
    // The run this packet belongs to: one of its client ports, and the time within the run
    // (a little slack after the end for the last FIN/ACK).
    const run = runs.find((r) => ports.some((p) => r.clientPorts.includes(p)) && ms >= r.marks[0] - 5 && ms <= r.marks[3] + 100);
    if (!run || !run.wire) {
      unassigned++;
      continue;
    }
    const phase: Phase = ms < run.marks[1] ? 'setup' : ms < run.marks[2] ? 'messages' : 'teardown';
    for (const w of [run.wire[phase], run.wire.total]) {
      w.packets++;
      w.ipBytes += Number(ipLen);
      w.payloadBytes += payload;
    }
  }
  return unassigned;
}
