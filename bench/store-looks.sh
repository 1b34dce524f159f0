#!/bin/bash
# A verified-ack store re-opened per look against one renewed between looks (bench/support/store-looks.ts),
# interleaved: each round, each view, `reopen` then `renew`, each process over a fresh copy of a warm
# cache. docs/benchmarks.md "operator", "Session 10 (h-keep10)".
# usage (from the worktree root): bash bench/store-looks.sh DIR WARM_CACHE [ROUNDS] [N] [live]
#   DIR: a copy of the operator fixture (cp -r /work/fixtures/operator/10000 DIR); WARM_CACHE: a cache
#   directory warmed by looks of the three views at the fixture's instant (copied to DIR/cache per run).
set -e
dir=$1 warm=$2 rounds=${3:-3} n=${4:-7} live=${5:-}
floor() { for _ in 1 2 3 4 5; do s=$(date +%s%N); node -e 0; e=$(date +%s%N); echo -n "$(((e - s) / 1000000)) "; done; }
echo "floor (node -e 0, ms): $(floor); load: $(cat /proc/loadavg)"
for _ in $(seq "$rounds"); do
  for view in status host:host-0593 trace:host-0593; do
    for mode in reopen renew; do
      rm -rf "$dir/cache" && cp -a "$warm" "$dir/cache"
      node --import tsx bench/support/store-looks.ts "$dir" "$mode" "$view" "$n" $live
    done
  done
done
echo "floor (node -e 0, ms): $(floor); load: $(cat /proc/loadavg)"
