#!/usr/bin/env bash
# The shipped command's `site build` on a site-gen bench fixture, two checkouts side by side, interleaved:
# truly cold (empty cache dir, no site), cold site with the warm verification cache, and the next build
# (nothing changed), twice each. Wall, CPU (user + system, every thread) and max RSS from /usr/bin/time.
# Usage: bench/site-gen-cli.sh BEFORE_CHECKOUT AFTER_CHECKOUT FIXTURE_DIR
#   (each checkout built: node scripts/build.mjs; FIXTURE_DIR: SITE_GEN_BENCH_DIR/<hosts> of a kept
#   `SITE_GEN_BENCH_DIR=... node --import tsx bench/run.ts site-gen` run)
set -euo pipefail
before=$1 after=$2 fx=$3
now=$(node -e "console.log(new Date(require('$fx/fixture.json').now).toISOString())")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() { # label checkout cache out
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" node "$2/bin/nixfleet.js" site build --tree "$fx/tree" \
    --root "$fx/root.json" --out "$4" --cache-dir "$3" --now "$now" --json >"$work/out.json"
  read -r wall user sys rss <"$work/time"
  node -e '
    const [label, file, wall, user, sys, rss] = process.argv.slice(1);
    const r = JSON.parse(require("fs").readFileSync(file, "utf8"));
    const cpu = Math.round((+user + +sys) * 1000);
    console.log(`| ${label} | ${Math.round(+wall * 1000)} ms | ${cpu} ms | ${Math.round(rss / 1024)} MB | ${r.rendered ?? "-"} / ${r.written} | ${require("os").loadavg()[0].toFixed(1)} |`);
  ' "$1" "$work/out.json" "$wall" "$user" "$sys" "$rss"
}
echo '| build | wall | CPU | max RSS | pages rendered / written | load |'
echo '|---|---|---|---|---|---|'
for side in before after; do mkdir -p "$work/$side"; done
run 'before: truly cold' "$before" "$work/before/cache" "$work/before/a"
run 'after: truly cold' "$after" "$work/after/cache" "$work/after/a"
for n in b c; do
  run 'before: cold site, warm cache' "$before" "$work/before/cache" "$work/before/$n"
  run 'after: cold site, warm cache' "$after" "$work/after/cache" "$work/after/$n"
  run 'before: next, nothing changed' "$before" "$work/before/cache" "$work/before/$n"
  run 'after: next, nothing changed' "$after" "$work/after/cache" "$work/after/$n"
done
