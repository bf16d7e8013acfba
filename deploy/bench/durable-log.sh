#!/usr/bin/env bash
# Durable-log benchmarks for BENCHMARKS.md: publish throughput (single, concurrent, batched;
# durability always and batched), replay catch-up (from the in-memory ring and from disk) and
# store size per event. Each row runs `herald bench` against a fresh node on 127.0.0.1.
# Usage: deploy/bench/durable-log.sh [path/to/herald]   (default: target/release/herald)
set -euo pipefail
HERALD=${1:-target/release/herald}
WORK=$(mktemp -d)
PORT=19100
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # start DIR [ENV=VALUE...]
  local dir=$1; shift
  PORT=$((PORT + 1))
  env "$@" "$HERALD" serve --listen 127.0.0.1:$PORT --data-dir "$WORK/$dir" 2>/dev/null &
  SERVER=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && return; sleep 0.05; done
  echo "node did not start" >&2; exit 1
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; }
FORMAT='
import json, sys
r = json.load(sys.stdin)
text = "{:,.0f} events/s".format(r["events_per_s"])
if "request_p50_ms" in r:
    text += ", request p50 {:.2f} ms, p99 {:.2f} ms".format(r["request_p50_ms"], r["request_p99_ms"])
print(text)'
row() { # label, bench args...
  local label=$1; shift
  local out; out=$("$HERALD" bench "$@" --url "http://127.0.0.1:$PORT")
  printf '| %s | `herald bench %s` | %s |\n' "$label" "$*" "$(echo "$out" | python3 -c "$FORMAT")"
}

echo "| case | command | result |"
echo "|---|---|---|"
start always
row "publish, 1 publisher, 1 event/request, durability always" publish --events 2000 --batch 1 --concurrency 1
row "publish, 64 publishers, 1 event/request, durability always" publish --events 20000 --batch 1 --concurrency 64
row "publish, 8 publishers, 100 events/request, durability always" publish --events 200000 --batch 100 --concurrency 8
row "publish, 4 publishers, 1000 events/request, durability always" publish --events 400000 --batch 1000 --concurrency 4
stop
bytes=$(du -sb "$WORK/always" | cut -f1)
printf '| store size | 622,000 events of 100-byte payloads | %s bytes/event |\n' $((bytes / 622000))
start batched HERALD_DURABILITY=batched
row "publish, 1 publisher, 1 event/request, durability batched" publish --events 2000 --batch 1 --concurrency 1
row "publish, 64 publishers, 1 event/request, durability batched" publish --events 20000 --batch 1 --concurrency 64
stop
start replay
row "replay 50k events (all in the in-memory ring)" replay --events 50000
row "replay 300k events (235k from disk, then the ring)" replay --events 300000
stop
