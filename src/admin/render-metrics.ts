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
  auth_failures_total: 'Logins refused: password logins unlabelled; enhanced authentication and re-authentication by reason (docs/authentication.md)',
  publish_denied_total: 'PUBLISH refused by the ACL',
  wills_published_total: 'Will messages published',
  connect_timeouts_total: 'Connections closed because CONNECT did not complete in time',
  keepalive_timeouts_total: 'Connections closed because keepalive expired',
  publish_refused_total: 'PUBLISH refused for its properties or payload (MQTT 5), by reason',
  publishers_throttled_total: 'Times a TCP publisher was paused because a session it publishes to had a full queue',
  connections_deferred_total: 'Connections whose next packets waited for a restarting shard',
  backpressure_pauses_total: 'Times a gateway stopped reading its sockets because a peer thread was behind',
  admin_requests_total: 'Admin API requests, by HTTP status',
  presubscriptions_total: 'IM pre-subscriptions made for sessions before their CONNACK',
  im_payload_invalid_total: 'IM messages refused as malformed (0x99), by decode error',
  im_sender_mismatch_total: 'IM messages refused because the Sender is not the logged-in user (0x87)',
  im_sender_rewritten_total: 'IM messages whose Sender was set to the logged-in user (im.senderCheck rewrite)',
  im_rule_messages_total: 'Copies of IM messages made by routing rules',
  im_rule_actions_skipped_total: 'Routing rule actions skipped because their destination could not be made a valid topic',
  im_rule_originals_withheld_total: 'Messages not delivered to their own topic because a move or drop rule matched',
  files_uploaded_total: 'Files uploaded (POST /files)',
  file_bytes_uploaded_total: 'Bytes of the files uploaded',
  file_upload_refused_total: 'File uploads refused, by reason',
  files_downloaded_total: 'File downloads (GET /files/...)',
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
  acks_waiting_commit: 'PUBACK/PUBREC held until the destinations answered: the store committed the message (durability sync/async), or it entered a full queue (limits.queueFullPolicy hold)',
  messages_held_total: 'Messages parked beyond a full session queue while their publishers waited for the ack (limits.queueFullPolicy hold)',
  messages_held: 'Messages parked beyond full session queues now, their publishers waiting for the ack (limits.queueFullPolicy hold)',
  publishers_paused_held_acks_total: 'Times an MQTT 3.1.1 publisher was not read because limits.maxInflight of its acks were held',
};

/**
 * Counters exported at 0 from the start, before anything counted them. A series that
 * first appears at 1 has no earlier sample, so rate() and increase() miss its first
 * increment, and an alert on increase(...) > 0 would not fire on the first store error
 * (ops/prometheus-alerts.yml). The main thread's Metrics adds these at 0 (src/broker.ts).
 */
export const DECLARED_COUNTERS: readonly string[] = [
  ...[0, 1, 2].flatMap((q) => [`messages_received_total{qos="${q}"}`, `messages_sent_total{qos="${q}"}`]),
  'messages_dropped_total{reason="queue_full"}',
  'messages_dropped_total{reason="slow_consumer"}',
  'connections_rejected_total{reason="max_connections"}',
  'auth_failures_total',
  'packets_malformed_total',
  'keepalive_timeouts_total',
  'store_errors_total',
  'thread_restarts_total{role="gateway"}',
  'thread_restarts_total{role="shard"}',
  'im_sender_mismatch_total',
];

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
