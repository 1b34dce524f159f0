// The ack endpoint's logic, independent of HTTP: every check of DESIGN.md section 7 in order, the
// durable append, and publication. It holds no signing key: host keys come from the installed release.
//
// Order of checks (each answer names its reason):
//   503 not primed -> 403 no/unknown client identity -> 403 revoked certificate -> 429 rate limit
//   -> 413 too large -> 400 malformed -> 403 certificate is not the ack's host -> 403 host unknown /
//   revoked -> 400 wrong fleet -> 403 signature -> 409 chain (fork, replay, gap) | 200 duplicate
//   -> append + fdatasync -> 201 stored (or 201 backfilled: the ack just below the held history)
// Fleet and signature are protocol/acks.ts verifyAck, the check every reader of acks makes.
// Every chain answer carries `missingBelow: N` while the host's history is held only from seq N > 1
// (adopted mid-chain after a rebuild): the agent then re-posts its older journal entries downwards.
// Nothing acknowledged is lost: a head moves before its fsync, and a failed write rolls it back.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readAck,
  verifyAck,
  type AckTrust,
  type SignedAck,
  latestAckPath,
  canonicalString,
  sha256Digest,
  isVerificationError,
  LIMITS,
  type LogRecord,
} from '../protocol/index.ts';
import {
  AckLog,
  AckLogUnavailable,
  readAckSnapshot,
  writeAckSnapshot,
  type AckLogSnapshot,
  type SnapshotHead,
} from './ack-log.ts';
import {
  chainRuns,
  decide,
  lowerFloor,
  missingBelow,
  type ChainFloor,
  type ChainHead,
  type ChainLink,
} from './ack-chain.ts';
import { AckPublisher } from './ack-publisher.ts';
import { RateLimiter, type RateLimitOptions } from './rate-limit.ts';
import { hostRefusal, normalizeSerial, type ReleaseView } from './release-view.ts';
import type { ClientIdentity } from './identity.ts';

export interface AckResponse {
  status: number;
  body: Record<string, unknown>;
  /** Seconds, for 429 and 503. */
  retryAfter?: number;
}

export interface AckServiceOptions {
  /** Directory of the append-only log (its segments: acks.log, acks-000001.log, ...). */
  logDir: string;
  /** Directory under which acks/ is published (the control plane's tree directory). */
  publishRoot: string;
  /** Batch concurrent appends into one fdatasync (default true). */
  groupCommit?: boolean;
  /** Per-host token bucket; false disables it. Default: burst 30, 2 per second. */
  rateLimit?: RateLimitOptions | false;
  /** Bundle rewrite debounce (ms, default 100). */
  debounceMs?: number;
  /**
   * Write a snapshot of the chain state once this many acks were appended since the last one (default
   * 100,000; 0 never): start-up then replays at most about this many acks, whatever the log's length.
   */
  snapshotEvery?: number;
  /** Start a new log segment past this many bytes (default ack-log.ts DEFAULT_SEGMENT_BYTES). */
  segmentBytes?: number;
  now?: () => number;
  log?: (event: Record<string, unknown>) => void;
}

export const DEFAULT_ACK_RATE_LIMIT: RateLimitOptions = { burst: 30, perSecond: 2 };

/** What acks are verified against under an installed release: its fleet and its hosts' keys. */
export function ackTrustOfView(view: ReleaseView): AckTrust {
  const hostKeys = new Map<string, string>();
  for (const [host, entry] of view.hosts) hostKeys.set(host, entry.hostKey);
  return { fleet: view.fleet, hostKeys };
}

/** Whole seconds until `at`, at least 1: what Retry-After says. */
function secondsUntil(at: number, now: number): number {
  return Math.max(1, Math.ceil((at - now) / 1000));
}

