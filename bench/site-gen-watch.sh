#!/usr/bin/env bash
# `site watch`'s rebuild after one new ack, two checkouts side by side, interleaved, one process per
# run: bench/support/site-gen-watch-driver.ts bundled by esbuild with each checkout's site-gen and
# read-side (compiled code, as the shipped command runs): the store's start build, one new ack, the
# rebuild. Prints the rebuild's CPU (user + system, all threads) and wall time, pages rendered /
# written and the load average.
# Usage: bench/site-gen-watch.sh BEFORE_CHECKOUT AFTER_CHECKOUT FIXTURE_DIR [PAIRS]
#   (FIXTURE_DIR: SITE_GEN_BENCH_DIR/<hosts> of a kept `node --import tsx bench/run.ts site-gen` run,
#   whose cache/ holds the verified store it saved)
set -euo pipefail
before=$(cd "$1" && pwd) after=$(cd "$2" && pwd) fx=$3 pairs=${4:-3}
here="$(cd "$(dirname "$0")" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for side in before after; do
  checkout=$before
  [ "$side" = after ] && checkout=$after
  mkdir -p "$work/$side"
  cat >"$work/$side/entry.ts" <<TS
import * as build from '$checkout/site-gen/build.ts';
import * as ackFeed from '$checkout/site-gen/ack-feed.ts';
import * as model from '$checkout/site-gen/model.ts';
import * as load from '$checkout/read-side/load.ts';
import * as store from '$checkout/read-side/verified-cache.ts';
import { measureOneAck, type Checkout } from '$here/support/site-gen-watch-driver.ts';
const c = {
  build,
  AckFeed: ackFeed.AckFeed,
  ModelMemo: (model as Record<string, unknown>).ModelMemo,
  readPinnedRoot: load.readPinnedRoot,
  openVerifiedAckStore: store.openVerifiedAckStore,
} as unknown as Checkout;
await measureOneAck(c, process.argv[2]!, process.argv[3]!);
TS
  # Everything bundled (the checkout's node_modules resolve at bundle time); fsevents is macOS-only.
  (cd "$after" && npx esbuild "$work/$side/entry.ts" --bundle --platform=node --format=esm \
    --external:fsevents --log-level=error --outfile="$work/$side/bench.mjs" \
    --banner:js="import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);")
done
echo '| after one new ack | CPU | wall | pages rendered / written | load |'
echo '|---|---|---|---|---|'
for ((i = 1; i <= pairs; i++)); do
  for side in before after; do
    rm -rf "$work/site" "$work/.site.builds"
    load=$(cut -d' ' -f1 /proc/loadavg)
    node "$work/$side/bench.mjs" "$fx" "$work/site" | node -e '
      const [side, load] = process.argv.slice(1);
      const r = JSON.parse(require("fs").readFileSync(0, "utf8"));
      console.log(`| ${side} | ${r.cpuMs} ms | ${r.wallMs} ms | ${r.rendered} / ${r.written} | ${load} |`);
    ' "$side" "$load"
  done
done
