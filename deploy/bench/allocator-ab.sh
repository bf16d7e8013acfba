#!/bin/bash
# Usage: build two herald binaries (e.g. with and without a #[global_allocator]) to /tmp/herald-glibc
# and /tmp/herald-mimalloc, then run this; each row alternates the two builds on fresh data dirs.
# A/B: the same herald bench rows against two builds, alternating.
ulimit -n $(ulimit -Hn)
for round in 1 2; do
for bin in glibc mimalloc; do
  B=/tmp/herald-$bin; D=$(mktemp -d)
  HERALD_DRAIN_GRACE_MS=0 HERALD_LIMITS_MAX_CLIENTS=100000 $B serve --listen 127.0.0.1:19310 --data-dir $D 2>/dev/null & P=$!
  sleep 1
  r=$(/tmp/herald-glibc bench replay --url http://127.0.0.1:19310 --events 300000 | python3 -c 'import sys,json; print(json.load(sys.stdin)["events_per_s"])')
  f=$(/tmp/herald-glibc bench fanout --url http://127.0.0.1:19310 --subscribers 1000 --rate 1000 --events 3000 --source-ips 4 | python3 -c 'import sys,json; r=json.load(sys.stdin); print(r["deliveries_per_s"], r["latency_p50_ms"], r["latency_p99_ms"], r["all_delivered"])')
  kill $P; wait $P 2>/dev/null; rm -rf $D
  D=$(mktemp -d)
  HERALD_DRAIN_GRACE_MS=0 HERALD_LIMITS_MAX_CLIENTS=100000 $B serve --listen 127.0.0.1:19310 --data-dir $D 2>/dev/null & P=$!
  sleep 1
  i=$(/tmp/herald-glibc bench idle --url http://127.0.0.1:19310 --subscribers 5000 --hold-s 3 --source-ips 4 | python3 -c 'import sys,json; r=json.load(sys.stdin); print({k:v for k,v in r.items() if "per" in k or "rss" in k})')
  kill $P; wait $P 2>/dev/null; rm -rf $D
  echo "$round $bin replay=$r fanout(1k subs x 1k/s)=$f idle5k=$i"
done; done
