/**
 * Prometheus text exposition (version 0.0.4) of the snapshots of every thread.
 * Series of the same name from several threads are summed (a counter of messages is a
 * node-wide number); event-loop delay and mailbox depth stay per thread, labelled.
 */
import type { MetricsSnapshot } from '../protocol/messages.js';

const PREFIX = 'switchboard_';

/** HELP text per metric name; a series whose name is missing here still renders. */
const HELP: Record<string, string> = {
  connections: 'Open client connections, by transport',
  connections_total: 'Connections accepted since start, by transport',
  connections_rejected_total: 'Connections refused, by reason',
  tls_handshake_failures_total: 'TLS handshakes on the MQTT over TLS listener that failed (plain TCP on the TLS port, unknown CA, no client certificate, timeout)',
  tls_reloads_total: 'Certificate reloads (SIGHUP) applied, summed over the gateway threads',
  sessions: 'Sessions held by the shards (online and offline)',
  sessions_online: 'Sessions with a live connection',
  sessions_expired_total: 'Sessions discarded because their expiry interval ran out',
  session_takeovers_total: 'Connections closed because the same client id connected again',
  subscriptions: 'Subscriptions held by the shards',
  subscriptions_refused_total: 'Subscriptions refused, by reason',
  retained_messages: 'Retained messages held by the coordinator',
  messages_received_total: 'PUBLISH packets received from clients, by QoS',
  messages_sent_total: 'PUBLISH packets sent to clients, by QoS',
  bytes_received_total: 'Bytes read from client connections',
  payload_bytes_received_total: 'Application payload bytes of PUBLISH packets received, by QoS',
  payload_bytes_sent_total: 'Application payload bytes of PUBLISH packets sent, by QoS',
  bytes_sent_total: 'Bytes written to client connections',
  messages_dropped_total: 'Messages dropped, by reason',
  messages_queued: 'Messages waiting in session queues',
  messages_inflight: 'Outbound QoS 1/2 messages not yet acknowledged',
  packets_malformed_total: 'Connections closed for a malformed packet',
  protocol_errors_total: 'Connections closed for a protocol error, by reason',
  auth_failures_total: 'CONNECTs refused for bad credentials or authorisation',
  publish_denied_total: 'PUBLISH refused by the ACL',
  wills_published_total: 'Will messages published',
  connect_timeouts_total: 'Connections closed because CONNECT did not complete in time',
  keepalive_timeouts_total: 'Connections closed because keepalive expired',
  event_loop_delay_ms: 'Event loop delay per thread (since the previous scrape)',
  mailbox_depth: 'Actor messages waiting in the run queue of each thread',
  actor_errors_total: 'Actor messages that threw (logged as "actor failed on a message" and skipped)',
  internal_errors_total: 'Items of a message (a delivery, a packet, a session) that threw, were logged and skipped without the others, by operation',
  link_pending_records: 'Cross-thread records sent and not yet handled by the peer',
  thread_restarts_total: 'Worker threads restarted by the supervisor, by role',
  uptime_seconds: 'Seconds since the broker started',
  store_bytes: 'Bytes of the store (LMDB pages in use) per owning thread',
  store_entries: 'Records in the store per owning thread (sessions, messages, bodies, retained)',
  store_errors_total: 'Store commits that failed (their publishes were never acknowledged)',
  sessions_evicted: 'Offline sessions whose messages are in the store only (not in memory)',
  sessions_evicted_total: 'Offline sessions whose messages were moved out of memory',
  messages_duplicate_dropped_total: 'QoS 2 PUBLISHes resent after a crash and not delivered again',
  shared_groups: 'Shared subscription groups ($share/{ShareName}/{filter}) owned by the shards',
  shared_members: 'Members of the shared subscription groups',
  shared_deliveries_total: 'Messages given to one member of a shared subscription group',
  shared_redeliveries_total: 'Shared subscription messages given to another member (bounced, or given back unacknowledged)',
  shared_given_back_total: 'Unacknowledged shared subscription messages a member gave back when its connection or session ended',
  shared_join_timeouts_total: 'SUBACKs of shared subscriptions sent without the group owner\'s answer (10 s)',
  acks_waiting_commit: 'PUBACK/PUBREC held until the store committed the message (durability sync)',
};

function nameOf(series: string): string {
  const i = series.indexOf('{');
  return i < 0 ? series : series.slice(0, i);
}

function withLabel(series: string, label: string): string {
  const i = series.indexOf('{');
  return i < 0 ? `${series}{${label}}` : `${series.slice(0, -1)},${label}}`;
}

export function renderMetrics(snaps: MetricsSnapshot[], extra: Record<string, number> = {}): string {
  const counters = new Map<string, number>();
  const gauges = new Map<string, number>();
  for (const s of snaps) {
    for (const [k, v] of Object.entries(s.counters)) counters.set(k, (counters.get(k) ?? 0) + v);
    for (const [k, v] of Object.entries(s.gauges)) gauges.set(k, (gauges.get(k) ?? 0) + v);
    for (const [q, v] of [['0.5', s.loopDelay.p50], ['0.99', s.loopDelay.p99], ['1', s.loopDelay.max]] as const)
      gauges.set(`event_loop_delay_ms{thread="${s.thread}",quantile="${q}"}`, v);
    gauges.set(`mailbox_depth{thread="${s.thread}"}`, s.mailboxDepth);
  }
  for (const [k, v] of Object.entries(extra)) gauges.set(k, v);
  const lines: string[] = [];
  const emit = (series: Map<string, number>, type: 'counter' | 'gauge') => {
    const byName = new Map<string, Array<[string, number]>>();
    for (const [k, v] of series) {
      const n = nameOf(k);
      let list = byName.get(n);
      if (!list) byName.set(n, (list = []));
      list.push([k, v]);
    }
    for (const [n, list] of [...byName].sort((a, b) => a[0].localeCompare(b[0]))) {
      lines.push(`# HELP ${PREFIX}${n} ${HELP[n] ?? n}`);
      lines.push(`# TYPE ${PREFIX}${n} ${type}`);
      for (const [k, v] of list.sort((a, b) => a[0].localeCompare(b[0]))) lines.push(`${PREFIX}${k} ${v}`);
    }
  };
  emit(counters, 'counter');
  emit(gauges, 'gauge');
  return lines.join('\n') + '\n';
}

export { withLabel };
