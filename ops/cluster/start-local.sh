#!/usr/bin/env bash
# Starts a Switchboard cluster on this host: one nats-server and N broker processes
# joined through it (docs/cluster.md, docs/cluster-local.md). Node i (i = 0..N-1) listens
# for MQTT over TCP on MQTT_BASE+i and for MQTT over WebSocket + HTTP (/metrics,
# /healthz, admin API) on WS_BASE+i, keeps its state in DATA/nI and logs to DATA/nI.log.
# Runs in the foreground until Ctrl-C / SIGTERM, then stops the nodes (SIGTERM, SIGKILL
# after the grace period) and nats-server, and exits.
#
#   ops/cluster/start-local.sh [options] [-- extra switchboard start arguments]
#
#   -n, --nodes N        broker processes (default 2)
#   --mqtt-base PORT     node i: MQTT over TCP on PORT+i (default 1883)
#   --ws-base PORT       node i: WebSocket + HTTP on PORT+i (default 8083)
#   --nats-port PORT     nats-server client port (default 4222)
#   --host ADDR          listen address of every process (default 127.0.0.1)
#   --data DIR           data directories and logs (default ./cluster-data)
#   --threads 1|auto     1 = every actor on the main thread of each node (--gateways 0
#                        --shards 0; best when many nodes share few cores), auto = each
#                        node's default topology (default: 1 when N >= cores, else auto)
#   --nats-url URL       use this running NATS instead of starting nats-server (it
#                        needs JetStream: nats-server -js, or a jetstream block)
#   --grace S            seconds a node may take to stop after SIGTERM (default 15)
#
# Environment: SWITCHBOARD = the command that runs the broker (default: `node
# dist/src/cli.js` of this repository if built, else `switchboard` on PATH);
# NATS_SERVER = the nats-server binary (default: nats-server on PATH, /usr/sbin/nats-server).
# Extra arguments after `--` go to every node (e.g. `-- -c switchboard.yaml` or
# `-- --log-level info`). Each process keeps its own descriptor limit: with a hard limit
# of 20,000 a node holds ~19,000 connections, so size N by that (docs/cluster-local.md).
set -euo pipefail

nodes=2
mqtt_base=1883
ws_base=8083
nats_port=4222
host=127.0.0.1
data=./cluster-data
threads=
nats_url=
grace=15
extra=()

die() { echo "start-local: $*" >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n|--nodes) need "$@"; nodes=$2; shift 2 ;;
    --mqtt-base) need "$@"; mqtt_base=$2; shift 2 ;;
    --ws-base) need "$@"; ws_base=$2; shift 2 ;;
    --nats-port) need "$@"; nats_port=$2; shift 2 ;;
    --host) need "$@"; host=$2; shift 2 ;;
    --data) need "$@"; data=$2; shift 2 ;;
    --threads) need "$@"; threads=$2; shift 2 ;;
    --nats-url) need "$@"; nats_url=$2; shift 2 ;;
    --grace) need "$@"; grace=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
for v in nodes mqtt_base ws_base nats_port grace; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "--${v//_/-} must be a number (got ${!v})"
done
(( nodes >= 1 )) || die "--nodes must be at least 1"
(( mqtt_base + nodes - 1 <= 65535 && ws_base + nodes - 1 <= 65535 )) || die "port range beyond 65535"
if (( mqtt_base < ws_base ? mqtt_base + nodes > ws_base : ws_base + nodes > mqtt_base )); then
  die "the MQTT ports $mqtt_base.. and the WebSocket ports $ws_base.. overlap for $nodes nodes"
fi
cores=$(nproc 2>/dev/null || echo 1)
[[ -n $threads ]] || { if (( nodes >= cores )); then threads=1; else threads=auto; fi; }
case "$threads" in
  1) thread_args=(--gateways 0 --shards 0) ;;
  auto) thread_args=() ;;
  *) die "--threads: 1 or auto (got $threads)" ;;
esac

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
if [[ -n ${SWITCHBOARD:-} ]]; then
  read -r -a sb <<<"$SWITCHBOARD"
elif [[ -f $repo/dist/src/cli.js ]]; then
  sb=(node "$repo/dist/src/cli.js")