export class AckService {
  private heads = new Map<string, ChainHead>();
  /** Per host: runs of its chain held below a gap (see ack-chain.ts HeldRuns); absent for most hosts. */
  private runs = new Map<string, Map<string, ChainFloor>>();
  /** The published heads are compared with the log once, with the first release view (acks need it to verify). */
  private publishedHeadsChecked = false;
  private view: ReleaseView | null = null;
  /** ackTrustOfView(view), built once per installed release rather than per ack. */
  private trust: AckTrust | null = null;
  private readonly limiter: RateLimiter | null;
  private readonly now: () => number;
  readonly publisher: AckPublisher;
  /** Torn-tail bytes cut when the log was opened. */
  recoveredCutBytes = 0;
  recoveredRecords = 0;
  /** How start-up got its state: from a snapshot plus the records after it, or a full replay (and why). */
  startup: {
    snapshotHeads: number;
    replayed: number;
    /** Log segments read (from the snapshot's, or all of them). */
    segmentsRead: number;
    fullReplayBecause?: string;
  } = {
    snapshotHeads: 0,
    replayed: 0,
    segmentsRead: 0,
  };
  /** log.stats.appended when the last snapshot was written. */
  private appendedAtSnapshot = 0;
  /** A segment roll happened since the last snapshot: write one at the next idle point. */
  private rolled = false;

  private constructor(
    private readonly log: AckLog,
    private readonly opts: AckServiceOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.limiter =
      opts.rateLimit === false ? null : new RateLimiter(opts.rateLimit ?? DEFAULT_ACK_RATE_LIMIT);
    this.publisher = new AckPublisher(opts.publishRoot, (h) => this.heads.get(h)?.canonical, {
      debounceMs: opts.debounceMs ?? 100,
      now: this.now,
      onError: (e) => this.opts.log?.({ event: 'ack-publish-failed', error: e.message }),
    });
  }

  static async open(opts: AckServiceOptions): Promise<AckService> {
    const { snapshot, problem } = readAckSnapshot(opts.logDir);
    let svc: AckService | null = null;
    const onIdle = () => svc?.maybeSnapshot();
    const logOpts = {
      groupCommit: opts.groupCommit ?? true,
      now: opts.now,
      onIdle,
      segmentBytes: opts.segmentBytes,
      // The snapshot at a roll is written at the next idle point: appends queued during the roll have
      // moved the heads already, and a snapshot must match the durable log.
      onRoll: (segment: number) => {
        if (svc) svc.rolled = true;
        opts.log?.({ event: 'ack-log-segment-rolled', segment });
      },
      onRollFailed: (e: Error) => opts.log?.({ event: 'ack-log-roll-failed', error: e.message }),
    };
    let opened = await AckLog.open(
      opts.logDir,
      snapshot ? { ...logOpts, from: snapshot.at } : logOpts,
    );
    svc = new AckService(opened.log, opts);
    let fullReplayBecause =
      problem ?? opened.fromRejected ?? (snapshot ? undefined : 'no snapshot');
    if (snapshot && opened.fromUsed && !svc.replayAfterSnapshot(snapshot, opened.records)) {
      // The records after the snapshot are not what this endpoint would have written from that state
      // (e.g. a log merged from replicas): rebuild from the whole log instead.
      fullReplayBecause = 'the records after the snapshot do not follow from it';
      await opened.log.close();
      opened = await AckLog.open(opts.logDir, logOpts);
      svc = new AckService(opened.log, opts);
    }
    if (!opened.fromUsed) svc.replay(opened.records);
    svc.startup = {
      snapshotHeads: opened.fromUsed ? snapshot!.heads.length : 0,
      replayed: opened.records.length,
      segmentsRead: opened.segmentsRead,
      ...(fullReplayBecause !== undefined && !opened.fromUsed ? { fullReplayBecause } : {}),
    };
    svc.recoveredCutBytes = opened.cutBytes;
    svc.recoveredRecords = opened.records.length;
    if (opened.cutBytes > 0)
      opts.log?.({ event: 'ack-log-torn-tail-cut', bytes: opened.cutBytes, file: opened.log.path });
    if (snapshot && !opened.fromUsed)
      opts.log?.({ event: 'ack-log-snapshot-unused', reason: fullReplayBecause });
    return svc;
  }

