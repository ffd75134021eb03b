import { describe, expect, it } from 'vitest';
import { mosquittoConfig, MOSQUITTO_AUTOSAVE_S } from '../../../bench/lib/brokers.js';
import { markPayload, QueueTally, type QueuedRestartResult } from '../../../bench/lib/queued-restart.js';
import { durabilityBrokers, modeBanner, modeOf, restartMeasurements } from '../../../bench/scenarios/durability.js';

const msg = (session: number, seq: number) => markPayload(Buffer.alloc(64), session, seq);

describe('QueueTally', () => {
  it('counts distinct deliveries per session and complete sessions', () => {
    const t = new QueueTally(2, 3);
    for (let i = 0; i < 3; i++) t.record(0, msg(0, i));
    t.record(1, msg(1, 0));
    expect(t.counts).toEqual({ delivered: 4, duplicates: 0, reordered: 0, misrouted: 0, completeSessions: 1 });
    expect(t.receivedBy(0)).toBe(3);
    expect(t.receivedBy(1)).toBe(1);
  });

  it('tells duplicates, reordering and misrouted or unreadable messages apart', () => {
    const t = new QueueTally(2, 4);
    t.record(0, msg(0, 2));
    t.record(0, msg(0, 2)); // duplicate
    t.record(0, msg(0, 1)); // older than 2: out of order
    t.record(1, msg(0, 3)); // session 0's message at session 1
    t.record(0, msg(0, 4)); // beyond perSession
    t.record(0, msg(5, 0)); // unknown session
    t.record(0, Buffer.alloc(3)); // too short
    expect(t.counts).toEqual({ delivered: 2, duplicates: 1, reordered: 1, misrouted: 4, completeSessions: 0 });
  });

  it('does not count a duplicate towards completion', () => {
    const t = new QueueTally(1, 2);
    t.record(0, msg(0, 0));
    t.record(0, msg(0, 0));
    expect(t.counts.completeSessions).toBe(0);
    t.record(0, msg(0, 1));
    expect(t.counts.completeSessions).toBe(1);
  });
});

describe('durability brokers', () => {
  it('expands switchboard into the modes asked for, in place', () => {
    expect(durabilityBrokers(['switchboard', 'aedes', 'mosquitto'], ['memory', 'async', 'sync'])).toEqual([
      'switchboard-memory',
      'switchboard-async',
      'switchboard',
      'aedes',
      'mosquitto',
    ]);
    expect(durabilityBrokers(['mosquitto', 'switchboard'], ['sync'])).toEqual(['mosquitto', 'switchboard']);
  });

  it('keeps the list as given when a mode is named as a broker, or Switchboard is not in it', () => {
    expect(durabilityBrokers(['switchboard', 'switchboard-async'], ['memory', 'async', 'sync'])).toEqual(['switchboard', 'switchboard-async']);
    expect(durabilityBrokers(['mosquitto'], ['memory'])).toEqual(['mosquitto']);
  });

  it('maps brokers to modes and recognises the banner of each mode', () => {
    expect(modeOf('switchboard')).toBe('sync');
    expect(modeOf('switchboard-async')).toBe('async');
    expect(modeOf('switchboard-memory')).toBe('memory');
    expect(modeOf('mosquitto')).toBeUndefined();
    // The lines src/cli.ts prints.
    const lmdb = (m: string) => `switchboard 0.1.0 started\n  store                LMDB in /tmp/x/data/store, durability ${m}\n`;
    expect(modeBanner('sync').test(lmdb('sync'))).toBe(true);
    expect(modeBanner('sync').test(lmdb('async'))).toBe(false);
    expect(modeBanner('async').test(lmdb('async'))).toBe(true);
    expect(modeBanner('memory').test('  store                memory (nothing is kept across restarts)\n')).toBe(true);
    expect(modeBanner('memory').test(lmdb('sync'))).toBe(false);
  });
});

