#!/usr/bin/env bash
# CI on a schedule: re-sign the timestamp so agents keep trusting the current release. Run it more
# often than every channel's signingIntervalSeconds (docs/ci.md). Environment: TREE_DIR, RELEASE_KEY,
# NIXFLEET (default nixfleet), NOW (optional, ISO 8601).
set -euo pipefail
NIXFLEET=${NIXFLEET:-nixfleet}
: "${TREE_DIR:?set TREE_DIR}" "${RELEASE_KEY:?set RELEASE_KEY}"
args=(refresh --tree "$TREE_DIR" --release-key "$RELEASE_KEY" --json)
if [ -n "${NOW:-}" ]; then args+=(--now "$NOW"); fi
"$NIXFLEET" "${args[@]}"
