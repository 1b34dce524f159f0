// Acks as an operator reads them: from a tree's `acks/` (each host's latest ack and the per-wave
// bundles) or from the ack endpoint's append-only log (the full history). The control plane is not
// trusted, so every ack is verified against the host key of the SIGNED release before it counts; an
// ack that does not verify is never believed, only reported (with where it came from and why).
// One intake serves `nixfleet status` / `trace`, the demo and the dashboard (site-gen, whose watch mode
// keeps an AckCache between builds). Several logs (replicas of the ack endpoint) read into one
// collector are their union: an ack found in more than one is counted once. auditAckLogs checks every
// host's hash chain across such a union (`nixfleet verify --acks`).
import { closeSync, constants, fstatSync, openSync, readdirSync, statSync } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import {
  checkAckClaims,
  readCappedFile,
  readInto,
  readAck,
  readAckBundle,
  verifyAck,
  type AckTrust,
  type BundledAck,
  type SignedAck,
  AckLogCorrupt,
  auditAckChains,
  parseAckLog,
  type AckLink,
  type HostChainAudit,
  type LogRecord,
  ackLogPath,
  acksRoot,
  listAckFloors,
  listAckLogSegments,
  readAckFloor,
  type AckLogSegment,
  type ChainFloorHead,
  signedTextOf,
  keyIdOf,
  unb64,
  verifyBatch,
  verifyByChainTips,
  type ChainedSignatureJob,
  type SignatureJob,
  isVerificationError,
  Malformed,
  TooLarge,
  type VerificationCode,
  LIMITS,
  sha256Digest,
} from '../protocol/index.ts';
import { forkWinner, type AckRecord } from '../reconciler/index.ts';
import {
  identityOfStats,
  racyCutoff,
  repeatsDigest,
  type AckFileMemo,
  type Seen,
} from './ack-file-memo.ts';
import { installedStatHelper } from './stat-helper.ts';
import {
  beginsWithRecords,
  encodeLogPrefixIndex,
  isIndexOfStart,
  recordDigestsFrom,
  indexedRecordCount,
  IndexedRecords,
  DigestTable,
  type IndexedAck,
  type LogPrefixIndex,
  type StoredReplay,
} from './log-index.ts';
import type { ArrivedAcks } from './arrived-acks.ts';

export { hostKeysOfPlans, type AckTrust } from '../protocol/index.ts';

/** An ack log bigger than this is refused rather than read into memory whole. */
export const MAX_ACK_LOG_BYTES = 1024 * 1024 * 1024;
/** More files than this in acks/hosts/ is refused (one per host; far beyond any fleet). */
export const MAX_ACK_FILES = 1_000_000;

export interface AckRejection {
  /** Where the ack was found: a tree-relative file, `file#index` inside a bundle, or `log:line`. */
  source: string;
  /** The host the ack claims to be from, when it could be read at all. */
  host: string | null;
  /** A VerificationError code (BadSignature, WrongHost, WrongFleet, UnknownHost, Malformed, ...), or AckLogCorrupt. */
  code: VerificationCode | 'AckLogCorrupt';
  reason: string;
}

export interface VerifiedAcks {
  /** Every distinct verified ack (`.signed`), in the order found. Use latestAcks() for the newest per host. */
  acks: AckRecord[];
  rejected: AckRejection[];
}

/** Where a directory's acks live: `DIR/acks` in both layouts (the ack endpoint keeps them beside `current`). */
export function acksDirOf(dir: string): string {
  return acksRoot(dir);
}

/**
 * The ack endpoint's default log for a control plane directory, if one exists there: its oldest
 * segment present (acks.log unless archived), which every reader expands to all its segments.
 */
export function defaultAckLogOf(dir: string): string | null {
  return listAckLogSegments(ackLogPath(dir))[0]?.file ?? null;
}

/** Why an ack was refused, without where it was found (the same bytes may be found in several places). */
interface Refusal {
  code: VerificationCode;
  detail: string;
}

/**
 * Parsing (strict JSON + schema) and the signature check are pure functions of an ack's bytes (and the
 * host key), so their results can be kept by the bytes' digest. Within one intake this makes an ack
 * found twice (the log and the host's latest file) cost one parse; kept across the dashboard's watch
 * builds it makes a rebuild after one new ack parse and verify one ack. commit() ends a build and drops
 * whatever that build did not use, so the cache never outgrows what is on disk.
 */
export class AckCache {
  private parsed = new Map<string, SignedAck | Refusal>();
  private verified = new Map<string, true | Refusal>();
  private nextParsed = new Map<string, SignedAck | Refusal>();
  private nextVerified = new Map<string, true | Refusal>();
  /** Digest -> host key: bytes an earlier run took in strictly and verified (operator/verified-cache.ts). */
  private readonly earlier = new Map<string, string>();
  /** Digests of bytes another thread took in strictly for this build (primeTakenIn). */
  private readonly takenIn = new Set<string>();
  /** Earlier entries this build reused, and how many acks it verified itself. */
  private readonly reused = new Set<string>();
  private newlyVerified = 0;
  /** `digest|hostKey` pairs this build found verified by the intake of acks as they arrived (`arrived`). */
  private readonly fromArrived = new Set<string>();

  /**
   * `earlier`: (digest, host key) pairs an earlier run verified (a persisted cache). They spare the
   * signature check of exactly those bytes under exactly that key, and the strict intake of those
   * bytes (strict JSON + schema is a pure function of the bytes, which already passed it), never the
   * claims checked against the release. `arrived`: pairs a view server verified as the acks arrived
   * (read-side/arrived-acks.ts), consulted as `earlier` is; it learns the trust of every collector
   * that uses this cache (usedUnder), the keys it verifies new acks under.
   */
  constructor(
    earlier: Iterable<readonly [digest: string, hostKey: string]> = [],
    private readonly arrived?: ArrivedAcks,
  ) {
    for (const [digest, hostKey] of earlier) this.earlier.set(digest, hostKey);
  }

  /** A collector verifies this build's acks under `trust` (a verified release's): told to `arrived`. */
  usedUnder(trust: AckTrust): void {
    this.arrived?.noteTrust(trust);
  }

  /**
   * `bytes` is only called on a miss (a rebuild needs the bytes of new acks only); `text`, when the
   * caller holds the bytes as a string already (a log record), spares decoding them.
   */
  parse(
    digest: string,
    bytes: () => Uint8Array,
    source: string,
    text?: () => string,
  ): SignedAck | Refusal {
    let r = this.nextParsed.get(digest) ?? this.parsed.get(digest);
    if (
      r === undefined &&
      (this.earlier.has(digest) || this.takenIn.has(digest) || this.arrivedHas(digest))
    )
      r = decodeTakenIn(text ? text() : Buffer.from(bytes()).toString('utf8'));
    if (r === undefined) {
      try {
        r = readAck(bytes(), source);
      } catch (e) {
        if (!isVerificationError(e)) throw e;
        r = { code: e.code, detail: e.detail };
      }
    }
    this.nextParsed.set(digest, r);
    return r;
  }

  /** Nothing parsed nor verified earlier: the next intake takes every ack in (a truly cold build). */
  get cold(): boolean {
    return this.parsed.size === 0 && this.nextParsed.size === 0 && this.earlier.size === 0;
  }

  /**
   * Digests of ack bytes another thread took in strictly (readAck of exactly the UTF-8 bytes whose
   * SHA-256 is the digest, as parse() would on a miss, and they passed): parse() then only decodes
   * them, as it does bytes an earlier run took in. The claims and the signature are checked as for
   * any ack.
   */
  primeTakenIn(digests: Iterable<string>): void {
    for (const d of digests) this.takenIn.add(d);
  }

  verifiedResult(digest: string, hostKey: string): true | Refusal | undefined {
    if (this.earlier.get(digest) === hostKey) {
      this.reused.add(digest);
      return true;
    }
    const k = `${digest}|${hostKey}`;
    let r = this.nextVerified.get(k) ?? this.verified.get(k);
    if (r === undefined && this.arrived?.hostKeyOf(digest) === hostKey) {
      this.fromArrived.add(k);
      r = true;
    }
    if (r !== undefined) this.nextVerified.set(k, r);
    return r;
  }

  /** Whether the intake of arrived acks took these bytes in strictly (under whichever key). */
  private arrivedHas(digest: string): boolean {
    return this.arrived?.hostKeyOf(digest) !== undefined;
  }

  recordVerified(digest: string, hostKey: string, result: true | Refusal): void {
    if (result === true && this.reused.has(digest) && this.earlier.get(digest) === hostKey) return;
    // Verified as it arrived: already among this build's verified pairs (verifiedResult), not counted.
    if (result === true && this.fromArrived.has(`${digest}|${hostKey}`)) return;
    if (result === true) this.newlyVerified++;
    this.nextVerified.set(`${digest}|${hostKey}`, result);
  }

  /** The (digest, host key) pairs this build verified or reused as verified: what a persisted cache keeps. */
  verifiedPairs(): [digest: string, hostKey: string][] {
    const out: [string, string][] = [];
    for (const d of this.reused) out.push([d, this.earlier.get(d)!]);
    for (const [k, r] of this.nextVerified) {
      if (r !== true) continue;
      const bar = k.indexOf('|');
      const d = k.slice(0, bar);
      if (!this.reused.has(d)) out.push([d, k.slice(bar + 1)]);
    }
    return out;
  }

  /**
   * Acks this build verified itself (signature checked), earlier entries it reused, and acks it found
   * verified as they arrived (observability, tests).
   */
  get counts(): { verified: number; reused: number; arrived: number } {
    return {
      verified: this.newlyVerified,
      reused: this.reused.size,
      arrived: this.fromArrived.size,
    };
  }

  /** Whether verifiedPairs() differs from the earlier entries (something new verified, or some unused). */
  get changed(): boolean {
    return (
      this.newlyVerified > 0 || this.fromArrived.size > 0 || this.reused.size !== this.earlier.size
    );
  }

  /** Ends a build: keeps exactly what this build used. */
  commit(): void {
    this.parsed = this.nextParsed;
    this.verified = this.nextVerified;
    this.nextParsed = new Map();
    this.nextVerified = new Map();
    this.takenIn.clear();
  }

