/**
 * Interoperability with a second, independent MQTT implementation: Eclipse Mosquitto's
 * command-line clients (libmosquitto), spawned as child processes against a real broker
 * in both topologies. Covers QoS 0/1/2 with MQTT 3.1.1 and 5.0, retained messages,
 * mosquitto <-> MQTT.js in both directions, `-C n` counts and wills (`--will-topic`).
 *
 * Requires mosquitto_pub / mosquitto_sub on PATH (Debian: mosquitto-clients; CI installs
 * it). Without them the whole file is skipped with a message saying so.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import mqtt, { type MqttClient } from 'mqtt';
import { startTestBroker, TOPOLOGIES, metric, type TestBroker } from '../helpers/broker.js';
import { HAVE_MOSQUITTO as HAVE_MOSQUITTO_CLIENTS, onPath } from '../helpers/peers.js';

// stdbuf (coreutils) makes mosquitto_sub's debug output line-buffered, see mosqSub().
const HAVE_MOSQUITTO = HAVE_MOSQUITTO_CLIENTS && onPath('stdbuf', '--version');
if (!HAVE_MOSQUITTO) {
  console.warn(
    '10-mosquitto-clients: SKIPPED: mosquitto_pub/mosquitto_sub (or stdbuf) not on PATH (apt-get install mosquitto-clients coreutils)',
  );
}

type Version = 'mqttv311' | 'mqttv5';
const VERSIONS: Version[] = ['mqttv311', 'mqttv5'];

interface Received {
  topic: string;
  qos: number;
  retain: boolean;
  payload: string;
}

interface MosqSub {
  proc: ChildProcess;
  /** Resolves when mosquitto_sub got its SUBACK (seen in its `-d` debug output). */
  subscribed: Promise<void>;
  /** Resolves when the process exited, with its exit code and the messages it printed. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; messages: Received[] }>;
}

const children = new Set<ChildProcess>();
let seq = 0;
const uniq = (base: string) => `${base}/${process.pid}-${++seq}`;

/**
 * mosquitto_sub with debug output (to see the SUBACK) and a machine-readable message
 * format: every message is one line `MSG|topic|qos|retain|payload`.
 * `-W 10` bounds it: it exits (code 27) after 10 s if it did not get its `-C` messages
 * (generous: the only misses ever seen were on a machine saturated by parallel test runs).
 */
function mosqSub(port: number, version: Version, args: string[]): MosqSub {
  const argv = ['-h', '127.0.0.1', '-p', String(port), '-V', version, '-d', '-W', '10', '-F', 'MSG|%t|%q|%r|%p', ...args];
  // mosquitto_sub block-buffers its debug lines on a pipe, so the SUBACK line would only
  // show up at exit: stdbuf makes its stdout line-buffered.
  // stdbuf execs mosquitto_sub: same pid, so kill() reaches mosquitto_sub itself.
  const proc = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let out = '';
  let onSub: () => void = () => {};
  let onFail: (e: Error) => void = () => {};
  const subscribed = new Promise<void>((resolve, reject) => {
    onSub = resolve;
    onFail = reject;
  });
  proc.stdout!.setEncoding('utf8');
  proc.stderr!.setEncoding('utf8');
  proc.stdout!.on('data', (d: string) => {
    out += d;
    if (/received SUBACK/.test(out)) onSub();
  });
  let err = '';
  proc.stderr!.on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; messages: Received[] }>((resolve) => {
    // 'close', not 'exit': only then has all of its stdout been read.
    proc.on('close', (code, signal) => {
      children.delete(proc);
      onFail(new Error(`mosquitto_sub exited (${code ?? signal}) before SUBACK: ${out}${err}`));
      const messages = out
        .split('\n')
        .filter((l) => l.startsWith('MSG|'))
        .map((l) => {
          const [, topic, qos, retain, ...payload] = l.split('|');
          return { topic: topic!, qos: Number(qos), retain: retain === '1', payload: payload.join('|') };
        });
      resolve({ code, signal, messages });
    });
  });
  return { proc, subscribed, exited };
}

/** Runs mosquitto_pub to completion; rejects on a non-zero exit. */
function mosqPub(port: number, version: Version, args: string[], stdin?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const proc = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(port), '-V', version, ...args], {
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
    });
    children.add(proc);
    let err = '';
    proc.stderr!.setEncoding('utf8');
    proc.stderr!.on('data', (d: string) => (err += d));
    if (stdin !== undefined) proc.stdin!.end(stdin);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(proc);
      if (code === 0) resolve();
      else reject(new Error(`mosquitto_pub ${args.join(' ')} exited ${code ?? signal}: ${err}`));
    });
  });
}

function nextMessage(c: MqttClient, ms = 5000): Promise<{ topic: string; payload: string; retain: boolean; qos: number }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off('message', on);
      reject(new Error('no message within ' + ms + ' ms'));
    }, ms);
    const on = (topic: string, payload: Buffer, packet: mqtt.IPublishPacket) => {
      clearTimeout(timer);
      c.off('message', on);
      resolve({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos });
    };
    c.on('message', on);
  });
}