elif command -v switchboard >/dev/null; then
  sb=(switchboard)
else
  die "no broker: build this repository (npm run build) or set SWITCHBOARD"
fi

mkdir -p "$data"
data=$(cd "$data" && pwd)
pids=()
names=()

# Stops what this script started, by pid: SIGTERM to the nodes, SIGKILL after the grace
# period, then nats-server (so the nodes leave NATS cleanly).
stopping=0
stop_pids() {
  local pid deadline=$((SECONDS + grace))
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "start-local: pid $pid did not stop within ${grace} s: SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}
stop_all() {
  (( stopping )) && return
  stopping=1
  trap - INT TERM
  (( ${#pids[@]} )) || return 0
  echo "start-local: stopping ${#pids[@]} process(es)" >&2
  local node_pids=() k
  for k in "${!pids[@]}"; do [[ ${names[k]} == nats-server ]] || node_pids+=("${pids[k]}"); done
  (( ${#node_pids[@]} )) && stop_pids "${node_pids[@]}"
  for k in "${!pids[@]}"; do [[ ${names[k]} == nats-server ]] && stop_pids "${pids[k]}"; done
  return 0
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap 'stop_all' EXIT

# Waits until HOST:PORT accepts TCP connections (bash /dev/tcp) or the process is gone.
wait_port() {
  local pid=$1 port=$2 what=$3 log=$4
  for ((t = 0; t < 300; t++)); do
    kill -0 "$pid" 2>/dev/null || { echo "start-local: $what exited; last lines of $log:" >&2; tail -n 20 "$log" >&2; exit 1; }
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  die "$what not accepting on $host:$port after 30 s (see $log)"
}

if [[ -z $nats_url ]]; then
  nats_bin=${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}
  [[ -x $nats_bin ]] || die "nats-server not found (apt-get install nats-server, or set NATS_SERVER / --nats-url)"
  # max_payload above MQTT's default maximum packet size (1 MiB) plus the envelope;
  # JetStream (file store under DATA/nats-js): the nodes keep retained messages, the IM
  # directory, templates, rules and presence in JetStream KV (docs/cluster.md).
  printf 'listen: %s:%s\nserver_name: switchboard-local\nmax_payload: 8MB\njetstream {\n  store_dir: "%s"\n}\n' \
    "$host" "$nats_port" "$data/nats-js" >"$data/nats.conf"
  "$nats_bin" -c "$data/nats.conf" >"$data/nats.log" 2>&1 &
  pids+=($!); names+=(nats-server)
  wait_port "$!" "$nats_port" nats-server "$data/nats.log"
  nats_url="nats://$host:$nats_port"
fi

for ((i = 0; i < nodes; i++)); do
  mkdir -p "$data/n$i"
  "${sb[@]}" start --host "$host" --tcp-port $((mqtt_base + i)) --ws-port $((ws_base + i)) \
    --data-dir "$data/n$i" "${thread_args[@]}" --cluster-nats "$nats_url" --node "n$i" "${extra[@]}" \
    >"$data/n$i.log" 2>&1 &
  pids+=($!); names+=("n$i")
done
for ((i = 0; i < nodes; i++)); do
  k=$((${#pids[@]} - nodes + i))
  wait_port "${pids[k]}" $((mqtt_base + i)) "node n$i" "$data/n$i.log"
done

echo "start-local: cluster of $nodes node(s) on $nats_url (threads: $threads, data and logs: $data)"
for ((i = 0; i < nodes; i++)); do
  echo "  n$i  mqtt://$host:$((mqtt_base + i))  ws://$host:$((ws_base + i))/mqtt  http://$host:$((ws_base + i))/metrics  pid ${pids[${#pids[@]} - nodes + i]}"
done
echo "start-local: Ctrl-C stops them all"

# Until a signal, or until any process exits on its own (then stop the rest).
while :; do
  for k in "${!pids[@]}"; do
    if ! kill -0 "${pids[k]}" 2>/dev/null; then
      echo "start-local: ${names[k]} (pid ${pids[k]}) exited; stopping the others" >&2
      exit 1
    fi
  done
  sleep 1
done