  /**
   * Lets go of the parsed acks (a one-shot build that takes none in again): a later parse of the same
   * bytes takes them in again; what was verified is kept.
   */
  forgetParsed(): void {
    this.parsed = new Map();
    this.nextParsed = new Map();
  }

  /** Distinct ack byte strings parsed (kept). */
  get size(): number {
    return Math.max(this.parsed.size, this.nextParsed.size);
  }
}

/**
 * The ack of bytes that passed the strict intake, from their text: `JSON.parse`, as the intake built it
 * from the same text. Undefined for text that begins with a BOM: the intake drops it when it decodes
 * the bytes, JSON.parse refuses it; such bytes are taken in again.
 */
function decodeTakenIn(text: string): SignedAck | undefined {
  return text.charCodeAt(0) === 0xfeff ? undefined : (JSON.parse(text) as SignedAck);
}

function isRefusal(r: SignedAck | Refusal): r is Refusal {
  return 'code' in r;
}

/** What checkAckClaims reads of an ack. */
type AckClaims = Parameters<typeof checkAckClaims>[0];

/** The records of one log-prefix index taken in without their acks (AckCollector.deferIndexed). */
export interface DeferredRecords {
  records: IndexedRecords;
  /** The records taken in (record numbers, log order): not seen before, their claims holding. */
  taken: Int32Array;
}

interface PendingAck {
  ack: SignedAck;
  digest: string;
  source: string;
  host: string;
  hostKey: string;
  /** Known from the cache: no signature check needed, no bytes kept. */
  known: true | Refusal | undefined;
  /**
   * Its bytes, for the signature check: a log record's are made from its text (UTF-8) only when
   * asked, and by chain tips only the acks checked are asked (a tip per host, ~10,000 of ~24,000 at
   * 10,000 hosts).
   */
  bytes: (() => Uint8Array) | null;
  /** Vouched for by an earlier verified read (a log prefix, a recalled file): not recorded in the ack cache. */
  fromPrefix?: true;
  /**
   * How many rejections were listed when it arrived: a refusal found by the batch is listed there, so
   * rejections keep the order their sources were read in (a reader that reads the log and the files
   * with two collectors lists them as one that reads both with one).
   */
  rejectedBefore: number;
}

/**
 * Collects acks from any number of sources, de-duplicated by their bytes, and verifies them in one batch
 * on every core when `result()` is called (a long ack log is mostly signature checks). The checks are
 * protocol/acks.ts verifyAck's, in its order: claims (fleet, host in a plan) on intake, signatures in the
 * batch. Only "accepted" is trusted from the batch; anything else goes through verifyAck, which gives
 * the typed error.
 */
export class AckCollector {
  /** Digest -> host of every ack taken in (parsed, of the host its file is named after). */
  private readonly seen = new Map<string, string>();
  private pending: PendingAck[] = [];
  private readonly keyIds = new Map<string, { keyid: string; publicKey: Uint8Array }>();
  private readonly cache: AckCache;
  readonly acks: AckRecord[] = [];
  /** The identity of each of `acks` (same index): for a log record, its chain digest. */
  readonly digests: string[] = [];
  /** The signed envelope of each of `acks` (same index): what an evidence bundle carries. */
  readonly envelopes: SignedAck[] = [];
  readonly rejected: AckRejection[] = [];

  /**
   * `cache`: results of earlier intakes to reuse (watch mode); the caller commits it. `seen`: the
   * identities another collector already took (so that two collectors read one after the other are
   * one intake: site-gen's watch mode keeps the log's collector between builds).
   */
  constructor(
    readonly trust: AckTrust,
    cache?: AckCache,
    seen: Iterable<readonly [id: string, host: string]> = [],
    /**
     * 'each' (default): every ack's signature is checked. 'chain-tips' (a view that only shows acks:
     * the dashboard): each host's chain tips are checked and the acks their `prev` links reach are
     * established by them (protocol verifyByChainTips); the claims are checked per ack either way.
     */
    private readonly signatures: AckSignatures = 'each',
  ) {
    this.cache = cache ?? new AckCache();
    this.cache.usedUnder(trust);
    for (const [id, host] of seen) this.seen.set(id, host);
  }

  /** The identity -> host of every ack added so far (verified, refused at its claims or pending). */
  get seenIds(): ReadonlyMap<string, string> {
    if (this.deferred.length === 0) return this.seen;
    const all = new Map(this.seen);
    for (const { records } of this.deferred)
      for (let n = 0; n < records.count; n++)
        if (!all.has(records.digest(n))) all.set(records.digest(n), records.host(n));
    return all;
  }

  /**
   * The host the ack with identity `id` was added as (seenIds) or a deferred index holds it as,
   * undefined: neither. An identity is the SHA-256 of the ack's bytes, which name its host: a per-host
   * file found here as another host's is refused as WrongHost by the caller (addSeenAgain).
   */
  seenHostOf(id: string): string | undefined {
    const seen = this.seen.get(id);
    if (seen !== undefined) return seen;
    const found = this.deferredRecord(id);
    return found === null ? undefined : found.records.host(found.n);
  }

  /** The first deferred indexed record with chain digest `digest` (its block's records, its number); null: none. */
  private deferredRecord(digest: string): { records: IndexedRecords; n: number } | null {
    const found = this.deferredDigests.find(digest);
    // Blocks are filed in the order they are listed in `deferred` (addIndexedRecords).
    return found === null ? null : { records: this.deferred[found.block]!.records, n: found.n };
  }

  /**
   * `expectedHost`: the host a per-host file is named after; its ack must be that host's. Returns the
   * ack's identity (the SHA-256 of its bytes): `seenIds` maps it to its host once it was taken in.
   */
  add(raw: Uint8Array | string, source: string, expectedHost?: string, digest?: string): string {
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    // The identity of exactly the bytes parsed and verified (what the cache results belong to); the
    // caller's `digest` is that SHA-256 when it has hashed the bytes already.
    const id = digest ?? sha256Digest(bytes);
    this.addIdentified(id, () => bytes, source, expectedHost);
    return id;
  }

  /**
   * A latest-ack file recalled with its verified ack (AckFileMemo): a full read
   * of exactly the bytes with digest `id` took them in strictly and verified `signed` as
   * the ack of `expectedHost` under `hostKey`. Taken in as add() takes those bytes, without their
   * intake and signature check, when the release still names that key for the host; false (nothing
   * taken in) when it names another, and then the file is to be read and verified as any file.
   * Its envelope is not known: a collector given one gives no envelopes (`replayOnly`).
   */
  addVerifiedFile(
    id: string,
    signed: AckRecord,
    hostKey: string,
    source: string,
    expectedHost: string,
  ): boolean {
    const seenHost = this.seenHostOf(id);
    if (seenHost !== undefined) {
      this.rejectIfNotExpected(source, seenHost, expectedHost);
      return true;
    }
    const planned = this.trust.hostKeys.get(expectedHost);
    if (planned !== undefined && planned !== hostKey) return false;
    this.seen.set(id, expectedHost);
    // The claims against this release, as add() checks them (the fleet, the host in a plan).
    if (this.claimsHold({ signed }, source, expectedHost) !== null)
      this.takeVerified(signed, id, source, expectedHost, hostKey);
    return true;
  }

  /**
   * A record of the ack log: parseAckLog has already checked its digest against the record's bytes.
   * Those bytes are the UTF-8 of `canonical` unless decoding replaced an invalid sequence (U+FFFD), so
   * the digest is reused, and the bytes rebuilt, only when needed (a cache miss, or its own signature
   * check: by chain tips, a tip's).
   */
  addLogRecord(record: LogRecord, source: string): void {
    if (record.canonical.includes('\uFFFD')) {
      this.add(record.canonical, source);
      return;
    }
    let bytes: Uint8Array | undefined;
    this.addIdentified(
      record.digest,
      () => (bytes ??= Buffer.from(record.canonical, 'utf8')),
      source,
      undefined,
      () => record.canonical,
    );
  }

  /**
   * A record of a verified log prefix (LogPrefixMemo): its bytes, under this trust, were taken in
   * strictly and their signature verified by an earlier read, and the prefix's digest says they are the
   * same bytes. Only the claims are checked again; the ack cache is not consulted (nor filled).
   */
  addVerifiedLogRecord(record: LogRecord, source: string): void {
    if (this.seenHostOf(record.digest) !== undefined) return;
    const ack = JSON.parse(record.canonical) as SignedAck;
    const host = ack.signed.host;
    this.seen.set(record.digest, host);
    const hostKey = this.claimsHold(ack, source, host);
    if (hostKey === null) return;
    this.queuePrefixAck(ack, record.digest, source, host, hostKey);
  }

  /** An ack of a verified log prefix, queued in log order behind what waits for the signature batch. */
  private queuePrefixAck(
    ack: SignedAck,
    digest: string,
    source: string,
    host: string,
    hostKey: string,
  ): void {
    this.pending.push({
      ack,
      digest,
      source,
      host,
      hostKey,
      known: true,
      bytes: null,
      fromPrefix: true,
      rejectedBefore: this.rejected.length,
    });
  }

  /**
   * A signed ack verified before and known without its envelope (an indexed log record, a recalled
   * verified file), its claims holding: taken in order now when nothing waits for the signature batch
   * before it (a one-host view recalls thousands and queues none), else queued behind it.
   */
  private takeVerified(
    signed: AckRecord,
    digest: string,
    source: string,
    host: string,
    hostKey: string,
  ): void {
    this.replayOnly = true;
    if (this.pending.length > 0) {
      this.queuePrefixAck({ signed, signatures: [] }, digest, source, host, hostKey);
      return;
    }
    this.acks.push(signed);
    this.digests.push(digest);
  }

  /**
   * An ack of a verified log prefix taken from its index (LogPrefixMemo.useIndexes): the signed ack a
   * full read of those bytes verified, without its signatures. Only the claims are checked again. Its
   * envelope is not known: a collector given one gives no envelopes (`replayOnly`).
   */
  addIndexedLogRecord(record: IndexedAck, source: string): void {
    if (this.seenHostOf(record.digest) !== undefined) return;
    const host = record.signed.host;
    this.seen.set(record.digest, host);
    // The claims read the signed part only: the record stands in for an envelope (no object per ack
    // for ~60,000 acks of a 10,000-host trace).
    const hostKey = this.claimsHold(record, source, host);
    if (hostKey !== null) this.takeVerified(record.signed, record.digest, source, host, hostKey);
  }