describe('mosquittoConfig', () => {
  it('turns persistence on in the given directory, with the autosave interval written out', () => {
    const conf = mosquittoConfig({ host: '127.0.0.1', port: 1883, persistenceDir: '/tmp/b' });
    expect(conf).toContain('persistence true\npersistence_location /tmp/b/\n');
    expect(conf).toContain(`autosave_interval ${MOSQUITTO_AUTOSAVE_S}\n`);
    expect(conf).not.toContain('persistence false');
    expect(conf.startsWith('per_listener_settings false\nlistener 1883 127.0.0.1\n')).toBe(true);
  });

  it('keeps persistence off by default and adds a WebSocket listener when asked', () => {
    const conf = mosquittoConfig({ host: '127.0.0.1', port: 1883, wsPort: 9001 });
    expect(conf).toContain('persistence false');
    expect(conf).not.toContain('autosave');
    expect(conf).toContain('listener 9001 127.0.0.1\nprotocol websockets\n');
    expect(conf).toContain('set_tcp_nodelay true');
  });
});

describe('restartMeasurements', () => {
  const base = (over: Partial<QueuedRestartResult> = {}): QueuedRestartResult => ({
    queued: 2000,
    published: 2000,
    fillMs: 100,
    rssBeforeStopMB: 150,
    stopped: { code: 0, signal: null, unexpected: false, stopMs: 200, killed: false },
    readyMs: 700,
    rssAfterRestartMB: 110,
    emptyReadyMs: 650,
    sessionsResumed: 2,
    connectMs: 30,
    drainMs: 400,
    drainEnd: 'complete',
    tally: { delivered: 2000, duplicates: 0, reordered: 0, misrouted: 0, completeSessions: 2 },
    brokerCpuPct: 90,
    genCpuPct: 20,
    errors: [],
    ...over,
  });
  const z = { sessions: 2, perSession: 1000 };

  it('gives ready, drain and delivered cases, with no issue when everything arrived', () => {
    const m = restartMeasurements('switchboard', 'SIGTERM', base(), z);
    expect(Object.keys(m)).toEqual(['restart SIGTERM: ready', 'restart SIGTERM: drain', 'restart SIGTERM: delivered']);
    expect(m['restart SIGTERM: ready']).toMatchObject({ value: 700, unit: 'ms', higherIsBetter: false });
    expect(m['restart SIGTERM: ready']!.details).toMatchObject({ emptyStartMs: 650, stopMs: 200, fillRate: 20000, rssAfterRestartMB: 110 });
    expect(m['restart SIGTERM: drain']).toMatchObject({ value: 0.4, unit: 's' });
    expect(m['restart SIGTERM: drain']!.details.drainRate).toBe(5000);
    expect(m['restart SIGTERM: delivered']).toMatchObject({ value: 2000, higherIsBetter: true });
    expect(m['restart SIGTERM: delivered']!.details.lost).toBe(0);
    expect(Object.values(m).flatMap((x) => x.issues)).toEqual([]);
  });

  it('flags a loss, with why it may be expected', () => {
    const lossy = base({ tally: { delivered: 1500, duplicates: 0, reordered: 0, misrouted: 0, completeSessions: 1 } });
    const sync = restartMeasurements('switchboard', 'SIGKILL', lossy, z)['restart SIGKILL: delivered']!;
    expect(sync.details.lost).toBe(500);
    expect(sync.issues[0]).toMatch(/^LOST: 500 of 2000 .*must be 0/);
    const async = restartMeasurements('switchboard-async', 'SIGKILL', lossy, z)['restart SIGKILL: delivered']!;
    expect(async.issues[0]).toMatch(/async acknowledges before the commit/);
  });

  it('leaves the drain unmeasured when nothing came back (Mosquitto after SIGKILL)', () => {
    const gone = base({ sessionsResumed: 0, tally: { delivered: 0, duplicates: 0, reordered: 0, misrouted: 0, completeSessions: 0 }, drainEnd: 'idle' });
    const m = restartMeasurements('mosquitto', 'SIGKILL', gone, z);
    expect(m['restart SIGKILL: drain']!.notMeasured).toBe('nothing delivered (0 of 2 sessions resumed)');
    expect(m['restart SIGKILL: delivered']!.issues[0]).toMatch(/LOST: 2000 of 2000 .*autosave|every 1800 s/);
  });

  it('flags a SIGTERM that needed a SIGKILL, and a fill that was not acknowledged in full', () => {
    const m = restartMeasurements('mosquitto', 'SIGTERM', base({ queued: 1800, stopped: { code: null, signal: 'SIGKILL', unexpected: false, stopMs: 30000, killed: true } }), z);
    expect(m['restart SIGTERM: ready']!.issues[0]).toMatch(/SIGKILLed/);
    expect(m['restart SIGTERM: delivered']!.issues).toContain('only 1800 of 2000 messages were acknowledged before the stop');
  });
});
