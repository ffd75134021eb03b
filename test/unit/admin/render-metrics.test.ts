import { describe, it, expect } from 'vitest';
import { renderMetrics, withLabel } from '../../../src/admin/render-metrics.js';
import type { MetricsSnapshot } from '../../../src/protocol/messages.js';

const snap = (thread: string, over: Partial<MetricsSnapshot> = {}): MetricsSnapshot => ({
  thread,
  counters: {},
  gauges: {},
  loopDelay: { p50: 0.5, p99: 2.25, max: 10 },
  mailboxDepth: 0,
  ...over,
});

/** Parses the text format strictly enough to catch malformed output. */
function parse(text: string): { samples: Map<string, number>; types: Map<string, string>; helps: Map<string, string> } {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  const helps = new Map<string, string>();
  expect(text.endsWith('\n')).toBe(true);
  const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
  const SAMPLE = new RegExp(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\\{${LABEL}(?:,${LABEL})*\\})? (-?[0-9]+(?:\\.[0-9]+)?(?:e[+-]?[0-9]+)?|NaN|\\+Inf|-Inf)$`);
  let current: string | undefined;
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/))) {
      expect(helps.has(m[1]!), `duplicate HELP ${m[1]}`).toBe(false);
      helps.set(m[1]!, m[2]!);
      current = m[1];
    } else if ((m = line.match(/^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/))) {
      expect(types.has(m[1]!), `duplicate TYPE ${m[1]}`).toBe(false);
      expect(m[1]).toBe(current); // TYPE follows its HELP
      types.set(m[1]!, m[2]!);
    } else {
      m = line.match(SAMPLE);
      expect(m, `not a valid sample line: ${JSON.stringify(line)}`).not.toBeNull();
      // A sample belongs to the family announced last (families are not interleaved).
      expect(m![1]).toBe(current);
      expect(types.has(m![1]!), `sample before TYPE: ${line}`).toBe(true);
      const series = `${m![1]}${m![2] ?? ''}`;
      expect(samples.has(series), `duplicate series ${series}`).toBe(false);
      samples.set(series, Number(m![3]));
    }
  }
  return { samples, types, helps };
}

describe('renderMetrics', () => {
  const snaps = [
    snap('main', {
      counters: { 'messages_received_total{qos="0"}': 3, 'messages_received_total{qos="1"}': 1, connections_total: 2 },
      gauges: { retained_messages: 4, 'connections{transport="tcp"}': 1 },
      loopDelay: { p50: 0.1, p99: 1.5, max: 3 },
      mailboxDepth: 2,
    }),
    snap('gw0', {
      counters: { 'messages_received_total{qos="0"}': 7, connections_total: 5, bytes_received_total: 1024 },
      gauges: { 'connections{transport="tcp"}': 4, 'connections{transport="ws"}': 2 },
      loopDelay: { p50: 0.2, p99: 4, max: 12.5 },
      mailboxDepth: 9,
    }),
    snap('shard0', { counters: { sessions_expired_total: 1 }, gauges: { sessions: 6 }, mailboxDepth: 0 }),
  ];

  it('sums series of the same name across threads', () => {
    const { samples } = parse(renderMetrics(snaps));
    expect(samples.get('switchboard_messages_received_total{qos="0"}')).toBe(10);
    expect(samples.get('switchboard_messages_received_total{qos="1"}')).toBe(1);
    expect(samples.get('switchboard_connections_total')).toBe(7);
    expect(samples.get('switchboard_bytes_received_total')).toBe(1024);
    expect(samples.get('switchboard_connections{transport="tcp"}')).toBe(5);
    expect(samples.get('switchboard_connections{transport="ws"}')).toBe(2);
    expect(samples.get('switchboard_sessions')).toBe(6);
    expect(samples.get('switchboard_retained_messages')).toBe(4);
  });

  it('keeps event loop delay and mailbox depth per thread, labelled', () => {
    const { samples } = parse(renderMetrics(snaps));
    expect(samples.get('switchboard_event_loop_delay_ms{thread="main",quantile="0.5"}')).toBe(0.1);
    expect(samples.get('switchboard_event_loop_delay_ms{thread="main",quantile="0.99"}')).toBe(1.5);
    expect(samples.get('switchboard_event_loop_delay_ms{thread="main",quantile="1"}')).toBe(3);
    expect(samples.get('switchboard_event_loop_delay_ms{thread="gw0",quantile="0.99"}')).toBe(4);
    expect(samples.get('switchboard_event_loop_delay_ms{thread="gw0",quantile="1"}')).toBe(12.5);
    expect(samples.get('switchboard_event_loop_delay_ms{thread="shard0",quantile="0.5"}')).toBe(0.5);
    expect(samples.get('switchboard_mailbox_depth{thread="main"}')).toBe(2);
    expect(samples.get('switchboard_mailbox_depth{thread="gw0"}')).toBe(9);
    expect(samples.get('switchboard_mailbox_depth{thread="shard0"}')).toBe(0);
  });

  it('writes one HELP and one TYPE line per metric family, counters as counter and gauges as gauge', () => {
    const text = renderMetrics(snaps);
    const { types, helps } = parse(text);
    expect(types.get('switchboard_messages_received_total')).toBe('counter');
    expect(types.get('switchboard_connections_total')).toBe('counter');
    expect(types.get('switchboard_connections')).toBe('gauge');
    expect(types.get('switchboard_event_loop_delay_ms')).toBe('gauge');
    expect(types.get('switchboard_mailbox_depth')).toBe('gauge');
    expect(helps.get('switchboard_messages_received_total')).toBe('PUBLISH packets received from clients, by QoS');
    expect(helps.get('switchboard_mailbox_depth')).toBe('Actor messages waiting in the run queue of each thread');
    expect(text.split('\n').filter((l) => l === '# TYPE switchboard_messages_received_total counter')).toHaveLength(1);
  });

  it('renders a series without a HELP entry, using its name as help text', () => {
    const { helps, samples } = parse(renderMetrics([snap('main', { counters: { 'custom_things_total{kind="x"}': 1 } })]));
    expect(helps.get('switchboard_custom_things_total')).toBe('custom_things_total');
    expect(samples.get('switchboard_custom_things_total{kind="x"}')).toBe(1);
  });

  it('extra gauges are rendered (and override a same-named series)', () => {
    const { samples, types } = parse(
      renderMetrics(snaps, { 'link_pending_records{from="main",to="gw0"}': 17, retained_messages: 99 }),
    );
    expect(samples.get('switchboard_link_pending_records{from="main",to="gw0"}')).toBe(17);
    expect(types.get('switchboard_link_pending_records')).toBe('gauge');
    expect(samples.get('switchboard_retained_messages')).toBe(99);
  });

  it('every line of the output is valid Prometheus text (0.0.4)', () => {
    const text = renderMetrics(snaps, { uptime_seconds: 12 });
    const { samples } = parse(text);
    // 5 counter series + 4 gauge series + 9 loop delay (3 threads x 3) + 3 mailbox + 1 extra
    expect(samples.size).toBe(5 + 4 + 9 + 3 + 1);
    for (const line of text.trimEnd().split('\n')) expect(line.startsWith('# ') || line.startsWith('switchboard_')).toBe(true);
  });

  it('no snapshots gives an empty but valid document', () => {
    expect(renderMetrics([])).toBe('\n');
  });
});

describe('withLabel', () => {
  it('adds a label to a bare or labelled series name', () => {
    expect(withLabel('x_total', 'thread="a"')).toBe('x_total{thread="a"}');
    expect(withLabel('x_total{qos="1"}', 'thread="a"')).toBe('x_total{qos="1",thread="a"}');
  });
});