  /**
   * The records of a verified log prefix's index (LogPrefixMemo.useIndexes), taken in as
   * addIndexedLogRecord takes each; with `deferIndexed`, without building their acks: their digests
   * are seen and their claims checked from the index's host and fleet columns, and the records taken
   * are listed in `deferred` instead of `acks` (a trace builds the ones it replays).
   */
  addIndexedRecords(records: IndexedRecords, source: string): void {
    if (!this.deferIndexed) {
      for (let n = 0; n < records.count; n++)
        this.addIndexedLogRecord({ digest: records.digest(n), signed: records.ack(n) }, source);
      return;
    }
    // Seen are the block's records (seenHostOf looks them up among every block's); a record repeating
    // one of an earlier block or of its own, or an ack added before (a trace's log is read first), is
    // not taken again.
    const block = this.deferred.length;
    const repeats = this.deferredDigests.add(records.digests);
    // The acks added before looked up here, or this block's records there: whichever are fewer.
    if (this.seen.size <= records.count)
      for (const id of this.seen.keys()) {
        const found = this.deferredDigests.find(id);
        if (found !== null && found.block === block) repeats[found.n] = 1;
      }
    else
      for (let n = 0; n < records.count; n++)
        if (!repeats[n] && this.seen.has(records.digest(n))) repeats[n] = 1;
    // The claims of a host (value position) with the fleet they held with, checked once; a refusal
    // is checked (and listed) per record.
    const heldWith = new Int32Array(records.valueCount).fill(-1);
    const taken: number[] = [];
    for (let n = 0; n < records.count; n++) {
      if (repeats[n]) continue;
      const host = records.host(n);
      const h = records.hostPosition(n);
      if (heldWith[h] !== records.fleetPosition(n)) {
        const claims = { signed: { fleet: records.fleet(n), host } };
        if (this.claimsHold(claims, source, host) === null) continue;
        heldWith[h] = records.fleetPosition(n);
      }
      taken.push(n);
    }
    this.replayOnly = true;
    this.deferred.push({ records, taken: Int32Array.from(taken) });
  }

  /** Makes room for `records` more indexed records before their indexes are added (addIndexedRecords). */
  expectIndexedRecords(records: number): void {
    if (this.deferIndexed) this.deferredDigests.expect(records);
  }

  /** The ack of the deferred indexed record with chain digest `digest`, null: none. */
  deferredAck(digest: string): AckRecord | null {
    const found = this.deferredRecord(digest);
    return found === null ? null : found.records.ack(found.n);
  }

  /** addIndexedRecords leaves the acks of indexed records unbuilt (listed in `deferred`). */
  deferIndexed = false;
  /** With deferIndexed: the indexed records taken in, by index, in log order. */
  readonly deferred: DeferredRecords[] = [];
  /** The chain digests of every deferred block's records, as one lookup. */
  private readonly deferredDigests = new DigestTable();
  /**
   * With deferIndexed: identities of files read again after an indexed record gave them (their memo
   * settles with their acks: readAckHistory builds those).
   */
  readonly foundAgain: string[] = [];

  /**
   * Some acks came from a log-prefix index: `envelopes` no longer matches `acks` (the index keeps no
   * signatures); readAckHistory then gives none.
   */
  replayOnly = false;

  /** The ack's host key when its claims hold against the release (checkAckClaims); else rejected, null. */
  private claimsHold(ack: AckClaims, source: string, host: string): string | null {
    try {
      return checkAckClaims(ack, this.trust, source);
    } catch (e) {
      if (!isVerificationError(e)) throw e;
      this.reject(source, host, e.code, e.detail);
      return null;
    }
  }

  private addIdentified(
    id: string,
    bytes: () => Uint8Array,
    source: string,
    expectedHost?: string,
    text?: () => string,
  ): void {
    // The same ack is usually found twice (the log and the tree's latest ack): take it in once.
    if (this.addSeenAgain(id, source, expectedHost)) return;
    const parsed = this.cache.parse(id, bytes, source, text);
    if (isRefusal(parsed)) {
      this.reject(source, null, parsed.code, parsed.detail);
      return;
    }
    const ack = parsed;
    const host = ack.signed.host;
    if (expectedHost !== undefined && expectedHost !== host) {
      this.reject(source, host, 'WrongHost', `ack is for host ${host}, expected ${expectedHost}`);
      return;
    }
    this.seen.set(id, host);
    const hostKey = this.claimsHold(ack, source, host);
    if (hostKey === null) return;
    const known = this.cache.verifiedResult(id, hostKey);
    this.pending.push({
      ack,
      digest: id,
      source,
      host,
      hostKey,
      known,
      bytes: known === undefined ? bytes : null,
      rejectedBefore: this.rejected.length,
    });
  }

  /**
   * The bytes with identity `id` found again (at `source`, where `expectedHost`'s ack should be) when
   * they were taken in before: counted once, and refused as WrongHost when taken in as another host's.
   * False: not seen before (add() then takes them in).
   */
  addSeenAgain(id: string, source: string, expectedHost?: string): boolean {
    const seenHost = this.seenHostOf(id);
    if (seenHost === undefined) return false;
    this.rejectIfNotExpected(source, seenHost, expectedHost);
    if (this.deferIndexed && expectedHost !== undefined) this.foundAgain.push(id);
    return true;
  }

  /** An ack already taken in as `seenHost`'s, found again where `expectedHost`'s should be: WrongHost. */
  private rejectIfNotExpected(source: string, seenHost: string, expectedHost?: string): void {
    if (expectedHost !== undefined && expectedHost !== seenHost)
      this.reject(
        source,
        seenHost,
        'WrongHost',
        `ack is for host ${seenHost}, expected ${expectedHost}`,
      );
  }

  /** Verifies what was added since the last call and returns every verified ack and every rejection. */
  result(): VerifiedAcks {
    const pending = this.pending;
    this.pending = [];
    const chains = this.signatures === 'chain-tips';
    const jobs: ChainedSignatureJob[] = [];
    const jobOf = pending.map((p) => {
      if (p.known !== undefined || p.bytes === null) return -1;
      const sig = p.ack.signatures[0];
      if (p.ack.signatures.length !== 1 || sig === undefined) return -1;
      const key = this.keyOf(p.hostKey);
      const { bytes, ack } = p;
      // By chain tips, only the acks checked need their bytes and signed text (most are reached by a walk).
      const text = chains
        ? () => signedTextOf(bytes(), ack.signatures)
        : signedTextOf(bytes(), ack.signatures);
      if (sig.keyid !== key.keyid || text === undefined) return -1;
      jobs.push({
        publicKey: key.publicKey,
        message: text,
        signature: unb64(sig.sig),
        id: p.digest,
        prev: p.ack.signed.prev,
      });
      return jobs.length - 1;
    });
    const accepted = chains ? verifyByChainTips(jobs) : verifyBatch(jobs as SignatureJob[]);
    const refused: { at: number; rejection: AckRejection }[] = [];
    pending.forEach((p, i) => {
      const job = jobOf[i]!;
      let outcome = p.known;
      if (outcome === undefined && job >= 0 && accepted[job]) outcome = true;
      if (outcome === undefined) {
        try {
          verifyAck(p.ack, this.trust, p.source);
          outcome = true;
        } catch (e) {
          if (!isVerificationError(e)) throw e;
          outcome = { code: e.code, detail: e.detail };
        }
      }
      if (!p.fromPrefix) this.cache.recordVerified(p.digest, p.hostKey, outcome);
      if (outcome === true) {
        this.acks.push(p.ack.signed);
        this.digests.push(p.digest);
        this.envelopes.push(p.ack);
      } else
        refused.push({
          at: p.rejectedBefore,
          rejection: { source: p.source, host: p.host, code: outcome.code, reason: outcome.detail },
        });
    });
    this.listInArrivalOrder(refused);
    return { acks: this.acks, rejected: this.rejected };
  }

  /** Inserts the batch's refusals where their acks arrived among the rejections listed on intake. */
  private listInArrivalOrder(refused: readonly { at: number; rejection: AckRejection }[]): void {
    if (refused.length === 0) return;
    const merged: AckRejection[] = [];
    let next = 0;
    this.rejected.forEach((r, i) => {
      while (next < refused.length && refused[next]!.at <= i)
        merged.push(refused[next++]!.rejection);
      merged.push(r);
    });
    while (next < refused.length) merged.push(refused[next++]!.rejection);
    this.rejected.splice(0, this.rejected.length, ...merged);
  }

  private keyOf(hostKey: string): { keyid: string; publicKey: Uint8Array } {
    let k = this.keyIds.get(hostKey);
    if (k === undefined) {
      const publicKey = unb64(hostKey);
      this.keyIds.set(hostKey, (k = { keyid: keyIdOf(publicKey), publicKey }));
    }
    return k;
  }

  private reject(
    source: string,
    host: string | null,
    code: AckRejection['code'],
    reason: string,
  ): void {
    this.rejected.push({ source, host, code, reason });
  }
}

/** The last `windowBytes` of a file, starting at a record (line) boundary; `skipped`: bytes before it. */
function readTail(
  path: string,
  windowBytes: number,
  label: string,
): { bytes: Buffer; skipped: number } {
  const st = statSync(path);
  if (!st.isFile()) throw new Malformed(label, 'not a regular file');
  const start = Math.max(0, st.size - windowBytes);
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.alloc(st.size - start);
    const bytes = buf.subarray(0, readInto(fd, buf, start));
    if (start === 0) return { bytes, skipped: 0 };
    // Drop the partial first record.
    const lf = bytes.indexOf(0x0a);
    return lf < 0
      ? { bytes: Buffer.alloc(0), skipped: start + bytes.length }
      : { bytes: bytes.subarray(lf + 1), skipped: start + lf + 1 };
  } finally {
    closeSync(fd);
  }
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch (e) {
    if (
      (e as NodeJS.ErrnoException).code === 'ENOENT' ||
      (e as NodeJS.ErrnoException).code === 'ENOTDIR'
    )
      return [];
    throw e;
  }
}

