#!/usr/bin/env bash
# Publish throughput of two builds side by side, in both durability modes (BENCHMARKS.md,
# "Batched durability that survives kill -9"): each row runs on a fresh node of each build in
# turn, twice, alternating which build goes first, so the noisy machine hits both alike.
# Usage: deploy/bench/durability-ab.sh OLD_HERALD NEW_HERALD
set -euo pipefail
OLD=$1
NEW=$2
WORK=$(mktemp -d)
PORT=19400
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

start() { # start BIN MODE
  PORT=$((PORT + 1))
  env HERALD_DURABILITY="$2" "$1" serve --listen 127.0.0.1:$PORT --data-dir "$WORK/$PORT" 2>/dev/null &
  SERVER=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null && return; sleep 0.05; done
  echo "node did not start" >&2
  exit 1
}
stop() { kill -TERM "$SERVER"; wait "$SERVER" || true; }
FORMAT='
import json, sys
r = json.load(sys.stdin)
print("{:,.0f}/s (p99 {:.2f} ms)".format(r["events_per_s"], r["request_p99_ms"]))'
one() { # BIN MODE bench args...
  local bin=$1 mode=$2; shift 2
  start "$bin" "$mode"
  "$bin" bench publish "$@" --url "http://127.0.0.1:$PORT" | python3 -c "$FORMAT"
  stop
}

echo "| durability | command | old (run 1; run 2) | new (run 1; run 2) |"
echo "|---|---|---|---|"
for mode in always batched; do
  for args in "--events 2000 --batch 1 --concurrency 1" "--events 20000 --batch 1 --concurrency 64" \
    "--events 200000 --batch 100 --concurrency 8"; do
    # shellcheck disable=SC2086
    o1=$(one "$OLD" $mode $args); n1=$(one "$NEW" $mode $args)
    # shellcheck disable=SC2086
    n2=$(one "$NEW" $mode $args); o2=$(one "$OLD" $mode $args)
    echo "| $mode | \`herald bench publish $args\` | $o1; $o2 | $n1; $n2 |"
  done
done
