#!/usr/bin/env bash
# CI: evaluate the fleet flake, build every host's system closure, copy the closures to the binary
# cache signed with the cache key, then sign and write the release with `nixfleet publish --flake`.
# Order matters: a release must never name a closure the cache does not have yet.
#
# Environment (see docs/ci.md):
#   FLAKE           the fleet flake (default: .)
#   FLEET_ATTR      its mkFleet output (default: fleet)
#   CONFIGS_ATTR    its NixOS configurations, named like the fleet's hosts (default: nixosConfigurations)
#   CACHE_URL       nix copy destination, e.g. file:///srv/nix-cache or s3://bucket?region=eu-west-1
#   CACHE_KEY_FILE  the cache's secret key (nix key generate-secret)
#   TREE_DIR        the published tree (kept between runs: versions must increase)
#   TRUST_DIR       trust directory with root/<n>.json
#   RELEASE_KEY     release private key file (nixfleet keygen)
#   NIXFLEET        the nixfleet command (default: nixfleet)
#   SOURCE          optional provenance signed into the release (e.g. the commit)
#   NOW             optional publish time (ISO 8601; default: the clock)
set -euo pipefail

FLAKE=${FLAKE:-.}
FLEET_ATTR=${FLEET_ATTR:-fleet}
CONFIGS_ATTR=${CONFIGS_ATTR:-nixosConfigurations}
NIXFLEET=${NIXFLEET:-nixfleet}
: "${CACHE_URL:?set CACHE_URL (where nix copy puts the closures)}"
: "${CACHE_KEY_FILE:?set CACHE_KEY_FILE (the cache signing key)}"
: "${TREE_DIR:?set TREE_DIR}" "${TRUST_DIR:?set TRUST_DIR}" "${RELEASE_KEY:?set RELEASE_KEY}"

# 1. Evaluate. mkFleet reports every violation here, before anything is built.
mapfile -t hosts < <(nix eval --raw "$FLAKE#$FLEET_ATTR" --apply 'f: builtins.concatStringsSep "\n" (builtins.attrNames f.hosts)')
mapfile -t targets < <(nix eval --raw "$FLAKE#$FLEET_ATTR" --apply 'f: builtins.concatStringsSep "\n" (map (h: h.target) (builtins.attrValues f.hosts))')
mapfile -t configs < <(nix eval --raw "$FLAKE#$CONFIGS_ATTR" --apply 'c: builtins.concatStringsSep "\n" (builtins.attrNames c)')

# 2. Build every host's system closure (a host whose target was built elsewhere has no configuration
#    here; its closure must already be in this store).
installables=()
for host in "${hosts[@]}"; do
  for config in "${configs[@]}"; do
    if [ "$host" = "$config" ]; then installables+=("$FLAKE#$CONFIGS_ATTR.\"$host\".config.system.build.toplevel"); fi
  done
done
if [ "${#installables[@]}" -gt 0 ]; then nix build --no-link "${installables[@]}"; fi
# Every target the release will name must now be a valid path (else: not built, not copyable).
nix path-info "${targets[@]}" >/dev/null

# 3. Copy the closures to the cache, signing them with the cache key (agents' Nix checks the signatures).
case "$CACHE_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
nix copy --to "${CACHE_URL}${sep}secret-key=${CACHE_KEY_FILE}" "${targets[@]}"

# 4. Sign and write the release (validates again, resolves waves, writes timestamp.json last).
args=(publish --flake "$FLAKE#$FLEET_ATTR" --tree "$TREE_DIR" --trust "$TRUST_DIR" --release-key "$RELEASE_KEY" --json)
if [ -n "${SOURCE:-}" ]; then args+=(--source "$SOURCE"); fi
if [ -n "${NOW:-}" ]; then args+=(--now "$NOW"); fi
"$NIXFLEET" "${args[@]}"