export interface TreeAckOptions {
  /**
   * Read the per-wave bundles too (default true). The endpoint builds them from the same acks it writes
   * to acks/hosts/ and to its log, so a reader that has both may skip them.
   */
  bundles?: boolean;
  /**
   * Only these hosts' acks (a one-host view: read-side/scope.ts viewScope): their latest-ack files,
   * opened by name instead of listing acks/hosts/, and, from a log, only the records that claim one of
   * them (claimedHost). Default: every host's.
   */
  hosts?: ReadonlySet<string>;
  /**
   * How a latest-ack file is read (default: opened and read whole, capped at `maxBytes`). Watch mode
   * passes one that returns the bytes it read before while the file's metadata is unchanged
   * (site-gen/ack-feed.ts); the collector still checks every ack's bytes against its cache.
   */
  readFile?: (path: string, maxBytes: number, label: string) => Buffer;
  /**
   * The latest-ack files an earlier run read, by their identity (read-side/ack-file-memo.ts): a file
   * whose identity is unchanged is taken in from the memo without being read; the others are read
   * (through `readFile`) and remembered.
   */
  files?: AckFileMemo;
  /**
   * Latest-ack files another thread of this build read and hashed (site-gen ack-preparse.ts), by path
   * (the absolute `hosts` directory + "/" + name): without a `files` memo, a file whose digest is
   * that of an ack the collector already took in is not read again (the other thread's read is this
   * read; see takeLatestFile). Any other file is read here.
   */
  hashedFiles?: HashedFiles;
}

/** Path -> the SHA-256 and size of the bytes a latest-ack file held when another thread read it. */
export type HashedFiles = ReadonlyMap<string, { digest: string; size: number }>;

/**
 * The host a log record's ack claims, read from its bytes without parsing them, or null (then the record
 * is parsed and verified like any other). Only ever used to skip records of hosts a view does not read:
 * for an ack that verifies it is exactly signed.host, because the literal `"host":"` cannot occur inside
 * a JSON string (its quotes would be escaped) and the strict ack schema has no other key named host; an
 * ack whose bytes claim another host (or none) may be skipped, which is no more than a control plane
 * withholding it, and an ack counts only after it is verified as the host it names.
 */
export function claimedHost(body: Buffer): string | null {
  const at = body.indexOf(HOST_KEY);
  if (at < 0) return null;
  const start = at + HOST_KEY.length;
  const end = body.indexOf(0x22, start);
  if (end < 0) return null;
  const host = body.toString('latin1', start, end);
  // An escape (or any byte a host name cannot hold) and the claim is not read: parse it instead.
  return /^[A-Za-z0-9._-]+$/.test(host) ? host : null;
}
const HOST_KEY = Buffer.from('"host":"', 'latin1');

/** Whether a name in `acks/hosts/` is a host's latest-ack file (`<host>.json`; a dot file is not). */
export function isLatestAckFile(name: string): boolean {
  return name.endsWith('.json') && !name.startsWith('.');
}

/** The host a latest-ack file (isLatestAckFile) is named after: `<host>.json`; null for any other name. */
export function hostOfLatestAckFile(name: string): string | null {
  return isLatestAckFile(name) ? name.slice(0, -'.json'.length) : null;
}

/**
 * The acks an `acks/` directory holds: `hosts/<host>.json` (each host's latest) and
 * `channels/<ch>/wave-<i>.json` (bundles). Sources are named relative to the tree (`acks/...`).
 * Returns the number of latest-ack files found.
 */