  /**
   * Start-up from a snapshot: its heads, then the records after it applied the way submit() and the
   * published-head adoption applied them (append, back-fill, adoption). False when a record is not one
   * this endpoint could have written from that state: the caller replays the whole log instead.
   */
  private replayAfterSnapshot(snapshot: AckLogSnapshot, records: LogRecord[]): boolean {
    const durable = Promise.resolve();
    for (const h of snapshot.heads) {
      this.heads.set(h.host, {
        seq: h.seq,
        digest: h.digest,
        canonical: h.canonical,
        durable,
        floor: h.floor,
      });
      if (h.runs && h.runs.length > 0) this.runs.set(h.host, new Map(h.runs));
    }
    for (const r of records) {
      const env = JSON.parse(r.canonical) as SignedAck;
      const { host, seq, prev } = env.signed;
      const cur = this.heads.get(host);
      const d = decide(cur, seq, prev, r.digest);
      if (d.kind === 'append' || (d.kind === 'conflict' && cur !== undefined && seq > cur.seq)) {
        const next = this.headOf(host, env, r.digest, r.canonical, durable);
        next.below = undefined;
        this.heads.set(host, next);
      } else if (d.kind === 'backfill') {
        this.heads.set(host, { ...cur!, floor: lowerFloor({ seq, prev }, this.runs.get(host)) });
      } else {
        this.heads.clear();
        this.runs.clear();
        return false;
      }
    }
    return true;
  }

  /** The chain state as of the durable end of the log (call only when no append is pending). */
  private snapshotNow(): AckLogSnapshot {
    const heads: SnapshotHead[] = [];
    for (const [host, h] of this.heads) {
      const runs = this.runs.get(host);
      heads.push({
        host,
        seq: h.seq,
        digest: h.digest,
        canonical: h.canonical,
        floor: h.floor,
        ...(runs && runs.size > 0 ? { runs: [...runs] } : {}),
      });
    }
    return { type: 'ack-log-snapshot', version: 1, at: this.log.position, heads };
  }

  /** Called by the log when every append is durable and none is pending: the state matches the log. */
  private maybeSnapshot(): void {
    const every = this.opts.snapshotEvery ?? 100_000;
    if (every === 0) return;
    if (!this.rolled && this.log.stats.appended - this.appendedAtSnapshot < every) return;
    try {
      writeAckSnapshot(this.opts.logDir, this.snapshotNow());
      this.appendedAtSnapshot = this.log.stats.appended;
      this.rolled = false;
      this.opts.log?.({
        event: 'ack-log-snapshot',
        heads: this.heads.size,
        segment: this.log.position.segment,
        bytes: this.log.position.bytes,
      });
    } catch (e) {
      // A snapshot is an optimisation: failing to write one (disk full) costs start-up time only.
      this.opts.log?.({ event: 'ack-log-snapshot-failed', error: (e as Error).message });
    }
  }

  /**
   * Log order is acceptance order, so a host's last record with its highest seq is its head (back-filled
   * acks come later in the log with lower seqs). The floor is where the run of acks chained by digest
   * below the head ends.
   */
  private replay(records: LogRecord[]): void {
    const durable = Promise.resolve();
    const links = new Map<string, ChainLink[]>();
    for (const r of records) {
      const env = JSON.parse(r.canonical) as {
        signed: { host: string; seq: number; prev: string | null };
      };
      const { host, seq, prev } = env.signed;
      const cur = this.heads.get(host);
      if (!cur || seq >= cur.seq)
        this.heads.set(host, {
          seq,
          digest: r.digest,
          canonical: r.canonical,
          durable,
          floor: { seq, prev },
        });
      let l = links.get(host);
      if (!l) links.set(host, (l = []));
      l.push({ seq, digest: r.digest, prev });
    }
    for (const [host, head] of this.heads) {
      const { floor, runs } = chainRuns(links.get(host) ?? [], head.digest);
      head.floor = floor;
      if (runs.size > 0) this.runs.set(host, runs);
    }
  }

