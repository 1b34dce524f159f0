// What a release's binary cache URL may not say. The URL comes from the release (signed by the release
// key); which signatures Nix accepts for it comes from the trust root's cacheKeys. A store URL parameter
// that switches signature checking off would let the release key overrule the root's key role, so both
// the publisher (before signing) and the agent (before Nix runs) refuse it, with this one check.

/**
 * Store URL parameters that make Nix accept a substituter's paths without a trusted signature:
 * `?trusted=1` (`nix copy --from` ignores it, `nix-store --realise` does not).
 */
const TRUST_OVERRIDE_PARAMS = ['trusted'] as const;

/** The trust-override parameter a cache URL sets, or null. Names compare as Nix reads them (decoded). */
export function cacheUrlTrustOverride(url: string): string | null {
  const q = url.indexOf('?');
  if (q < 0) return null;
  for (const kv of url.slice(q + 1).split('&')) {
    const raw = kv.split('=')[0]!;
    let name: string;
    try {
      name = decodeURIComponent(raw);
    } catch {
      name = raw;
    }
    name = name.trim().toLowerCase();
    const hit = TRUST_OVERRIDE_PARAMS.find((p) => p === name);
    if (hit) return hit;
  }
  return null;
}

/** The sentence both refusals use. */
export function trustOverrideReason(param: string): string {
  return `the cache URL sets '${param}', which would let Nix accept paths no key of the trust root signed`;
}
