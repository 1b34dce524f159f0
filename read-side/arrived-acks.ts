// Acks verified as they arrive, for a long-running view server (cli/view-server.ts, cli/ack-intake.ts):
// the server learns from the watch on acks/hosts/ which latest-ack files the endpoint renamed into
// place, and takes just those in between requests (read, hashed, strict intake, the signature checked
// under the host key the last verified release names), so that a look meets a minute of new acks
// already verified. What it keeps is exactly what a persisted ack cache keeps (read-side/
// verified-cache.ts): the digest of bytes that passed strict intake, with the host key their signature
// verified under. A look's AckCache consults it as it consults those pairs (AckCache `arrived`): the
// look still stats and reads every file it reads, hashes it, and checks the ack's claims against its own
// walk's release; only bytes whose digest is kept here with the very key that release names for the
// host are spared the strict intake (a JSON.parse instead) and the signature check. A re-keyed host, a
// file rewritten since (another digest), anything missed or late: a miss, verified in full by the look.
//
// Files recalled by identity (ripen, fileAt): a look reads every file whose identity its scope's memo
// does not hold (read-side/ack-file-memo.ts), and a file that changed since that scope's last look is
// such a file. Once an arrived file is older than the racy margin, the intake stats it again and reads
// and hashes it after that stat; when its bytes are still the ones verified, its identity is kept with
// the ack, exactly as a look's memo would have remembered it (the argument at the top of
// ack-file-memo.ts), and a look whose memo lacks it recalls it from here instead of reading it.
import { basename } from 'node:path';
import { LIMITS, isVerificationError, readCappedFile, sha256Digest } from '../protocol/index.ts';
import type { AckRecord } from '../reconciler/index.ts';
import {
  RACY_MS,
  clearlyOlder,
  newestTime,
  racyCutoff,
  statFields,
  type VerifiedAckFile,
} from './ack-file-memo.ts';
import { statUnlessError } from './file-identity.ts';
import { AckCache, AckCollector, hostOfLatestAckFile, type AckTrust } from './acks.ts';

/** One file's ack verified as it arrived: its digest, the key it verified under, when (ms). */
interface Arrival {
  digest: string;
  hostKey: string;
  at: number;
  /** Its host and ack, while its identity may still be kept (ripen). */
  ack?: { host: string; signed: AckRecord; newestMs: number };
  /** The file with this identity holds exactly the verified bytes (ripen). */
  file?: VerifiedAckFile;
}

/** What one intake did (for the server's log). */
export interface IntakeCounts {
  /** Acks verified (their signatures checked here). */
  verified: number;
  /** Files refused (malformed, wrong host or fleet, a bad signature): left for the look to refuse. */
  refused: number;
  /**
   * Files not taken in: gone again, unreadable, of a host the release does not name, already kept, or
   * no release verified yet.
   */
  skipped: number;
}

/**
 * The acks verified as they arrived, by digest, one per latest-ack file (a file's newer ack replaces its
 * older one), so what is kept is bounded by the files in acks/hosts/; entries older than the views'
 * memory are dropped (forgetBefore).
 */
export class ArrivedAcks {
  private readonly byPath = new Map<string, Arrival>();
  private readonly byDigest = new Map<string, { hostKey: string; path: string }>();
  /** The trust of the last look's release (AckCache.usedUnder): the keys acks are verified under. */
  private trust: AckTrust | null = null;

  /** A look verifies under `trust` (a release it verified): the intake's keys from now on. */
  noteTrust(trust: AckTrust): void {
    this.trust = trust;
  }

  /** The host key the bytes with this digest verified under, if they arrived and verified. */
  hostKeyOf(digest: string): string | undefined {
    return this.byDigest.get(digest)?.hostKey;
  }

  /** Files whose ack is kept. */
  get size(): number {
    return this.byPath.size;
  }

  /** The file at `path` as verified when it arrived, with the identity it then had (ripen). */
  fileAt(path: string): VerifiedAckFile | undefined {
    return this.byPath.get(path)?.file;
  }

  /**
   * When the next file's identity may be kept (ms; null: none waits): its times then lie the racy
   * margin behind.
   */
  get nextRipeAt(): number | null {
    let next: number | null = null;
    for (const a of this.byPath.values())
      if (a.ack !== undefined && (next === null || a.ack.newestMs + RACY_MS < next))
        next = a.ack.newestMs + RACY_MS;
    return next === null ? null : next + 1;
  }