export function collectTreeAcks(
  acksDir: string,
  collector: AckCollector,
  opts: TreeAckOptions = {},
): { latestFiles: number } {
  // A scoped read opens its hosts' files by name (host names are the signed plans' own); a missing one is no ack.
  const hostFiles = (
    opts.hosts === undefined
      ? listDir(join(acksDir, 'hosts'))
      : [...opts.hosts].sort().map((h) => `${h}.json`)
  ).filter(isLatestAckFile);
  if (hostFiles.length > MAX_ACK_FILES)
    throw new TooLarge(
      'acks/hosts',
      `${hostFiles.length} files, more than the limit of ${MAX_ACK_FILES}`,
    );
  let latestFiles = 0;
  // Each latest-ack file the collector took in as its host's, by host: a bundle made of exactly these
  // adds nothing (bundleRepeatsTakenFiles).
  const taken = new Map<string, TakenFile>();
  const readFile = opts.readFile ?? readCappedFile;
  const memo = opts.files;
  // Absolute: the memo remembers files by path.
  const hostsDir = resolve(acksDir, 'hosts');
  // A view server's looks take the identities at once, on two threads (read-side/stat-helper.ts).
  // Concatenated, not join()ed: each is one file name (from the directory, or a signed host name:
  // [a-z0-9-] only), and path.join's normalisation was ~3 % of a warm `status --host`.
  const paths = hostFiles.map((f) => `${hostsDir}/${f}`);
  const helper = installedStatHelper();
  if (memo !== undefined && helper !== null) memo.seeAhead(paths, helper);
  for (const [i, f] of hostFiles.entries()) {
    const source = `acks/hosts/${f}`;
    try {
      const host = hostOfLatestAckFile(f)!;
      const file = { path: paths[i]!, source, host };
      const t =
        takeHashedFile(file, collector, memo === undefined ? opts.hashedFiles : undefined) ??
        takeLatestFile(file, collector, memo, readFile);
      if (opts.bundles !== false && collector.seenHostOf(t.id) === host) taken.set(host, t);
      latestFiles++;
    } catch (e) {
      if (opts.hosts !== undefined && (e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      latestFiles++;
      if (!isVerificationError(e)) throw e;
      collector.rejected.push({ source, host: null, code: e.code, reason: e.detail });
    }
  }
  if (opts.bundles !== false) collectBundles(acksDir, collector, taken, memo);
  return { latestFiles };
}

/** A latest-ack file: where it is, its source name and the host it is named after. */
interface LatestFile {
  path: string;
  source: string;
  host: string;
}

/**
 * One latest-ack file taken in: recalled from the memo when its identity is unchanged (and its entry
 * holds under this release), else read, hashed and added (or, same bytes as its entry, taken from it).
 */
function takeLatestFile(
  file: LatestFile,
  collector: AckCollector,
  memo: AckFileMemo | undefined,
  readFile: NonNullable<TreeAckOptions['readFile']>,
): TakenFile {
  const { path, source, host } = file;
  let seen = memo?.recall(path);
  if (seen != null && 'verified' in seen) {
    const v = seen.verified;
    // Already given by a log read before: the file adds nothing (a memo entry without its ack is
    // taken in only so; see ack-file-memo.ts).
    const logged = collector.seenHostOf(v.digest) !== undefined;
    if (
      (logged || v.signed !== null) &&
      collector.addVerifiedFile(v.digest, v.signed!, v.hostKey, source, host)
    ) {
      memo!.keep(v, logged);
      // No bytes in memory: a changed bundle is compared with the file by its size and digest.
      return { id: v.digest, size: v.size, bytes: null };
    }
    seen = seen.seen;
  }
  const read = readFile(path, LIMITS.ack, source);
  const digest = sha256Digest(read);
  if (takeSameBytes(memo, collector, { ...file, seen: seen ?? null, digest }))
    return { id: digest, size: read.length, bytes: read };
  // Given before (by the log): its ack is not kept with the file (ack-file-memo.ts).
  const logged = collector.seenHostOf(digest) !== undefined;
  const id = collector.add(read, source, host, digest);
  memo?.remember(path, seen ?? null, id, host, logged);
  return { id, size: read.length, bytes: read };
}

/**
 * A latest-ack file another thread read and hashed for this build, when its bytes are those of an ack
 * the collector already took in (from the log: nearly every file): taken as add() takes those bytes
 * (seen already: the same ack, or WrongHost when it was taken in as another host's), without reading
 * them again. Reading them here would tell nothing more: the other thread's read is as much a moment
 * of the file as this thread's, and its digest names exactly the bytes it read. Null: not so, and the
 * file is read here.
 */
function takeHashedFile(
  file: LatestFile,
  collector: AckCollector,
  hashed: HashedFiles | undefined,
): TakenFile | null {
  const h = hashed?.get(file.path);
  if (h === undefined || !collector.addSeenAgain(h.digest, file.source, file.host)) return null;
  return { id: h.digest, size: h.size, bytes: null };
}

/**
 * A latest-ack file whose identity changed but whose bytes (their SHA-256: `digest`) are the very bytes
 * a memo entry was verified from: a tree copied or re-synced (new inodes, same bytes). Taken in as a
 * recalled file is: the release must still name the host key it was verified under and its claims
 * are checked again; the intake and signature check of those bytes are what the memo spares (as the
 * ack cache spares them by digest). Remembered under its new identity (racy rule). False: not so, and
 * the caller takes the bytes in as any read file (a changed byte is a changed digest).
 */
function takeSameBytes(
  memo: AckFileMemo | undefined,
  collector: AckCollector,
  file: LatestFile & { seen: Seen; digest: string },
): boolean {
  const same = memo?.sameBytes(file.path, file.digest);
  if (
    same == null ||
    collector.seenHostOf(same.digest) !== undefined ||
    !collector.addVerifiedFile(same.digest, same.signed, same.hostKey, file.source, file.host)
  )
    return false;
  memo!.keepReplaced(same, file.seen);
  return true;
}

/**
 * A latest-ack file taken in: its digest (`id`, the SHA-256 of its bytes), its size, and its bytes when
 * this run read them (null: recalled from the memo).
 */
interface TakenFile {
  id: string;
  size: number;
  bytes: Buffer | null;
}

/**
 * Where a bundle's entry at `at` ends when it is, byte for byte, `file` (bundleRepeatsTakenFiles); -1
 * when not. A recalled file's bytes are not in memory: the entry's bytes of the file's size must then
 * have the file's SHA-256 (its digest is of exactly the bytes that were verified), which is as good as
 * comparing them and spares reading again the files of every wave whose bundle changed.
 */
function repeatedFileEnd(bundle: Buffer, at: number, file: TakenFile): number {
  const end = at + file.size;
  if (end > bundle.length) return -1;
  const entry = bundle.subarray(at, end);
  const same = file.bytes !== null ? entry.equals(file.bytes) : sha256Digest(entry) === file.id;
  return same ? end : -1;
}

/**
 * The wave bundles: each read and verified in full unless it repeats the files taken in
 * (bundleRepeatsTakenFiles), or, with a memo, is a bundle found to repeat them before whose identity is
 * unchanged while those hosts' files still have the digests they had (then it is not even read).
 */
function collectBundles(
  acksDir: string,
  collector: AckCollector,
  taken: ReadonlyMap<string, TakenFile>,
  memo: AckFileMemo | undefined,
): void {
  const digestOf = (host: string) => taken.get(host)?.id ?? '-';
  const channelsDir = resolve(acksDir, 'channels');
  for (const ch of listDir(channelsDir)) {
    if (ch.startsWith('.')) continue;
    for (const f of listDir(join(channelsDir, ch))) {
      if (!/^wave-[0-9]+\.json$/.test(f)) continue;
      const source = `acks/channels/${ch}/${f}`;
      const path = join(channelsDir, ch, f);
      const seen = memo?.recallBundle(path);
      if (seen != null && 'bundle' in seen) {
        if (seen.bundle.repeats === repeatsDigest(seen.bundle.hosts, digestOf)) {
          memo!.keepBundle(seen.bundle);
          continue;
        }
      }
      let bundled: BundledAck[];
      try {
        const bytes = readCappedFile(path, LIMITS.ackBundle, source);
        const hosts = repeatedHosts(bytes, taken, source);
        if (hosts !== null) {
          const identity = seen != null && 'bundle' in seen ? seen.seen : (seen ?? null);
          memo?.rememberBundle(path, identity, hosts, repeatsDigest(hosts, digestOf));
          continue;
        }
        bundled = readAckBundle(bytes, source);
      } catch (e) {
        if (!isVerificationError(e)) throw e;
        collector.rejected.push({ source, host: null, code: e.code, reason: e.detail });
        continue;
      }
      for (const a of bundled) collector.add(a.canonical, a.source);
    }
  }
}

const BUNDLE_HEAD = Buffer.from('{"acks":[', 'latin1');
const COMMA = 0x2c;
const CLOSE_BRACKET = 0x5d;

/**
 * Whether a bundle adds nothing to the latest-ack files already taken in: its acks are, byte for byte,
 * files of `taken` (the endpoint builds a bundle by joining the wave's latest acks: control-plane/
 * ack-publisher.ts bundleJson), and the rest of it passes readAckBundle's strict intake. Then reading it
 * in full would only find acks the collector has seen (it counts an ack's bytes once), so it is
 * skipped: a status over 10,000 hosts is spared the strict intake and re-canonicalisation of megabytes
 * of bundles that repeat acks/hosts/. Anything else (a bundle lagging or ahead of the files by a flush,
 * another layout, a forged entry) is false, and the bundle is read and verified in full.
 */
export function bundleRepeatsTakenFiles(
  bundle: Buffer,
  taken: ReadonlyMap<string, Buffer>,
  source: string,
): boolean {
  const files = new Map<string, TakenFile>();
  for (const [h, bytes] of taken) files.set(h, { id: '', size: bytes.length, bytes });
  return repeatedHosts(bundle, files, source) !== null;
}

/** The hosts (in bundle order) whose files a bundle repeats, as bundleRepeatsTakenFiles; else null. */
function repeatedHosts(
  bundle: Buffer,
  taken: ReadonlyMap<string, TakenFile>,
  source: string,
): string[] | null {
  if (!bundle.subarray(0, BUNDLE_HEAD.length).equals(BUNDLE_HEAD)) return null;
  const hosts: string[] = [];
  let at = BUNDLE_HEAD.length;
  if (bundle[at] !== CLOSE_BRACKET)
    for (;;) {
      // The claimed host only picks the file to compare with; equal bytes are what counts.
      const host = claimedHost(bundle.subarray(at, at + LIMITS.ack));
      const file = host === null ? undefined : taken.get(host);
      const end = file === undefined ? -1 : repeatedFileEnd(bundle, at, file);
      if (end < 0) return null;
      hosts.push(host!);
      at = end;
      if (bundle[at] === CLOSE_BRACKET) break;
      if (bundle[at] !== COMMA) return null;
      at++;
    }
  try {
    // The bundle without its acks: every other field as strictly as readAckBundle takes the whole.
    const rest = Buffer.concat([BUNDLE_HEAD, bundle.subarray(at)]);
    return readAckBundle(rest, source).length === 0 ? hosts : null;
  } catch (e) {
    if (!isVerificationError(e)) throw e;
    return null;
  }
}

export interface AckLogOptions {
  /** How sources are named: `<label>:<line>` (default: the log's path). */
  label?: string;
  /**
   * Read only the newest this many bytes (from a record boundary) instead of refusing a log above
   * MAX_ACK_LOG_BYTES: a view that must stay bounded (the dashboard) shows recent history only.
   */
  windowBytes?: number;
  /**
   * A corrupt record followed by valid ones: 'throw' AckLogCorrupt (default, as the endpoint refuses
   * to open such a log), or 'reject': count no ack of the log and report the corruption as a rejection.
   */
  onCorrupt?: 'throw' | 'reject';
  /** Only the records claiming one of these hosts (claimedHost); the others are skipped unchecked. */
  hosts?: ReadonlySet<string>;
  /**
   * Verified prefixes of the log's segments remembered by an earlier read (a persisted memo:
   * read-side/verified-cache.ts): a segment whose remembered prefix still has the remembered digest is
   * taken in without checking its records' digests and signatures again; what this read verified is
   * proposed to the memo, and kept by settle() when none of its records was rejected.
   */
  prefixes?: LogPrefixMemo;
  /** Report where each segment's read ended (AckLogRead.ends: site-gen's watch mode reads on from there). */
  ends?: boolean;
}

/**
 * What one read of a log segment vouches for: its first `bytes` bytes (whole records) have the SHA-256
 * `digest`, and every record in them of the hosts the fingerprint covers passed its digest check, strict
 * intake and signature check under the trust the fingerprint covers (the fleet and those hosts' keys).
 */
export interface VerifiedLogPrefix {
  /** The segment file (absolute path). */
  file: string;
  /** trustFingerprint() of the read. */
  fingerprint: string;
  bytes: number;
  digest: string;
}

/**
 * The fleet and the host keys of the hosts a read takes in (all of the trust's when `hosts` is
 * undefined), as one digest: a verified prefix holds only under the same trust and the same selection
 * (a re-keyed host, another fleet or another scope is another fingerprint, so the prefix is read in full).
 */
export function trustFingerprint(trust: AckTrust, hosts?: ReadonlySet<string>): string {
  const names = [...(hosts ?? trust.hostKeys.keys())].sort();
  let text = `${trust.fleet}\n`;
  for (const h of names) text += `${h}\t${trust.hostKeys.get(h) ?? '-'}\n`;
  return sha256Digest(Buffer.from(text, 'utf8'));
}

/**
 * Verified log prefixes (VerifiedLogPrefix) by segment file: those an earlier read remembered, and those
 * this read proposes once its verdicts are in (settle). Saved: exactly what this read used or verified.
 *
 * With useIndexes() (a reader that needs only the signed acks: a trace's replay), each prefix also has
 * an index (read-side/log-index.ts): the acks a full read of it verified, in a compact form. A remembered
 * prefix whose digest still matches the bytes and whose index is exactly that prefix's is taken from the
 * index (its records are not split nor parsed again); settle() builds the index of each prefix it keeps.
 */
export class LogPrefixMemo {
  private earlier = new Map<string, VerifiedLogPrefix>();
  private now = new Map<string, VerifiedLogPrefix>();
  private proposed: { entry: VerifiedLogPrefix; source: string; records?: ProposedRecords }[] = [];
  private added = false;
  /** Segments taken in on a remembered prefix by this read (observability, tests). */
  hits = 0;
  private indexing = false;
  /** Whether prefixes are read through their indexes (useIndexes). */
  get readsIndexes(): boolean {
    return this.indexing;
  }
  private earlierIndexes = new Map<string, LogPrefixIndex>();
  private nowIndexes = new Map<string, LogPrefixIndex>();
  private indexAdded = false;
  /** Segments whose remembered prefix was taken from its index by this read (observability, tests). */
  indexHits = 0;
  /**
   * Of indexHits, those whose file had the index's identity (LogPrefixIndex.identity): the prefix's
   * SHA-256 was not recomputed (observability, tests).
   */
  identityHits = 0;
  /** Traces that resumed from a replay checkpoint kept with an index (read-side/trace-replay.ts; tests). */
  resumedReplays = 0;
  /** A segment file's identity is kept with its index only when its times are before this (ms). */
  get clearlyOlderThan(): number {
    return this.cutoff;
  }
  private cutoff: number;

  /**
   * `startedAt` (ms): the read's start, taken before any segment file is looked at (the racy rule of
   * read-side/ack-file-memo.ts: a change after it always gives a newer change time).
   */
  constructor(earlier: Iterable<VerifiedLogPrefix> = [], startedAt: number = Date.now()) {
    for (const e of earlier) this.earlier.set(e.file, e);
    this.cutoff = racyCutoff(startedAt);
  }

  /**
   * Serves a next read, which starts at `startedAt`, as the memo made from what this read's used()
   * gives (what the store saved: read-side/verified-cache.ts renew): the prefixes this read used or
   * verified become the remembered ones, the very entries.
   */
  renew(startedAt: number): void {
    this.earlier = this.now;
    this.restart(startedAt);
  }

  /**
   * Serves a read started at `startedAt` (its racy rule) from the remembered prefixes, as if nothing
   * had been read yet: what a read did since (renew or the constructor) is dropped, unsaved. Indexes
   * are not read until useIndexes() is called again (the store passes those it saved last).
   */
  restart(startedAt: number): void {
    this.now = new Map();
    this.proposed = [];
    this.added = false;
    this.indexing = false;
    this.earlierIndexes = new Map();
    this.nowIndexes = new Map();
    this.indexAdded = false;
    this.hits = this.indexHits = this.identityHits = this.resumedReplays = 0;
    this.cutoff = racyCutoff(startedAt);
  }

  /**
   * Whether an indexed prefix is remembered for segment `file` (absolute) under any trust: a reader
   * that will take its records from the index need not prepare their intake (site-gen ack-preparse.ts).
   */
  indexes(file: string): boolean {
    const e = this.earlier.get(file);
    return e !== undefined && this.indexOf(e) !== undefined;
  }

  /** The remembered prefix of `file` under `fingerprint`, if any. */
  get(file: string, fingerprint: string): VerifiedLogPrefix | undefined {
    const e = this.earlier.get(file);
    return e !== undefined && e.fingerprint === fingerprint ? e : undefined;
  }

  /**
   * Reads prefixes through their indexes (`earlier`: those a previous read saved) and builds the index
   * of every prefix kept. The history read then carries no envelopes (AckCollector.replayOnly).
   */
  useIndexes(earlier: Iterable<LogPrefixIndex>): void {
    this.indexing = true;
    for (const i of earlier) this.earlierIndexes.set(i.file, i);
  }

  /** The index of the remembered prefix `e`, when indexing and one was saved for exactly that prefix. */
  indexOf(e: VerifiedLogPrefix): LogPrefixIndex | undefined {
    if (!this.indexing) return undefined;
    const i = this.earlierIndexes.get(e.file);
    return i !== undefined &&
      i.fingerprint === e.fingerprint &&
      i.bytes === e.bytes &&
      i.digest === e.digest
      ? i
      : undefined;
  }

  /**
   * A prefix this read verified; kept by settle() unless a record read as `source:<line>` was rejected.
   * `records`: the identities of the records it holds (log order) and its line count, for its index.
   */
  propose(entry: VerifiedLogPrefix, source: string, records?: ProposedRecords): void {
    this.proposed.push({ entry, source, ...(records === undefined ? {} : { records }) });
  }

  /**
   * After the collector's result(): keep each proposed prefix none of whose records was rejected, and
   * (indexing) its index, from `ackOf` (the verified ack of an identity, null: not verified).
   */
  settle(
    rejected: readonly AckRejection[],
    ackOf?: () => (digest: string) => AckRecord | null,
  ): void {
    let lookup: ((digest: string) => AckRecord | null) | undefined;
    for (const { entry, source, records } of this.proposed) {
      const refused = rejected.some(
        (r) => r.source === source || r.source.startsWith(`${source}:`),
      );
      if (refused) continue;
      const before = this.earlier.get(entry.file);
      if (
        before === undefined ||
        before.fingerprint !== entry.fingerprint ||
        before.bytes !== entry.bytes ||
        before.digest !== entry.digest
      )
        this.added = true;
      this.now.set(entry.file, entry);
      if (!this.indexing || records === undefined || ackOf === undefined) continue;
      const same = this.indexOf(entry);
      if (same !== undefined) {
        // The same prefix, seen in a file whose identity is now clearly old: kept with it, so that the
        // next read need not hash the prefix while the file keeps it.
        const identity = records.identity;
        if (identity === undefined || identity === same.identity)
          this.nowIndexes.set(entry.file, same);
        else {
          this.nowIndexes.set(entry.file, { ...same, identity });
          this.indexAdded = true;
        }
        continue;
      }
      lookup ??= ackOf();
      const index = buildIndex(entry, records, lookup, this.earlierIndexes.get(entry.file));
      if (index !== null) {
        this.nowIndexes.set(entry.file, index);
        this.indexAdded = true;
      }
    }
    this.proposed = [];
  }

  /** Whether used() differs from what was read. */
  get changed(): boolean {
    return this.added || this.now.size !== this.earlier.size;
  }

  used(): VerifiedLogPrefix[] {
    return [...this.now.values()];
  }

  /** Whether usedIndexes() differs from the indexes read. */
  get indexesChanged(): boolean {
    return this.indexAdded || this.nowIndexes.size !== this.earlierIndexes.size;
  }

  /** The indexes of the prefixes this read kept: what to save. */
  usedIndexes(): LogPrefixIndex[] {
    return [...this.nowIndexes.values()];
  }

  /**
   * Keeps the replay checkpoints of a trace (`key`) of the records of `read` (the index they were taken
   * from) with the index kept for that segment, when that one begins with the records they cover (the
   * same index, or one extended by the records after it); they replace that key's, newest key first, at
   * most MAX_REPLAYS per index. Nothing is rewritten when they are that key's already.
   */
  keepReplays(read: LogPrefixIndex, key: string, replays: StoredReplay[]): void {
    const kept = this.nowIndexes.get(read.file);
    if (kept === undefined || !replays.every((r) => beginsWithRecords(kept, read, r.records)))
      return;
    const before = (kept.replays ?? []).filter((r) => r.key === key);
    if (JSON.stringify(before) === JSON.stringify(replays)) return;
    const others = (kept.replays ?? []).filter((r) => r.key !== key);
    this.nowIndexes.set(read.file, {
      ...kept,
      replays: [...replays, ...others].slice(0, MAX_REPLAYS),
    });
    this.indexAdded = true;
  }
}

/** Replay checkpoints kept per index (LogPrefixMemo.keepReplays): traces of a few hosts of one scope. */
const MAX_REPLAYS = 8;

/** What a proposed prefix holds, for its index: its records' identities (log order), its line count. */
export interface ProposedRecords {
  /** The index the read took the prefix's first records from (their digests are its own). */
  indexed?: LogPrefixIndex;
  /**
   * The identities of the records after `indexed`'s (all, without one); listed only when an index is
   * built (a warm read of an unchanged prefix builds none).
   */
  digests: () => string[];
  lines: number;
  /** The hosts the read took in (its fingerprint's); undefined: every host of the trust. */
  hosts: ReadonlySet<string> | undefined;
  /** The segment file's identity when this read saw it clearly older than itself (LogPrefixIndex.identity). */
  identity?: string;
}

/**
 * The index of a kept prefix; null when one of its records has no verified ack of a host the
 * fingerprint covers (then it is read in full next time, as without an index).
 */
function buildIndex(
  entry: VerifiedLogPrefix,
  records: ProposedRecords,
  ackOf: (digest: string) => AckRecord | null,
  earlier: LogPrefixIndex | undefined,
): LogPrefixIndex | null {
  // The index this read took the prefix from, when the new prefix extends it: only the records
  // after it are encoded (compared as the indexes' digest bytes, no string per indexed record).
  const digests = records.digests();
  const base =
    earlier !== undefined && isIndexOfStart(earlier, entry.fingerprint, records.indexed, digests)
      ? earlier
      : undefined;
  const acks: IndexedAck[] = [];
  const from = base === undefined ? 0 : indexedRecordCount(base);
  for (const digest of recordDigestsFrom(records.indexed, digests, from)) {
    const signed = ackOf(digest);
    if (signed === null || (records.hosts !== undefined && !records.hosts.has(signed.host)))
      return null;
    acks.push({ digest, signed });
  }
  return encodeLogPrefixIndex(
    {
      ...entry,
      lines: records.lines,
      ...(records.identity === undefined ? {} : { identity: records.identity }),
    },
    acks,
    base,
  );
}

/**
 * The verified prefix of one segment's bytes to trust (none: 0 bytes): the remembered one when the
 * bytes still begin with exactly it. `hash` is left holding those bytes, to be extended to what this
 * read verifies. `changed`: a remembered prefix that no longer matches (the hash must start afresh).
 */
function checkedPrefix(
  memo: LogPrefixMemo,
  file: string,
  fingerprint: string,
  bytes: Buffer,
  hash: Hash,
): { bytes: number; changed?: true } {
  const e = memo.get(file, fingerprint);
  if (e === undefined || e.bytes > bytes.length || e.bytes === 0) return { bytes: 0 };
  hash.update(bytes.subarray(0, e.bytes));
  if (`sha256:${hash.copy().digest('hex')}` !== e.digest) {
    // Changed, truncated or tampered: nothing of it is believed; start the digest afresh.
    return { bytes: 0, changed: true };
  }
  memo.hits++;
  return { bytes: e.bytes };
}

export interface AckLogRead {
  records: number;
  /** Segment files read (protocol listAckLogSegments). */
  segments: number;
  /** A torn tail (a crash mid-append, never acknowledged): skipped. */
  tornBytes: number;
  /** Older records outside `windowBytes`: not read. */
  skippedBytes: number;
  corrupt: boolean;
  /**
   * With AckLogOptions.ends: each segment read and the offset just past its last complete record,
   * where a later read of what was appended since starts (empty for a corrupt log).
   */
  ends?: { file: string; end: number; records: number }[];
}

/** A segment read as it is stored: its bytes (all, a window's tail, or after an indexed prefix). */
interface SegmentBytes {
  file: string;
  bytes: Buffer;
  skipped: number;
  /** `bytes` follow a verified prefix whose acks are its index's (readAfterIndexedPrefix). */
  indexed?: IndexedPrefix;
}

/**
 * The bytes to read of each segment, oldest first: all of them (refused above MAX_ACK_LOG_BYTES in
 * all), or the newest `windowBytes` across segments (whole newer segments, the oldest one's tail).
 * With `prefixes` reading indexes, a segment whose verified prefix has one: only the bytes after it.
 */
function readSegments(
  segments: AckLogSegment[],
  windowBytes: number | undefined,
  prefixes: { memo: LogPrefixMemo; fingerprint: string } | null,
): SegmentBytes[] {
  if (windowBytes === undefined) {
    let total = 0;
    return segments.map(({ file }): SegmentBytes => {
      const indexed =
        prefixes?.memo.readsIndexes === true
          ? readAfterIndexedPrefix(
              file,
              prefixes.memo,
              prefixes.fingerprint,
              MAX_ACK_LOG_BYTES - total,
            )
          : null;
      if (indexed !== null) {
        total += indexed.rest.length;
        return { file, bytes: indexed.rest, skipped: 0, indexed };
      }
      const bytes = readCappedFile(file, MAX_ACK_LOG_BYTES - total, file);
      total += bytes.length;
      return { file, bytes, skipped: 0 };
    });
  }
  const out: { file: string; bytes: Buffer; skipped: number }[] = [];
  let left = windowBytes;
  for (const { file } of [...segments].reverse()) {
    const r =
      left > 0
        ? readTail(file, left, file)
        : { bytes: Buffer.alloc(0), skipped: statSync(file).size };
    left -= r.bytes.length + r.skipped;
    out.unshift({ file, ...r });
  }
  return out;
}

/**
 * Every ack of an ack endpoint log: every segment of it (protocol listAckLogSegments: `logFile` is
 * the log's directory, one of its segments, or a single-file log). A torn tail is skipped; a corrupt
 * record followed by valid ones is handled as `onCorrupt` says.
 */
export function collectAckLog(
  logFile: string,
  collector: AckCollector,
  opts: AckLogOptions = {},
): AckLogRead {
  const label = opts.label ?? logFile;
  const listed = listAckLogSegments(logFile);
  // None listed: read the path itself, so a missing or odd file fails as it always did.
  const segments = listed.length > 0 ? listed : [{ index: 0, file: logFile }];
  // A remembered prefix is only for whole segments read from their start (not a window's tail).
  const memo = opts.windowBytes === undefined ? opts.prefixes : undefined;
  const prefixes =
    memo === undefined
      ? null
      : { memo, fingerprint: trustFingerprint(collector.trust, opts.hosts) };
  const read = readSegments(segments, opts.windowBytes, prefixes);
  const skipped = read.reduce((n, r) => n + r.skipped, 0);
  let parsed;
  try {
    parsed = read.map((r) => parseSegment(r, opts.hosts, prefixes));
  } catch (e) {
    if (!(e instanceof AckLogCorrupt) || opts.onCorrupt !== 'reject') throw e;
    collector.rejected.push({
      source: label,
      host: null,
      code: 'AckLogCorrupt',
      reason: `${e.message}; no ack of this log is counted`,
    });
    return {
      records: 0,
      segments: segments.length,
      tornBytes: 0,
      skippedBytes: skipped,
      corrupt: true,
      ...(opts.ends ? { ends: [] } : {}),
    };
  }
  let records = 0;
  let tornBytes = 0;
  collector.expectIndexedRecords(parsed.reduce((n, p) => n + (p.indexed?.count ?? 0), 0));
  for (const p of parsed) {
    // One segment: sources read `<label>:<line>` as before segments; several: per segment file.
    const source = parsed.length === 1 ? label : `${label}[${basename(p.file)}]`;
    takeSegment(p, source, collector);
    if (prefixes !== null && p.validBytes > 0) proposePrefix(p, source, prefixes, opts.hosts);
    records += p.records.length + (p.indexed?.count ?? 0);
    tornBytes += p.tornBytes;
  }
  const ends = parsed.map((p, i) => ({
    file: p.file,
    end: read[i]!.skipped + p.validBytes,
    records: p.records.length,
  }));
  return {
    records,
    segments: segments.length,
    tornBytes,
    skippedBytes: skipped,
    corrupt: false,
    ...(opts.ends ? { ends } : {}),
  };
}

type ParsedSegment = ReturnType<typeof parseSegment>;

/** A segment's acks into the collector: its indexed prefix's, then its records, each named `source:<line>`. */
function takeSegment(p: ParsedSegment, source: string, collector: AckCollector): void {
  // An indexed prefix's acks have no line numbers: a claim refused among them names the prefix.
  if (p.indexed !== null) collector.addIndexedRecords(p.indexed, `${source}:indexed-prefix`);
  const checked = p.checkedRecords ?? 0;
  p.records.forEach((r, i) => {
    const at = `${source}:${p.lines === undefined ? i + 1 : p.lines[i]}`;
    if (i < checked) collector.addVerifiedLogRecord(r, at);
    else collector.addLogRecord(r, at);
  });
}

/** Proposes what this read verified of a segment (and, reading indexes, what its index holds). */
function proposePrefix(
  p: ParsedSegment,
  source: string,
  prefixes: { memo: LogPrefixMemo; fingerprint: string },
  hosts: ReadonlySet<string> | undefined,
): void {
  prefixes.memo.propose(
    {
      file: resolve(p.file),
      fingerprint: prefixes.fingerprint,
      bytes: p.validBytes,
      digest: p.digest(),
    },
    source,
    prefixes.memo.readsIndexes
      ? {
          ...(p.indexed === null ? {} : { indexed: p.indexed.index }),
          digests: () => p.records.map((r) => r.digest),
          lines: p.validLines,
          hosts,
          ...(p.identity === undefined ? {} : { identity: p.identity }),
        }
      : undefined,
  );
}

/** A verified prefix taken from its index, and the bytes of the segment after it. */
interface IndexedPrefix {
  entry: VerifiedLogPrefix;
  index: LogPrefixIndex;
  records: IndexedRecords;
  /**
   * The SHA-256 of the prefix, to be extended to what this read verifies; null: the file still has the
   * index's identity and nothing after the prefix (its digest is the remembered one).
   */
  hash: Hash | null;
  rest: Buffer;
  /** The file's identity, when clearly older than this read (kept with the index). */
  identity?: string;
}

/** Bytes hashed at a time: the prefix is never held whole (at 100,000 hosts it is ~770 MB). */
const HASH_CHUNK = 4 * 1024 * 1024;

/**
 * The remembered verified prefix of segment `file` when it has an index (LogPrefixMemo.indexOf) and
 * the file still begins with exactly that prefix: its SHA-256 is computed reading the prefix in chunks
 * (its records are neither kept nor split: the index holds their acks), then only the bytes after it
 * are read, at most `maxBytes`. null: no index applies (the segment is read whole, as without one).
 *
 * A file that still has the identity kept with the index (device, inode, size, both times: see
 * LogPrefixIndex.identity) and is exactly the prefix long has not been written since a read checked
 * those bytes: the SHA-256 is not recomputed (docs/architecture.md "Log-prefix indexes"). An append,
 * a rewritten byte or a truncation moves its change time (and the first two its size), so it is hashed.
 */
function readAfterIndexedPrefix(
  file: string,
  memo: LogPrefixMemo,
  fingerprint: string,
  maxBytes: number,
): IndexedPrefix | null {
  const entry = memo.get(resolve(file), fingerprint);
  const index = entry === undefined ? undefined : memo.indexOf(entry);
  if (entry === undefined || index === undefined || entry.bytes === 0) return null;
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size < entry.bytes) return null;
    if (st.size - entry.bytes > maxBytes)
      throw new TooLarge(file, `${st.size - entry.bytes} bytes exceeds the limit of ${maxBytes}`);
    const { identity, newestMs } = identityOfStats(st);
    const unchanged = index.identity === identity && st.size === entry.bytes;
    let hash: Hash | null = null;
    if (!unchanged) {
      hash = createHash('sha256');
      const chunk = Buffer.allocUnsafe(Math.min(entry.bytes, HASH_CHUNK));
      for (let at = 0; at < entry.bytes;) {
        const n = readInto(fd, chunk.subarray(0, Math.min(chunk.length, entry.bytes - at)), at);
        if (n === 0) return null;
        hash.update(chunk.subarray(0, n));
        at += n;
      }
      // Changed, truncated or tampered: nothing of it is believed (read whole, as without an index).
      if (`sha256:${hash.copy().digest('hex')}` !== entry.digest) return null;
    }
    const records = IndexedRecords.open(index);
    if (records === null) return null;
    const rest = Buffer.allocUnsafe(st.size - entry.bytes);
    const n = readInto(fd, rest, entry.bytes);
    memo.hits++;
    memo.indexHits++;
    if (unchanged) memo.identityHits++;
    // Kept with the index only when no change can still share these times (the racy rule).
    const clearlyOld = newestMs < memo.clearlyOlderThan;
    return {
      entry,
      index,
      records,
      hash,
      rest: rest.subarray(0, n),
      ...(clearlyOld ? { identity } : {}),
    };
  } finally {
    closeSync(fd);
  }
}

