// The ack endpoint's logic, independent of HTTP: every check of DESIGN.md section 7 in order, the
// durable append, and publication. It holds no signing key: host keys come from the installed release.
//
// Order of checks (each answer names its reason):
//   503 not primed -> 403 no/unknown client identity -> 403 revoked certificate -> 429 rate limit
//   -> 413 too large -> 400 malformed -> 403 certificate is not the ack's host -> 403 host unknown /
//   revoked -> 400 wrong fleet -> 403 signature -> 409 chain (fork, replay, gap) | 200 duplicate
//   -> append + fdatasync -> 201 stored
// Fleet and signature are protocol/acks.ts verifyAck, the check every reader of acks makes.
import { readAck, verifyAck, type AckTrust } from '../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../protocol/canonical.ts';
import { isVerificationError } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { AckLog } from './ack-log.ts';
import type { LogRecord } from '../protocol/ack-log.ts';
import { decide, type ChainHead } from './ack-chain.ts';
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
  /** Directory of the append-only log (acks.log). */
  logDir: string;
  /** Directory under which acks/ is published (the control plane's tree directory). */
  publishRoot: string;
  /** Batch concurrent appends into one fdatasync (default true). */
  groupCommit?: boolean;
  /** Per-host token bucket; false disables it. Default: burst 30, 2 per second. */
  rateLimit?: RateLimitOptions | false;
  /** Bundle rewrite debounce (ms, default 100). */
  debounceMs?: number;
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

export class AckService {
  private heads = new Map<string, ChainHead>();
  private view: ReleaseView | null = null;
  /** ackTrustOfView(view), built once per installed release rather than per ack. */
  private trust: AckTrust | null = null;
  private readonly limiter: RateLimiter | null;
  private readonly now: () => number;
  readonly publisher: AckPublisher;
  /** Torn-tail bytes cut when the log was opened. */
  recoveredCutBytes = 0;
  recoveredRecords = 0;

  private constructor(private readonly log: AckLog, private readonly opts: AckServiceOptions) {
    this.now = opts.now ?? Date.now;
    this.limiter = opts.rateLimit === false ? null : new RateLimiter(opts.rateLimit ?? DEFAULT_ACK_RATE_LIMIT);
    this.publisher = new AckPublisher(opts.publishRoot, (h) => this.heads.get(h)?.canonical, {
      debounceMs: opts.debounceMs ?? 100,
      now: this.now,
      onError: (e) => this.opts.log?.({ event: 'ack-publish-failed', error: e.message }),
    });
  }

  static async open(opts: AckServiceOptions): Promise<AckService> {
    const { log, records, cutBytes } = await AckLog.open(opts.logDir, { groupCommit: opts.groupCommit ?? true });
    const svc = new AckService(log, opts);
    svc.replay(records);
    svc.recoveredCutBytes = cutBytes;
    svc.recoveredRecords = records.length;
    if (cutBytes > 0) opts.log?.({ event: 'ack-log-torn-tail-cut', bytes: cutBytes, file: log.path });
    return svc;
  }

  /** Log order is acceptance order, so the last record of a host is its head. */
  private replay(records: LogRecord[]): void {
    const durable = Promise.resolve();
    for (const r of records) {
      const env = JSON.parse(r.canonical) as { signed: { host: string; seq: number } };
      const cur = this.heads.get(env.signed.host);
      if (!cur || env.signed.seq >= cur.seq) this.heads.set(env.signed.host, { seq: env.signed.seq, digest: r.digest, canonical: r.canonical, durable });
    }
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
    if (view) this.publisher.setView(view, this.heads.keys());
  }

  head(host: string): { seq: number; digest: string } | undefined {
    const h = this.heads.get(host);
    return h && { seq: h.seq, digest: h.digest };
  }

  get logStats(): { appended: number; syncs: number } {
    return this.log.stats;
  }

  async submit(body: Uint8Array, identity: ClientIdentity | null): Promise<AckResponse> {
    const view = this.view;
    const trust = this.trust;
    if (!view || !trust) return { status: 503, retryAfter: 5, body: { error: 'NotPrimed', reason: 'no verified release is installed yet' } };
    if (this.log.failed) return { status: 503, retryAfter: 30, body: { error: 'LogFailed', reason: this.log.failed.message } };
    if (!identity) return { status: 403, body: { error: 'NoClientIdentity', reason: 'a verified client certificate is required' } };
    if (identity.serial !== null && view.revokedSerials.has(normalizeSerial(identity.serial))) {
      return { status: 403, body: { error: 'Revoked', reason: `client certificate serial ${identity.serial} is revoked` } };
    }
    if (this.limiter) {
      const wait = this.limiter.take(identity.cn, this.now());
      if (wait > 0) return { status: 429, retryAfter: wait, body: { error: 'RateLimited', reason: `too many acks from ${identity.cn}; retry in ${wait}s` } };
    }
    if (body.byteLength > LIMITS.ack) return { status: 413, body: { error: 'TooLarge', reason: `ack body of ${body.byteLength} bytes exceeds ${LIMITS.ack}` } };

    let ack;
    try {
      ack = readAck(body, 'ack');
    } catch (e) {
      if (isVerificationError(e)) return { status: e.code === 'TooLarge' ? 413 : 400, body: { error: e.code, reason: e.message } };
      throw e;
    }
    const host = ack.signed.host;
    if (host !== identity.cn) {
      return { status: 403, body: { error: 'WrongHost', reason: `client certificate is for ${identity.cn} but the ack is for ${host}` } };
    }
    const refusal = hostRefusal(view, host);
    if (refusal) return { status: 403, body: { error: view.hosts.has(host) ? 'Revoked' : 'UnknownHost', reason: refusal } };
    try {
      verifyAck(ack, trust, 'ack');
    } catch (e) {
      // A foreign fleet's ack is a misdirected request (400); a bad signature is a refusal of identity (403).
      if (isVerificationError(e)) return { status: e.code === 'WrongFleet' ? 400 : 403, body: { error: e.code, reason: e.message } };
      throw e;
    }

    // One canonicalisation serves the chain digest (protocol/acks.ts ackDigest: SHA-256 of these bytes) and the log.
    const canonical = canonicalString(ack);
    const digest = sha256Digest(canonical);
    const decision = decide(this.heads.get(host), ack.signed.seq, ack.signed.prev, digest);
    if (decision.kind === 'conflict') {
      return { status: 409, body: { error: 'ChainConflict', reason: decision.reason, head: { seq: decision.head.seq, digest: decision.head.digest } } };
    }
    if (decision.kind === 'duplicate') {
      try {
        await decision.head.durable;
      } catch (e) {
        return { status: 503, retryAfter: 30, body: { error: 'LogFailed', reason: (e as Error).message } };
      }
      return { status: 200, body: { status: 'duplicate', host, seq: ack.signed.seq, digest } };
    }
    // The head moves before the fsync so a concurrent post from the same host is checked against it.
    const durable = this.log.append({ digest, canonical });
    const head: ChainHead = { seq: ack.signed.seq, digest, canonical, durable };
    durable.catch(() => undefined);
    this.heads.set(host, head);
    try {
      await durable;
    } catch (e) {
      return { status: 503, retryAfter: 30, body: { error: 'LogFailed', reason: (e as Error).message } };
    }
    this.publisher.noteAccepted(host);
    return { status: 201, body: { status: 'stored', host, seq: ack.signed.seq, digest } };
  }

  async close(): Promise<void> {
    try {
      this.publisher.close();
    } finally {
      await this.log.close();
    }
  }
}