  /**
   * Keeps the identity of each arrived file whose times now lie the racy margin behind `startedAt`
   * (ms, taken before any stat): stat, then read and hash; the identity is kept only when the bytes
   * are still the ones verified. A file changed since is left (the watch names it again), one still
   * too new waits. Returns how many identities were kept.
   */
  ripen(startedAt: number): number {
    const cutoff = racyCutoff(startedAt);
    let kept = 0;
    for (const [path, a] of this.byPath) {
      if (a.ack === undefined || a.ack.newestMs >= cutoff) continue;
      const seen = statUnlessError(path) ?? null;
      if (seen !== null && !clearlyOlder(seen, cutoff)) {
        // Touched since it was read: its identity waits for these times to age (or the watch names it).
        a.ack.newestMs = newestTime(seen);
        continue;
      }
      const { host, signed } = a.ack;
      a.ack = undefined;
      const bytes = seen === null ? null : readLatestFile(path);
      if (bytes === null || sha256Digest(bytes) !== a.digest) continue;
      a.file = { ...statFields(seen!), path, digest: a.digest, host, hostKey: a.hostKey, signed };
      kept++;
    }
    return kept;
  }

  /**
   * Takes in the latest-ack files at `paths` (each `<acks/hosts>/<host>.json`, absolute): read (capped as
   * a look reads them), hashed, taken in strictly as `<host>`'s ack and verified in one batch by the
   * collector a look uses, under the release's key for the host. What verifies is kept by digest;
   * anything else is left for the look, which reads the file and decides as it always does.
   */
  takeIn(paths: Iterable<string>, now: number = Date.now()): IntakeCounts {
    const counts = { verified: 0, refused: 0, skipped: 0 };
    const trust = this.trust;
    const cache = new AckCache();
    const collector = trust && new AckCollector(trust, cache);
    const pathOf = new Map<string, string>();
    const newestOf = new Map<string, number>();
    for (const path of paths) {
      const host = hostOfFile(path);
      const hostKey = host === null ? undefined : trust?.hostKeys.get(host);
      // Its times as it is read (before the read): when its identity may be kept (ripen).
      // A file that cannot be stat-ed now (gone again, not a file, an error): the look meets it.
      const seen = hostKey === undefined ? null : (statUnlessError(path) ?? null);
      const bytes = seen === null ? null : readLatestFile(path);
      const digest = bytes === null ? null : sha256Digest(bytes);
      if (digest === null || this.byDigest.get(digest)?.hostKey === hostKey) {
        counts.skipped++;
        continue;
      }
      collector!.add(bytes!, path, host!, digest);
      pathOf.set(digest, path);
      newestOf.set(digest, newestTime(seen!));
    }
    if (collector === null || pathOf.size === 0) return counts;
    collector.result();
    const signedOf = new Map(collector.digests.map((d, i) => [d, collector.acks[i]!]));
    for (const [digest, hostKey] of cache.verifiedPairs()) {
      const path = pathOf.get(digest)!;
      const signed = signedOf.get(digest);
      // An ack whose claims this release refuses is kept by digest only (the look refuses it again).
      const ack =
        signed === undefined
          ? undefined
          : { host: hostOfFile(path)!, signed, newestMs: newestOf.get(digest)! };
      this.keep(path, { digest, hostKey, at: now, ack });
      counts.verified++;
    }
    counts.refused = pathOf.size - counts.verified;
    return counts;
  }

  /** Drops what arrived before `before` (ms): a view asked for since has used it. Returns how many. */
  forgetBefore(before: number): number {
    let dropped = 0;
    for (const [path, a] of this.byPath)
      if (a.at < before) {
        this.drop(path, a);
        dropped++;
      }
    return dropped;
  }

  private keep(path: string, a: Arrival): void {
    const older = this.byPath.get(path);
    if (older !== undefined) this.drop(path, older);
    this.byPath.set(path, a);
    this.byDigest.set(a.digest, { hostKey: a.hostKey, path });
  }

  private drop(path: string, a: Arrival): void {
    this.byPath.delete(path);
    if (this.byDigest.get(a.digest)?.path === path) this.byDigest.delete(a.digest);
  }
}

/** The host the latest-ack file at `path` is named after (null: not a latest-ack file's name). */
function hostOfFile(path: string): string | null {
  return hostOfLatestAckFile(basename(path));
}

/**
 * A latest-ack file's bytes as a look reads them, or null when they cannot be read now (gone again,
 * not a file, over the size limit): the look meets the file itself and reports it.
 */
function readLatestFile(path: string): Buffer | null {
  try {
    return readCappedFile(path, LIMITS.ack, path);
  } catch (e) {
    if (isVerificationError(e) || (e as NodeJS.ErrnoException).code !== undefined) return null;
    throw e;
  }
}