/**
 * One segment's records: of `hosts` only (claimedHost; undefined: all), those in a remembered verified
 * prefix first and flagged (checkedRecords); after an indexed prefix (`r.indexed`), the records after
 * it, and the index's acks as `indexed`. `digest()`: the SHA-256 of its valid bytes, for the prefix this
 * read proposes (the hash of a remembered prefix is extended, not recomputed).
 */
function parseSegment(
  r: SegmentBytes,
  hosts: ReadonlySet<string> | undefined,
  prefixes: { memo: LogPrefixMemo; fingerprint: string } | null,
): ReturnType<typeof parseAckLog> & {
  file: string;
  digest: () => string;
  indexed: IndexedRecords | null;
  /** After an indexed prefix: the file's identity, when clearly older than this read. */
  identity?: string;
} {
  const keep =
    hosts === undefined
      ? undefined
      : (body: Buffer) => {
          const host = claimedHost(body);
          return host === null || hosts.has(host);
        };
  if (r.indexed !== undefined) {
    const { entry, index, records, hash, identity } = r.indexed;
    const parsed = parseAckLog(r.bytes, r.file, {
      ...(keep === undefined ? {} : { keep }),
      start: { byte: entry.bytes, line: index.lines },
    });
    // No hash: nothing follows the prefix in an unchanged file, so what this read verified is the prefix.
    const digest = () =>
      hash === null
        ? entry.digest
        : `sha256:${hash.update(r.bytes.subarray(0, parsed.validBytes - entry.bytes)).digest('hex')}`;
    return {
      ...parsed,
      file: r.file,
      digest,
      indexed: records,
      ...(identity === undefined ? {} : { identity }),
    };
  }
  const file = resolve(r.file);
  let hash = createHash('sha256');
  let checkedBytes = 0;
  if (prefixes !== null) {
    const c = checkedPrefix(prefixes.memo, file, prefixes.fingerprint, r.bytes, hash);
    if (c.changed) hash = createHash('sha256');
    checkedBytes = c.bytes;
  }
  const parsed = parseAckLog(r.bytes, r.file, {
    ...(keep === undefined ? {} : { keep }),
    ...(prefixes === null ? {} : { checkedBytes }),
  });
  const digest = () =>
    `sha256:${hash.update(r.bytes.subarray(checkedBytes, parsed.validBytes)).digest('hex')}`;
  return { ...parsed, file: r.file, digest, indexed: null };
}