// KNOWN FLAKE (see the closing note): twice, during full-suite runs on a machine
// saturated by other parallel test runs, one mosquitto_sub in the single-thread topology
// timed out without a message published right after its SUBACK (a different test each
// time). Never reproduced otherwise: 400 targeted cycles under CPU load and repeated
// full runs with MOSQ_RETRY=0 passed. Retried (MOSQ_RETRY, default 2) while it stays
// unexplained; the retry is not a fix.
describe.skipIf(!HAVE_MOSQUITTO).each(TOPOLOGIES)('mosquitto clients, %s topology', { retry: Number(process.env.MOSQ_RETRY ?? 2) }, (topo) => {
  let b: TestBroker;
  const clients: MqttClient[] = [];
  const connect = async (opts: mqtt.IClientOptions = {}) => {
    const c = await mqtt.connectAsync(b.tcpUrl, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    b = await startTestBroker(topo);
  });
  afterAll(async () => {
    await b?.close();
  });
  afterEach(async () => {
    for (const p of children) p.kill('SIGKILL');
    children.clear();
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  });

  for (const v of VERSIONS) {
    for (const qos of [0, 1, 2] as const) {
      it(`mosquitto_pub -> mosquitto_sub, ${v}, QoS ${qos}`, async () => {
        const topic = uniq(`mosq/${v}/q${qos}`);
        const sub = mosqSub(b.tcpPort, v, ['-t', topic, '-q', String(qos), '-C', '1']);
        await sub.subscribed;
        await mosqPub(b.tcpPort, v, ['-t', topic, '-q', String(qos), '-m', `hello ${qos}`]);
        const r = await sub.exited;
        expect(r.code).toBe(0);
        expect(r.messages).toEqual([{ topic, qos, retain: false, payload: `hello ${qos}` }]);
      });
    }

    it(`QoS is the minimum of publish and subscription QoS, ${v}`, async () => {
      const topic = uniq(`mosq/${v}/downgrade`);
      const sub = mosqSub(b.tcpPort, v, ['-t', topic, '-q', '1', '-C', '1']);
      await sub.subscribed;
      await mosqPub(b.tcpPort, v, ['-t', topic, '-q', '2', '-m', 'down']);
      const r = await sub.exited;
      expect(r.code).toBe(0);
      expect(r.messages).toEqual([{ topic, qos: 1, retain: false, payload: 'down' }]);
    });

    it(`retained message (-r) reaches a later mosquitto_sub with the retain flag, ${v}`, async () => {
      const topic = uniq(`mosq/${v}/retained`);
      await mosqPub(b.tcpPort, v, ['-t', topic, '-q', '1', '-r', '-m', 'kept']);
      const sub = mosqSub(b.tcpPort, v, ['-t', topic, '-q', '1', '-C', '1']);
      const r = await sub.exited;
      expect(r.code).toBe(0);
      expect(r.messages).toEqual([{ topic, qos: 1, retain: true, payload: 'kept' }]);
      // A live (not retained-on-subscribe) delivery of a retained publish has RETAIN=0
      // [MQTT-3.3.1-9]; an empty retained message clears the store [MQTT-3.3.1-10/11].
      const live = mosqSub(b.tcpPort, v, ['-t', topic, '-q', '1', '-C', '2']);
      await live.subscribed;
      await mosqPub(b.tcpPort, v, ['-t', topic, '-q', '1', '-r', '-m', 'again']);
      const lr = await live.exited;
      expect(lr.messages.map((m) => [m.payload, m.retain])).toEqual([
        ['kept', true],
        ['again', false],
      ]);
      await mosqPub(b.tcpPort, v, ['-t', topic, '-q', '1', '-r', '-n']);
      const after = mosqSub(b.tcpPort, v, ['-t', topic, '-C', '1', '-W', '1']);
      const ar = await after.exited;
      expect(ar.messages).toEqual([]);
      expect(ar.code).toBe(27); // mosquitto_sub's "timed out" exit code
    });

    it(`mosquitto_sub -C 3 exits after exactly three messages, ${v}`, async () => {
      const topic = uniq(`mosq/${v}/count`);
      const sub = mosqSub(b.tcpPort, v, ['-t', `${topic}/#`, '-q', '1', '-C', '3']);
      await sub.subscribed;
      // -l: one message per stdin line, over one connection, in order.
      await mosqPub(b.tcpPort, v, ['-t', `${topic}/x`, '-q', '1', '-l'], 'one\ntwo\nthree\nfour\nfive\n');
      const r = await sub.exited;
      expect(r.code).toBe(0);
      expect(r.messages.map((m) => m.payload)).toEqual(['one', 'two', 'three']);
    });

    it(`mosquitto_sub receives what MQTT.js publishes, ${v}`, async () => {
      const topic = uniq(`mosq/${v}/from-mqttjs`);
      const sub = mosqSub(b.tcpPort, v, ['-t', `${topic}/+`, '-q', '2', '-C', '3']);
      await sub.subscribed;
      const pub = await connect({ protocolVersion: v === 'mqttv5' ? 5 : 4 });
      await pub.publishAsync(`${topic}/a`, 'q0', { qos: 0 });
      await pub.publishAsync(`${topic}/b`, 'q1', { qos: 1 });
      await pub.publishAsync(`${topic}/c`, 'q2', { qos: 2 });
      const r = await sub.exited;
      expect(r.code).toBe(0);
      expect(r.messages).toEqual([
        { topic: `${topic}/a`, qos: 0, retain: false, payload: 'q0' },
        { topic: `${topic}/b`, qos: 1, retain: false, payload: 'q1' },
        { topic: `${topic}/c`, qos: 2, retain: false, payload: 'q2' },
      ]);
    });

    it(`MQTT.js receives what mosquitto_pub publishes, ${v}`, async () => {
      const topic = uniq(`mosq/${v}/to-mqttjs`);
      const sub = await connect({ protocolVersion: v === 'mqttv5' ? 5 : 4 });
      await sub.subscribeAsync(`${topic}/#`, { qos: 2 });
      for (const qos of [0, 1, 2] as const) {
        const got = nextMessage(sub);
        await mosqPub(b.tcpPort, v, ['-t', `${topic}/q${qos}`, '-q', String(qos), '-m', `from mosquitto ${qos}`]);
        expect(await got).toEqual({ topic: `${topic}/q${qos}`, payload: `from mosquitto ${qos}`, retain: false, qos });
      }
    });

    it(`will (--will-topic) is published when mosquitto_sub dies, not when it disconnects, ${v}`, async () => {
      const willTopic = uniq(`mosq/${v}/will`);
      const watcher = await connect({ protocolVersion: 5 });
      await watcher.subscribeAsync(`${willTopic}/#`, { qos: 1 });
      const before = await metric(b, 'wills_published_total');
      const seen: string[] = [];
      watcher.on('message', (t, p) => seen.push(`${t.slice(willTopic.length)} ${p.toString()}`));

      // 1. A clean DISCONNECT (mosquitto_sub -C 1 exits normally) discards the will [MQTT-3.1.2-10].
      const polite = mosqSub(b.tcpPort, v, [
        '-t', `${willTopic}/trigger`, '-C', '1',
        '--will-topic', `${willTopic}/polite`, '--will-payload', 'should not appear', '--will-qos', '1',
      ]);
      await polite.subscribed;
      await watcher.publishAsync(`${willTopic}/trigger`, 'go', { qos: 1 });
      expect((await polite.exited).code).toBe(0);

      // 2. Killed (no DISCONNECT): the will goes out [MQTT-3.1.2-8].
      const rude = mosqSub(b.tcpPort, v, [
        '-t', `${willTopic}/nothing`,
        '--will-topic', `${willTopic}/rude`, '--will-payload', 'gone', '--will-qos', '1', '--will-retain',
      ]);
      await rude.subscribed;
      const will = new Promise<void>((resolve) => watcher.on('message', (t) => t.endsWith('/rude') && resolve()));
      rude.proc.kill('SIGKILL');
      await will;
      // The watcher also sees its own trigger (it subscribed to willTopic/#); nothing else.
      expect(seen.filter((m) => !m.startsWith('/trigger'))).toEqual(['/rude gone']);
      expect(await metric(b, 'wills_published_total')).toBe(before + 1);

      // --will-retain: a later subscriber gets the will as a retained message.
      const late = mosqSub(b.tcpPort, v, ['-t', `${willTopic}/rude`, '-C', '1']);
      const lr = await late.exited;
      expect(lr.messages).toEqual([{ topic: `${willTopic}/rude`, qos: 0, retain: true, payload: 'gone' }]);
      await mosqPub(b.tcpPort, v, ['-t', `${willTopic}/rude`, '-r', '-n']);
    });
  }

  it('mosquitto 3.1.1 and 5.0 clients talk to each other', async () => {
    const topic = uniq('mosq/mixed');
    const sub5 = mosqSub(b.tcpPort, 'mqttv5', ['-t', topic, '-q', '2', '-C', '1']);
    const sub3 = mosqSub(b.tcpPort, 'mqttv311', ['-t', topic, '-q', '2', '-C', '1']);
    await Promise.all([sub5.subscribed, sub3.subscribed]);
    await mosqPub(b.tcpPort, 'mqttv311', ['-t', topic, '-q', '2', '-m', 'cross']);
    const [r5, r3] = await Promise.all([sub5.exited, sub3.exited]);
    expect(r5.messages).toEqual([{ topic, qos: 2, retain: false, payload: 'cross' }]);
    expect(r3.messages).toEqual([{ topic, qos: 2, retain: false, payload: 'cross' }]);
  });
});