  /**
   * Moves a host to a new chain state whose record is being written. If the write fails, the state (and
   * any later one built on it) is rolled back to the last one that is durable: an ack answered 503 was
   * never accepted, and its re-post must be judged against what is on disk.
   */
  private install(host: string, next: ChainHead): void {
    this.heads.set(host, next);
    next.durable.then(
      () => {
        next.below = undefined;
      },
      () => {
        next.failed = true;
        let cur = this.heads.get(host);
        while (cur?.failed) cur = cur.below;
        if (cur) this.heads.set(host, cur);
        else this.heads.delete(host);
      },
    );
  }

  /** Appends a record; the durable promise is the append's. */
  private write(digest: string, canonical: string): Promise<void> {
    const durable = this.log.append({ digest, canonical });
    durable.catch(() => undefined);
    return durable;
  }

  /** The host's next state when `ack` becomes its head: forward, its floor stays; adopted, it starts here. */
  private headOf(
    host: string,
    ack: SignedAck,
    digest: string,
    canonical: string,
    durable: Promise<void>,
  ): ChainHead {
    const cur = this.heads.get(host);
    const { seq, prev } = ack.signed;
    const continues = cur !== undefined && seq === cur.seq + 1 && prev === cur.digest;
    let runs = this.runs.get(host);
    if (cur && !continues) {
      // Adopted over a held run that it does not continue (published head ahead of a partial log):
      // the held run stays reachable for back-fill.
      runs = new Map(runs ?? []);
      runs.set(cur.digest, cur.floor);
      this.runs.set(host, runs);
    }
    const floor = continues ? cur.floor : lowerFloor({ seq, prev }, runs);
    return { seq, digest, canonical, durable, floor, below: cur };
  }

  /**
   * The published heads (acks/hosts/<host>.json) are host-signed acks. An endpoint whose log is behind
   * them (the log was lost or restored from an old copy, the published files survived) takes them back
   * in, so the log is again the complete record and agents, which see their latest ack published, are
   * asked (missingBelow) to back-fill the rest. Files that do not verify are ignored and logged.
   */
  private adoptPublishedHeads(trust: AckTrust): void {
    const dir = join(this.opts.publishRoot, 'acks', 'hosts');
    let names: string[];
    try {
      names = readdirSync(dir).filter((n) => n.endsWith('.json') && !n.startsWith('.'));
    } catch {
      return; // nothing published yet
    }
    const adopted: { host: string; seq: number; logSeq: number | null }[] = [];
    for (const name of names) {
      const host = name.slice(0, -'.json'.length);
      const file = join(this.opts.publishRoot, latestAckPath(host));
      let ack: SignedAck;
      try {
        const bytes = readFileSync(file);
        // The usual case at start-up: the file is this endpoint's own head (published from the log).
        if (bytes.toString('utf8') === this.heads.get(host)?.canonical) continue;
        ack = readAck(bytes, file);
        if (ack.signed.host !== host)
          throw new Error(`${file}: holds an ack of host ${ack.signed.host}`);
        verifyAck(ack, trust, file);
      } catch (e) {
        this.opts.log?.({ event: 'published-ack-ignored', file, error: (e as Error).message });
        continue;
      }
      const cur = this.heads.get(host);
      if (cur && ack.signed.seq <= cur.seq) continue;
      const canonical = canonicalString(ack);
      const digest = sha256Digest(canonical);
      this.install(host, this.headOf(host, ack, digest, canonical, this.write(digest, canonical)));
      adopted.push({ host, seq: ack.signed.seq, logSeq: cur?.seq ?? null });
    }
    if (adopted.length > 0) this.opts.log?.({ event: 'ack-log-behind-published-heads', adopted });
  }