/**
 * Every verified ack of a tree's acks/: latest files and bundles. The bundles add no newer ack when hosts/
 * is there, but an ack forged into one is still seen and reported (the views list rejected acks).
 */
export function readTreeAcks(
  acksDir: string,
  trust: AckTrust,
  cache?: AckCache,
  opts: TreeAckOptions = {},
): VerifiedAcks {
  const c = new AckCollector(trust, cache);
  collectTreeAcks(acksDir, c, opts);
  const result = c.result();
  opts.files?.settle(c.acks, c.digests, trust.hostKeys);
  return result;
}

export function readAckLog(logFile: string, trust: AckTrust): VerifiedAcks & { tornBytes: number } {
  const c = new AckCollector(trust);
  const { tornBytes } = collectAckLog(logFile, c);
  return { ...c.result(), tornBytes };
}

export interface AckHistory extends VerifiedAcks {
  /**
   * The signed envelope of each of `acks` (same index); none when the log's verified prefix was read
   * through its index (LogPrefixMemo.useIndexes: a trace, which replays the signed acks only).
   */
  envelopes: SignedAck[];
  /** The digest identifying each of `acks` (same index): a log record's chain digest, else its bytes'. */
  digests: string[];
  /**
   * With AckHistoryOptions.deferIndexed: the verified acks of indexed log prefixes, not built (`acks`
   * holds the others; every ack is in exactly one of the two). None or empty otherwise.
   */
  deferred?: DeferredRecords[];
  /** What was read: the log (null: none), how much of it, and the tree's latest-ack files. */
  sources: {
    log: string | null;
    logRecords: number;
    logTornBytes: number;
    logSkippedBytes: number;
    treeAcks: true;
    latestFiles: number;
    replicaLogs?: (AckLogRead & { file: string })[];
  };
}

