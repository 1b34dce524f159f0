// What earlier runs verified of each wave's ack bundle, kept in the state directory, so a steady run
// (every bundle answered 304, so the very bytes of the last run) neither takes the bundle in again nor
// checks each peer's Ed25519 signature again: that work grows with the wave and was repeated every
// minute (issue 10; docs/benchmarks.md "agent-process").
//
// Why a hit is as good as the checks it spares (protocol/acks.ts verifyAck: the ack's fleet, the host
// key the signed plans name for its host, the signature under that key): an entry is keyed by the
// SHA-256 of the bundle's bytes, so its acks are exactly those the bytes carry, and their signatures
// were verified under the keys recorded with them. A hit is used only when the fleet is the verified
// release's and every recorded key is still the one the current plans name for that host; otherwise
// the bundle is taken in and verified whole, as without a memo. Entries that failed verification are
// kept as bytes and checked (and logged) again on every run: a new release may make them valid. What
// is done with the acks afterwards (the replay check against the highest ack seen, peer-ack-memory.ts)
// runs on every cycle, hit or not.
//
// The file is as trusted as the state directory's other private files (protocol/memo-file.ts: this
// user's own, not writable by others, no symlink, else ignored); a malformed or torn file is ignored
// whole; it holds the bundles the last run read, written atomically (0600) only when one changed.
import {
  readPrivateRecords,
  savePrivateRecords,
  sha256Digest,
  type BundledAck,
  type SignedAck,
} from '../protocol/index.ts';

export const ACK_BUNDLE_MEMO_FILE = 'ack-bundles-verified';
/** First line: the format, so a future layout is never misread. */
const HEADER = 'nixfleet ack-bundles v1';

export interface VerifiedBundle {
  /** SHA-256 of the bundle's bytes as served. */
  digest: string;
  fleet: string;
  /** Each ack that verified, with the host key it verified under. */
  verified: { source: string; hostKey: string; ack: SignedAck }[];
  /** Entries that did not verify: checked again on every run. */
  rejected: BundledAck[];
}

export class AckBundleMemo {
  private readonly now = new Map<string, VerifiedBundle>();
  private changed = false;

  constructor(private readonly earlier: ReadonlyMap<string, VerifiedBundle>) {}

  /**
   * What an earlier run verified of the bundle `file` with these bytes, if it still holds under this
   * fleet and these host keys (host -> base64 key, from the signed plans); undefined otherwise.
   */
  lookup(
    file: string,
    bytes: Uint8Array,
    fleet: string,
    hostKeys: ReadonlyMap<string, string>,
  ): VerifiedBundle | undefined {
    const e = this.earlier.get(file);
    if (e === undefined || e.fleet !== fleet || e.digest !== sha256Digest(bytes)) return undefined;
    for (const v of e.verified)
      if (v.ack.signed.fleet !== fleet || hostKeys.get(v.ack.signed.host) !== v.hostKey)
        return undefined;
    this.now.set(file, e);
    return e;
  }

  /** Records this run's verification of `file` (after a miss). */
  record(file: string, bytes: Uint8Array, entry: Omit<VerifiedBundle, 'digest'>): void {
    this.now.set(file, { digest: sha256Digest(bytes), ...entry });
    this.changed = true;
  }

  /** Keeps the bundles this run read, unless that is exactly what was read. Best effort. */
  save(dir: string, file: string): void {
    if (!this.changed && this.now.size === this.earlier.size) return;
    const records = [...this.now].map(([f, e]): [string, unknown] => [JSON.stringify(f), e]);
    savePrivateRecords(dir, file, HEADER, records);
  }
}

/** The memo in `file` (in the state directory `dir`); an unusable file gives an empty memo. */
export function readAckBundleMemo(dir: string, file: string): AckBundleMemo {
  return new AckBundleMemo(readEntries(dir, file));
}

/** Keys are JSON strings (the bundle's tree path); one malformed record and nothing is believed. */
function readEntries(dir: string, file: string): Map<string, VerifiedBundle> {
  const records = readPrivateRecords(
    dir,
    file,
    HEADER,
    (key, e) => typeof JSON.parse(key) === 'string' && shaped(e as VerifiedBundle),
  );
  return new Map(
    (records ?? []).map(([key, e]) => [JSON.parse(key) as string, e as VerifiedBundle]),
  );
}

function shaped(e: VerifiedBundle): boolean {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.digest === 'string' &&
    typeof e.fleet === 'string' &&
    Array.isArray(e.rejected) &&
    e.rejected.every((r) => typeof r?.source === 'string' && typeof r.canonical === 'string') &&
    Array.isArray(e.verified) &&
    e.verified.every(
      (v) =>
        typeof v?.source === 'string' &&
        typeof v.hostKey === 'string' &&
        typeof v.ack?.signed?.host === 'string' &&
        typeof v.ack.signed.fleet === 'string' &&
        Array.isArray(v.ack.signatures),
    )
  );
}
