#!/usr/bin/env bash
# Herald vs nginx + nchan, driven by the same `herald bench` client in the same run (BENCHMARKS.md).
#
# Usage: deploy/bench/side-by-side.sh [SECTION...]   (sections: idle fanout cluster; default all)
# Env:   HERALD=path/to/herald (default: builds target/release/herald once)
#        OUT=file.jsonl        (default: deploy/bench/results/side-by-side-DATE.jsonl)
#        IDLE="1000 10000 18000"  FANOUT="SUBS:RATE:EVENTS ..."   (the rows to run)
#
# Each idle row gets fresh servers (so the baseline memory is a fresh process); fan-out rows
# share one Herald and one nginx. Herald runs with its defaults (embedded store, durability
# "always": every publish fsynced before it is answered) plus max_clients raised; nginx + nchan
# with deploy/bench/nchan.conf. Needs nginx and libnginx-mod-nchan (apt), python3, curl.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -z "${HERALD:-}" ]]; then
  cargo build --release -p herald-cli
  HERALD=target/release/herald
fi
SECTIONS=${*:-idle fanout cluster}
IDLE=${IDLE:-1000 10000 18000}
FANOUT=${FANOUT:-1000:1000:10000 10000:100:2000 10000:200:4000}
mkdir -p deploy/bench/results
OUT=${OUT:-deploy/bench/results/side-by-side-$(date +%F).jsonl}
WORK=$(mktemp -d)
HPORT=19180
NPORT=19280
# Every stream is a file descriptor on both sides. Raise the soft limit to the hard one; on
# this machine the hard limit is 20000 and cannot be raised (no CAP_SYS_RESOURCE).
ulimit -n "$(ulimit -Hn)"
HERALD_PID=
NGINX_PID=
cleanup() {
  local rc=$?
  [[ -n $HERALD_PID ]] && kill "$HERALD_PID" 2>/dev/null || true
  [[ -n $NGINX_PID ]] && kill "$NGINX_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  if [[ $rc -ne 0 && -f $WORK/herald.log ]]; then
    cp "$WORK/herald.log" "$OUT.herald-failed.log" && echo "herald's log is kept in $OUT.herald-failed.log" >&2
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_port() { for _ in $(seq 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return; sleep 0.05; done; echo "port $1 did not open" >&2; exit 1; }

start_herald() {
  rm -rf "$WORK/herald-data"
  HERALD_LIMITS_MAX_CLIENTS=1000000 HERALD_DRAIN_GRACE_MS=0 \
    "$HERALD" serve --listen 127.0.0.1:$HPORT --data-dir "$WORK/herald-data" 2>"$WORK/herald.log" &
  HERALD_PID=$!
  wait_port $HPORT
}
start_nginx() {
  rm -rf "$WORK/nginx" && mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
  sed "s/__PORT__/$NPORT/" deploy/bench/nchan.conf >"$WORK/nginx/nginx.conf"
  nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
  NGINX_PID=$!
  wait_port $NPORT
}
stop_all() {
  kill "$HERALD_PID" "$NGINX_PID" 2>/dev/null || true
  wait "$HERALD_PID" "$NGINX_PID" 2>/dev/null || true
  HERALD_PID= NGINX_PID=
}

# bench TARGET SCENARIO ARGS...: one JSON line, appended to $OUT, echoed.
bench() {
  local target=$1 scenario=$2; shift 2
  local port=$HPORT; [[ $target == nchan ]] && port=$NPORT
  local line
  line=$("$HERALD" bench "$scenario" --target "$target" --url "http://127.0.0.1:$port" --source-ips 4 "$@")
  echo "$line" >>"$OUT"
  echo "$line"
}

# Prints a Markdown row comparing a herald and an nchan result (JSON lines on stdin).
ROW='
import json, sys
h, n = (json.loads(l) for l in sys.stdin.read().split("\n")[:2])
cmd = sys.argv[1]
if h["scenario"] == "idle":
    f = lambda r: "{:,.0f} B/stream (PSS {:,.0f}); {:,.1f} MiB total".format(r["rss_per_stream_bytes"], r["pss_per_stream_bytes"], r["pss_after_bytes"] / 2**20)
    ratio = n["pss_per_stream_bytes"] / max(h["pss_per_stream_bytes"], 1)
    print("| idle, {:,} streams | `{}` | {} | {} | nchan/Herald memory {:.2f}× |".format(h["streams"], cmd, f(h), f(n), ratio))
else:
    f = lambda r: "{:,.0f}/s, p50 {:.2f} ms, p99 {:.2f} ms, p99.9 {:.2f} ms{}".format(
        r["deliveries_per_s"], r["latency_p50_ms"], r["latency_p99_ms"], r["latency_p999_ms"],
        "" if r["all_delivered"] else " (**{:,} of {:,} delivered**)".format(r["deliveries"], r["expected_deliveries"]))
    ratio = h["deliveries_per_s"] / max(n["deliveries_per_s"], 1)
    print("| {}, {:,} subs × {:,} ev/s | `{}` | {} | {} | Herald/nchan deliveries {:.2f}× |".format(
        h["scenario"], h["subscribers"], h["rate"], cmd, f(h), f(n), ratio))
'
row() { # SCENARIO ARGS...: runs both targets, prints the Markdown row
  local h n
  h=$(bench herald "$@" | tail -1)
  n=$(bench nchan "$@" | tail -1)
  printf '%s\n%s\n' "$h" "$n" | python3 -c "$ROW" "herald bench $* --target T --url U --source-ips 4" | tee -a "$OUT.md"
}

echo "# $(date -Is) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT.md"
for section in $SECTIONS; do
  case $section in
  idle)
    for n in $IDLE; do
      start_herald; start_nginx
      row idle --subscribers "$n" --hold-s 5
      stop_all
    done ;;
  fanout)
    start_herald; start_nginx
    for spec in $FANOUT; do
      IFS=: read -r subs rate events <<<"$spec"
      row fanout --subscribers "$subs" --rate "$rate" --events "$events"
    done
    stop_all ;;
  cluster)
    # One node here: the single-node baseline of the cross-node scenario (both URLs the same).
    start_herald
    line=$("$HERALD" bench cluster --publish-url "http://127.0.0.1:$HPORT" --subscribe-url "http://127.0.0.1:$HPORT" \
      --subscribers 100 --rate 100 --events 1000)
    echo "$line" | tee -a "$OUT"
    stop_all ;;
  *) echo "unknown section $section" >&2; exit 2 ;;
  esac
done