/** How an AckCollector establishes signatures: every ack's, or each host chain's tips (a dashboard). */
export type AckSignatures = 'each' | 'chain-tips';

export interface AckHistoryOptions extends TreeAckOptions {
  /** The tree's `acks/` directory. */
  acksDir: string;
  /** AckCollector's `signatures` (default 'each'). */
  signatures?: AckSignatures;
  /** The ack endpoint's log, or null for the tree's acks only. The caller decides what a missing file means. */
  logFile: string | null;
  /** Logs of other replicas of the endpoint, read into the same history (their union). */
  replicaLogs?: readonly string[];
  trust: AckTrust;
  cache?: AckCache;
  log?: AckLogOptions;
  /** Leave the acks of indexed log prefixes unbuilt, in AckHistory.deferred (AckCollector.deferIndexed). */
  deferIndexed?: boolean;
}

/**
 * The history a trace or the dashboard needs: the log first (so sources name the log line), then the
 * tree's acks (mostly the same bytes: counted once), all verified as one batch.
 */
export function readAckHistory(o: AckHistoryOptions): AckHistory {
  const collector = new AckCollector(o.trust, o.cache, [], o.signatures);
  collector.deferIndexed = o.deferIndexed === true;
  let log: AckLogRead = { records: 0, segments: 0, tornBytes: 0, skippedBytes: 0, corrupt: false };
  const scoped = o.hosts === undefined ? o.log : { ...o.log, hosts: o.hosts };
  if (o.logFile !== null) log = collectAckLog(o.logFile, collector, scoped);
  const replicaLogs = (o.replicaLogs ?? []).map((file) => ({
    file,
    ...collectAckLog(file, collector, { ...scoped, label: file }),
  }));
  const tree = collectTreeAcks(o.acksDir, collector, o);
  const { acks, rejected } = collector.result();
  settleFiles(o, collector);
  o.log?.prefixes?.settle(rejected, () => {
    const byDigest = new Map<string, AckRecord>();
    collector.digests.forEach((d, i) => byDigest.set(d, acks[i]!));
    // A record repeating one of a deferred index (the same bytes appended again) has its ack there.
    return (d) => byDigest.get(d) ?? collector.deferredAck(d);
  });
  const sources: AckHistory['sources'] = {
    log: o.logFile,
    logRecords: log.records,
    logTornBytes: log.tornBytes,
    logSkippedBytes: log.skippedBytes,
    treeAcks: true,
    latestFiles: tree.latestFiles,
  };
  if (o.replicaLogs) sources.replicaLogs = replicaLogs;
  // Acks taken from a log-prefix index carry no signatures: such a history has no envelopes.
  const envelopes = collector.replayOnly ? [] : collector.envelopes;
  return {
    acks,
    rejected,
    envelopes,
    digests: collector.digests,
    deferred: collector.deferred,
    sources,
  };
}

/**
 * The latest-ack files memo settles with the verified ack of each file it read; a file whose ack an
 * indexed record gave first (deferred: not built) is given that record's ack.
 */
function settleFiles(o: AckHistoryOptions, collector: AckCollector): void {
  if (o.files === undefined) return;
  const wanted = new Set(collector.foundAgain);
  if (wanted.size === 0) {
    o.files.settle(collector.acks, collector.digests, o.trust.hostKeys);
    return;
  }
  const acks = [...collector.acks];
  const digests = [...collector.digests];
  for (const { records, taken } of collector.deferred)
    for (const n of taken)
      if (wanted.has(records.digest(n))) {
        acks.push(records.ack(n));
        digests.push(records.digest(n));
      }
  o.files.settle(acks, digests, o.trust.hostKeys);
}

export interface AckAudit {
  /** Every log complete: no gap, fork or broken link for any host, nothing rejected, no corrupt log. */
  ok: boolean;
  logs: (AckLogRead & { file: string })[];
  /**
   * Segment floors taken as where history starts (the first segment read of a log whose older
   * segments were archived). A floor is the endpoint's own unsigned file: a chain that starts on it
   * is complete from there, not from seq 1; audit the archive with the live log for the whole history.
   */
  floors: string[];
  hosts: HostChainAudit[];
  rejected: AckRejection[];
}

/**
 * The offline audit of ack history (`nixfleet verify --acks`): the union of one or more ack logs, every
 * ack verified (fleet, host, signature: verifyAck's checks), then every host's chain checked for
 * seq/prev continuity from seq 1 and forks. A corrupt log is reported (its acks not counted), not thrown.
 */
export function auditAckLogs(logFiles: readonly string[], trust: AckTrust): AckAudit {
  const collector = new AckCollector(trust);
  const logs = logFiles.map((file) => ({
    file,
    ...collectAckLog(file, collector, { onCorrupt: 'reject' }),
  }));
  const { floors, floorFiles } = floorsOf(logFiles, collector);
  const { acks, rejected } = collector.result();
  const links: AckLink[] = acks.map((a, i) => ({
    host: a.host,
    seq: a.seq,
    prev: a.prev,
    digest: collector.digests[i]!,
  }));
  const hosts = auditAckChains(links, floors);
  return {
    ok: rejected.length === 0 && hosts.every((h) => h.complete),
    logs,
    floors: floorFiles,
    hosts,
    rejected,
  };
}

/**
 * The floors of logs whose oldest segment left is not their first (older ones archived): each host's
 * head as of that segment's start. An unreadable floor is a rejection (its hosts then show gaps).
 */
function floorsOf(
  logFiles: readonly string[],
  collector: AckCollector,
): { floors: Map<string, ChainFloorHead>; floorFiles: string[] } {
  const floors = new Map<string, ChainFloorHead>();
  const floorFiles: string[] = [];
  for (const log of logFiles) {
    const first = listAckLogSegments(log)[0];
    if (!first || first.index === 0) continue;
    const floor = listAckFloors(dirname(first.file)).find((f) => f.index === first.index);
    if (!floor) continue;
    try {
      for (const h of readAckFloor(floor.file).heads)
        if (!floors.has(h.host))
          floors.set(h.host, { seq: h.seq, digest: h.digest, source: floor.file });
      floorFiles.push(floor.file);
    } catch (e) {
      if (!(e instanceof AckLogCorrupt)) throw e;
      collector.rejected.push({
        source: floor.file,
        host: null,
        code: 'AckLogCorrupt',
        reason: e.message,
      });
    }
  }
  return { floors, floorFiles };
}

/**
 * Each host's verified acks, oldest first, one per sequence number (a fork, which the endpoint refuses
 * but a host could sign, resolves as latestAcks does: the canonical-JSON-smallest), hosts sorted.
 */
export function ackHistoryByHost(acks: Iterable<AckRecord>): Map<string, AckRecord[]> {
  const byHost = new Map<string, AckRecord[]>();
  for (const a of acks) {
    let list = byHost.get(a.host);
    if (list === undefined) byHost.set(a.host, (list = []));
    list.push(a);
  }
  const out = new Map<string, AckRecord[]>();
  for (const host of [...byHost.keys()].sort()) {
    const list = byHost.get(host)!;
    list.sort((x, y) => x.seq - y.seq);
    const unique: AckRecord[] = [];
    for (const a of list) {
      const prev = unique[unique.length - 1];
      if (prev === undefined || prev.seq !== a.seq) unique.push(a);
      else unique[unique.length - 1] = forkWinner(a, prev);
    }
    out.set(host, unique);
  }
  return out;
}

/** The audit as text: one line per log, one per host with anything to say, and every rejection. */
export function formatAckAudit(a: AckAudit): string {
  const lines = [
    `${a.ok ? 'OK' : 'FINDINGS'}: ack history of ${a.hosts.length} hosts, ${a.hosts.reduce((n, h) => n + h.acks, 0)} acks from ${a.logs.length} log(s)`,
  ];
  for (const l of a.logs)
    lines.push(
      `  log ${l.file}: ${l.records} records${l.segments > 1 ? ` in ${l.segments} segments` : ''}${l.tornBytes > 0 ? `, torn tail of ${l.tornBytes} bytes skipped` : ''}${l.corrupt ? ', CORRUPT' : ''}`,
    );
  for (const h of a.hosts) {
    const parts = [
      ...h.gaps.map((g) =>
        g.from === g.to ? `gap at seq ${g.from}` : `gap seq ${g.from}-${g.to}`,
      ),
      ...h.forks.map((f) => `fork at seq ${f.seq} (${f.digests.join(', ')})`),
      ...h.broken.map((b) => `broken link at seq ${b.seq}: ${b.reason}`),
    ];
    const from = h.startsAt ? h.startsAt.seq : 1;
    const floor = h.startsAt ? ` (history starts at floor ${h.startsAt.floor})` : '';
    lines.push(
      `  ${h.host}: seq ${from}..${h.head}${floor}, ${h.acks} acks${parts.length === 0 ? ', complete' : `: ${parts.join('; ')}`}`,
    );
  }
  for (const f of a.floors)
    lines.push(
      `  floor ${f}: unsigned heads written when older segments were archived; audit the archive with this log for the history before it`,
    );
  for (const r of a.rejected)
    lines.push(`  REJECTED ${r.source}${r.host ? ` (${r.host})` : ''}: ${r.code}: ${r.reason}`);
  return lines.join('\n');
}