  /** The 503 answer for a log that is backing off after a failed write. */
  private logUnavailable(e: AckLogUnavailable): AckResponse {
    return {
      status: 503,
      retryAfter: secondsUntil(e.retryAt, this.now()),
      body: { error: 'LogUnavailable', reason: e.message },
    };
  }

  private chainAnswer(
    status: number,
    body: Record<string, unknown>,
    head: ChainHead | undefined,
  ): AckResponse {
    const below = head && missingBelow(head);
    return { status, body: below === undefined ? body : { ...body, missingBelow: below } };
  }

  get primed(): boolean {
    return this.view !== null;
  }

  get releaseView(): ReleaseView | null {
    return this.view;
  }

  setView(view: ReleaseView | null): void {
    this.view = view;
    this.trust = view && ackTrustOfView(view);
    if (view && this.trust && !this.publishedHeadsChecked) {
      this.publishedHeadsChecked = true;
      this.adoptPublishedHeads(this.trust);
    }
    if (view) this.publisher.setView(view, this.heads.keys());
  }

  /** The host's head, and `missingBelow` while its history is held only from that seq (> 1). */
  head(host: string): { seq: number; digest: string; missingBelow?: number } | undefined {
    const h = this.heads.get(host);
    if (!h) return undefined;
    const below = missingBelow(h);
    return below === undefined
      ? { seq: h.seq, digest: h.digest }
      : { seq: h.seq, digest: h.digest, missingBelow: below };
  }

  /** Each host's head: the canonical envelope of its latest accepted ack (for /metrics). */
  *headEnvelopes(): IterableIterator<[string, string]> {
    for (const [host, head] of this.heads) yield [host, head.canonical];
  }

  /** Resolves once the log has no flush or roll in progress (tests, benchmarks). */
  logSettled(): Promise<void> {
    return this.log.settled();
  }

  get logStats(): { appended: number; syncs: number; rolls: number } {
    return this.log.stats;
  }

  /**
   * One posted ack: admitted (primed, log writable, a verified and unrevoked client certificate, rate,
   * size), taken in (strict intake, the certificate's host, a host of the release, verifyAck), then
   * appended to the host's chain (or answered as a duplicate, a back-fill or a conflict).
   */
  async submit(body: Uint8Array, identity: ClientIdentity | null): Promise<AckResponse> {
    const refused = this.admission(body, identity);
    if (refused) return refused;
    const ack = this.intake(body, identity!);
    if ('status' in ack) return ack;
    return this.appendToChain(ack);
  }

  /** Refusals before the body is read: null when the request may be taken in. */
  private admission(body: Uint8Array, identity: ClientIdentity | null): AckResponse | null {
    const view = this.view;
    if (!view || !this.trust)
      return {
        status: 503,
        retryAfter: 5,
        body: { error: 'NotPrimed', reason: 'no verified release is installed yet' },
      };
    const down = this.log.unavailable();
    if (down) return this.logUnavailable(down);
    if (!identity)
      return {
        status: 403,
        body: { error: 'NoClientIdentity', reason: 'a verified client certificate is required' },
      };
    if (identity.serial !== null && view.revokedSerials.has(normalizeSerial(identity.serial))) {
      return {
        status: 403,
        body: {
          error: 'Revoked',
          reason: `client certificate serial ${identity.serial} is revoked`,
        },
      };
    }
    if (this.limiter) {
      const wait = this.limiter.take(identity.cn, this.now());
      if (wait > 0)
        return {
          status: 429,
          retryAfter: wait,
          body: {
            error: 'RateLimited',
            reason: `too many acks from ${identity.cn}; retry in ${wait}s`,
          },
        };
    }
    if (body.byteLength > LIMITS.ack)
      return {
        status: 413,
        body: {
          error: 'TooLarge',
          reason: `ack body of ${body.byteLength} bytes exceeds ${LIMITS.ack}`,
        },
      };

    return null;
  }

