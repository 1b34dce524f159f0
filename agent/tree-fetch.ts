// The Fetch the verification workflow calls (protocol/verify/fetcher.ts), over the agent's mTLS client.
// Steady state must cost only 304s: when timestamp.json is unchanged (304) and the previous cycle fully
// verified exactly those bytes, everything the timestamp binds is unchanged too, so
//   - the revocations and the immutable release documents are served from the local cache (they are
//     verified again all the same, against the unchanged digests);
//   - the probe for a newer trust root is skipped: a signer that rotated the root re-signs the timestamp,
//     and a control plane could withhold the new root anyway (that is a freeze, which the timestamp's
//     expiry already bounds).
import { sha256Digest, TIMESTAMP_PATH, LIMITS, type Fetch } from '../protocol/index.ts';
import type { HttpCache } from './http-cache.ts';
import { NotFound, type HttpClient } from './http-client.ts';

export interface TreeFetch {
  fetch: Fetch;
  /** Digest of the timestamp bytes this cycle saw (record it once the cycle verified everything). */
  timestampDigest: string | undefined;
  steadyState: boolean;
}

export async function openTreeFetch(
  client: HttpClient,
  cache: HttpCache,
  lastVerifiedTimestamp: string | undefined,
): Promise<TreeFetch> {
  const before = client.stats.notModified;
  let timestamp: Uint8Array | undefined;
  try {
    timestamp = await client.get(TIMESTAMP_PATH, LIMITS.timestamp);
  } catch (e) {
    if (!(e instanceof NotFound)) throw e;
  }
  const timestampDigest = timestamp ? sha256Digest(timestamp) : undefined;
  const steadyState =
    timestamp !== undefined &&
    client.stats.notModified > before &&
    timestampDigest === lastVerifiedTimestamp;

  const fetch: Fetch = async (path, maxBytes) => {
    if (path === TIMESTAMP_PATH) return timestamp;
    if (steadyState) {
      if (path.startsWith('root/')) return undefined;
      if (
        path.startsWith('releases/') ||
        path === 'revocations.json' ||
        /^revocations[^/]*\.json$/.test(path)
      ) {
        const hit = cache.get(path);
        if (hit && hit.body.byteLength <= maxBytes) return hit.body;
      }
    }
    try {
      return await client.get(path, maxBytes);
    } catch (e) {
      if (e instanceof NotFound) return undefined;
      throw e;
    }
  };
  return { fetch, timestampDigest, steadyState };
}
