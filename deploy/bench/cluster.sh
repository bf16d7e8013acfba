#!/usr/bin/env bash
# Cross-node publish → receive latency in cluster mode vs a single node, in one run (BENCHMARKS.md).
#
# Usage: deploy/bench/cluster.sh
# Env:   HERALD=path/to/herald (default: builds target/release/herald once)
#        SUBS=100 RATE=100 EVENTS=2000   (the fan-out shape of every row)
#        OUT=file.jsonl (default: deploy/bench/results/cluster-DATE.jsonl)
#
# Starts one redis-server (append-only file, fsync always: SPEC §3's durability) and three Herald
# nodes with --redis, plus one standalone node (embedded store, durability "always"), all on
# loopback, and runs `herald bench cluster` for: publish and subscribe on the standalone node;
# on the same cluster node; on two different cluster nodes. Needs redis-server (apt), curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${HERALD:-}" ]]; then
  cargo build --release -p herald-cli
  HERALD=target/release/herald
fi
SUBS=${SUBS:-100}
RATE=${RATE:-100}
EVENTS=${EVENTS:-2000}
mkdir -p deploy/bench/results
OUT=${OUT:-deploy/bench/results/cluster-$(date +%F).jsonl}
WORK=$(mktemp -d)
RPORT=19379
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
wait_ready() {
  for _ in $(seq 200); do
    curl -sf -o /dev/null "http://127.0.0.1:$1/ready" && return
    sleep 0.05
  done
  echo "node on port $1 not ready" >&2
  exit 1
}

redis-server --bind 127.0.0.1 --port $RPORT --save '' --appendonly yes --appendfsync always \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p $RPORT ping >/dev/null 2>&1 && break; sleep 0.05; done

for port in 19181 19182 19183; do
  HERALD_DRAIN_GRACE_MS=0 "$HERALD" serve --listen 127.0.0.1:$port --redis redis://127.0.0.1:$RPORT \
    2>"$WORK/node-$port.log" &
  PIDS+=($!)
done
HERALD_DRAIN_GRACE_MS=0 "$HERALD" serve --listen 127.0.0.1:19184 --data-dir "$WORK/standalone" \
  2>"$WORK/standalone.log" &
PIDS+=($!)
for port in 19181 19182 19183 19184; do wait_ready $port; done

run() {
  local label=$1 pub=$2 sub=$3
  local cmd="herald bench cluster --publish-url http://127.0.0.1:$pub --subscribe-url http://127.0.0.1:$sub --subscribers $SUBS --rate $RATE --events $EVENTS"
  echo "== $label: $cmd" >&2
  local result
  result=$("$HERALD" bench cluster --publish-url "http://127.0.0.1:$pub" --subscribe-url "http://127.0.0.1:$sub" \
    --subscribers "$SUBS" --rate "$RATE" --events "$EVENTS" --timeout-s 300)
  echo "$result" >&2
  printf '{"label":"%s","command":"%s","result":%s}\n' "$label" "$cmd" "$result" >>"$OUT"
}
run "standalone node (embedded store)" 19184 19184
run "cluster, same node" 19181 19181
run "cluster, across nodes" 19181 19182
echo "results appended to $OUT" >&2