  /** The ack, verified for the certificate's host against the installed release, or the refusal. */
  private intake(body: Uint8Array, identity: ClientIdentity): SignedAck | AckResponse {
    const view = this.view!;
    let ack;
    try {
      ack = readAck(body, 'ack');
    } catch (e) {
      if (isVerificationError(e))
        return {
          status: e.code === 'TooLarge' ? 413 : 400,
          body: { error: e.code, reason: e.message },
        };
      throw e;
    }
    const host = ack.signed.host;
    if (host !== identity.cn) {
      return {
        status: 403,
        body: {
          error: 'WrongHost',
          reason: `client certificate is for ${identity.cn} but the ack is for ${host}`,
        },
      };
    }
    const refusal = hostRefusal(view, host);
    if (refusal)
      return {
        status: 403,
        body: { error: view.hosts.has(host) ? 'Revoked' : 'UnknownHost', reason: refusal },
      };
    try {
      verifyAck(ack, this.trust!, 'ack');
    } catch (e) {
      // A foreign fleet's ack is a misdirected request (400); a bad signature is a refusal of identity (403).
      if (isVerificationError(e))
        return {
          status: e.code === 'WrongFleet' ? 400 : 403,
          body: { error: e.code, reason: e.message },
        };
      throw e;
    }

    return ack;
  }

  /** Appends a verified ack to its host's chain, durably before answering. */
  private async appendToChain(ack: SignedAck): Promise<AckResponse> {
    const host = ack.signed.host;
    // One canonicalisation serves the chain digest (protocol/acks.ts ackDigest: SHA-256 of these bytes) and the log.
    const canonical = canonicalString(ack);
    const digest = sha256Digest(canonical);
    const cur = this.heads.get(host);
    const decision = decide(cur, ack.signed.seq, ack.signed.prev, digest);
    if (decision.kind === 'conflict') {
      return this.chainAnswer(
        409,
        {
          error: 'ChainConflict',
          reason: decision.reason,
          head: { seq: decision.head.seq, digest: decision.head.digest },
        },
        decision.head,
      );
    }
    if (decision.kind === 'duplicate') {
      try {
        await decision.head.durable;
      } catch (e) {
        return this.writeFailed(e);
      }
      return this.chainAnswer(
        200,
        { status: 'duplicate', host, seq: ack.signed.seq, digest },
        this.heads.get(host),
      );
    }
    // The state moves before the fsync so a concurrent post from the same host is checked against it.
    const durable = this.write(digest, canonical);
    const next: ChainHead =
      decision.kind === 'backfill'
        ? {
            ...cur!,
            durable,
            floor: lowerFloor({ seq: ack.signed.seq, prev: ack.signed.prev }, this.runs.get(host)),
            below: cur,
            failed: undefined,
          }
        : this.headOf(host, ack, digest, canonical, durable);
    this.install(host, next);
    try {
      await durable;
    } catch (e) {
      return this.writeFailed(e);
    }
    if (decision.kind === 'backfill')
      return this.chainAnswer(
        201,
        { status: 'backfilled', host, seq: ack.signed.seq, digest },
        this.heads.get(host),
      );
    this.publisher.noteAccepted(host);
    return this.chainAnswer(
      201,
      { status: 'stored', host, seq: ack.signed.seq, digest },
      this.heads.get(host),
    );
  }

  private writeFailed(e: unknown): AckResponse {
    if (e instanceof AckLogUnavailable) return this.logUnavailable(e);
    return {
      status: 503,
      retryAfter: 1,
      body: { error: 'LogUnavailable', reason: (e as Error).message },
    };
  }

  async close(): Promise<void> {
    try {
      this.publisher.close();
    } finally {
      await this.log.close();
    }
  }
}
