// Keeps the control plane's copy of this host's ack chain complete. The journal is the truth; the
// endpoint may lag (we crashed before recording its answer), have lost a torn tail, or have been rebuilt
// from empty. We remember the highest seq the endpoint confirmed, re-read the published head
// (acks/hosts/<host>.json) before posting, and re-post whatever it is missing, in order.
// Back-fill: an endpoint that adopted our chain mid-way (rebuilt, or its log recovered from the published
// heads) says so in its answers (`missingBelow: N`): we then post our journal's acks N-1, N-2, ... 1,
// each chaining by digest to what it already holds, until it stops asking.
import { z } from 'zod';
import {
  ackDigest,
  readAck,
  type SignedAck,
  canonicalString,
  latestAckPath,
  LIMITS,
} from '../protocol/index.ts';
import type { AckJournal } from './ack-journal.ts';
import { NotFound, type HttpClient } from './http-client.ts';
import type { Logger } from './log.ts';
import type { StateDir } from './state-dir.ts';

const SyncState = z.strictObject({
  serverSeq: z.number().int().min(0),
  /** The endpoint holds our chain only from this seq (> 1): acks below it are to be back-filled. */
  missingBelow: z.number().int().min(2).optional(),
});
type SyncState = z.infer<typeof SyncState>;
/** What an ack answer says about the endpoint's copy of our history (ack-service.ts chainAnswer). */
const ChainAnswer = z.object({ missingBelow: z.number().int().min(2).optional() });
export const ACK_SYNC_FILE = 'ack-sync.json';
/**
 * The last completed loss check (detectLoss): when (ms) and against which control plane box. A file of
 * its own, not a field of ack-sync.json, whose strict schema an older agent (a downgrade) would refuse.
 * Read leniently: missing or unreadable only makes the check due now.
 */
export const LOSS_CHECK_FILE = 'ack-loss-check.json';
const LossCheck = z.strictObject({ at: z.number().int().min(0), url: z.string().max(2048) });
type LossCheck = z.infer<typeof LossCheck>;
/**
 * Back-filled acks posted per flush: about half the endpoint's default per-host burst (30), so a long
 * back-fill never starves the host's new acks (confirmations, failures) of rate-limit tokens; the rest
 * follows in later cycles.
 */
export const BACKFILL_PER_FLUSH = 16;
/** How long the endpoint may take to publish an accepted ack before a head that lags it counts as a loss. */
export const PUBLISH_GRACE_MS = 3000;
/**
 * The longest a run that does not otherwise read the acks the control plane publishes (a converged host
 * whose decision cannot depend on its peers: agent/cycle.ts) goes without the loss check: a box restored
 * from an older backup, or a failed-over box whose log lacks our newest acks, has them re-posted within
 * this bound. Ten timer runs at the 60 s poll: one GET of our head in ten runs instead of the wave bundles
 * in every run. A heartbeat posted meanwhile finds the loss sooner (its post is answered with the
 * endpoint's head or a back-fill request).
 */
export const LOSS_CHECK_INTERVAL_MS = 10 * 60_000;

const ConflictBody = z.object({
  error: z.string(),
  reason: z.string().optional(),
  head: z.object({ seq: z.number().int().min(0), digest: z.string() }).optional(),
});

export interface FlushResult {
  posted: number;
  /** Acks the endpoint had lost and that were posted again. */
  reposted: number;
  /** seq the endpoint has confirmed after this flush. */
  serverSeq: number;
  /** Older acks posted below the point where the endpoint adopted our chain. */
  backfilled: number;
  /** Why the flush stopped early (unreachable, refused), or null when everything is on the server. */
  stoppedBecause: string | null;
}

export class AckSync {
  /** Highest seq the endpoint had confirmed before it was found to have lost acks (for reporting). */
  private confirmedBeforeLoss = 0;

  constructor(
    private readonly state: StateDir,
    private readonly journal: AckJournal,
    private readonly client: HttpClient,
    private readonly host: string,
    private readonly log: Logger,
    private readonly postPath = 'acks',
  ) {}

  private get sync(): SyncState {
    return this.state.read(ACK_SYNC_FILE, SyncState) ?? { serverSeq: 0 };
  }

  get serverSeq(): number {
    return this.sync.serverSeq;
  }

  /** The seq below which the endpoint lacks our history, or 0 when it has asked for nothing. */
  get missingBelow(): number {
    return this.sync.missingBelow ?? 0;
  }

  private update(next: Partial<SyncState>): void {
    // Volatile: if lost, acks are re-posted and the endpoint answers with its head and missingBelow (idempotent).
    const cur = this.sync;
    const merged: SyncState = { serverSeq: next.serverSeq ?? cur.serverSeq };
    const below = 'missingBelow' in next ? next.missingBelow : cur.missingBelow;
    if (below !== undefined) merged.missingBelow = below;
    if (merged.serverSeq !== cur.serverSeq || merged.missingBelow !== cur.missingBelow)
      this.state.writeVolatile(ACK_SYNC_FILE, SyncState, merged);
  }

  private get lossChecked(): LossCheck | undefined {
    try {
      return this.state.read(LOSS_CHECK_FILE, LossCheck);
    } catch {
      // Damaged: the check is only due now (LOSS_CHECK_FILE).
      return undefined;
    }
  }

  /**
   * Why the loss check is due in a run that reads no bundles (null: not due): never done, done against
   * another control plane box (failed over, or the preferred box changed), acks the endpoint has not
   * confirmed, or LOSS_CHECK_INTERVAL_MS since the last one (or a clock that went back).
   */
  lossCheckDue(now: number): string | null {
    const s = this.sync;
    if (this.journal.lastSeq() > s.serverSeq)
      return `the journal holds acks up to seq ${this.journal.lastSeq()}, the endpoint confirmed ${s.serverSeq}`;
    const last = this.lossChecked;
    if (!last) return 'no loss check recorded';
    if (last.url !== this.client.currentUrl)
      return 'the control plane box changed since the last check';
    if (now < last.at) return 'the clock went back since the last check';
    if (now - last.at >= LOSS_CHECK_INTERVAL_MS)
      return `the last check was ${Math.round((now - last.at) / 1000)} s ago`;
    return null;
  }

  /**
   * Records a completed loss check. Refreshed only after half the interval (or on another box): a
   * record older than the true last check only brings the next check forward, and a run that checks
   * every time (it reads the bundles) does not rewrite the file every time.
   */
  private noteLossChecked(now: number): void {
    const last = this.lossChecked;
    const url = this.client.currentUrl;
    if (last && last.url === url && now >= last.at && now - last.at < LOSS_CHECK_INTERVAL_MS / 2)
      return;
    // Volatile (atomic, no fsync): lost, the check is only due sooner.
    this.state.writeVolatile(LOSS_CHECK_FILE, LossCheck, { at: now, url });
  }

  private setServerSeq(seq: number): void {
    this.update({ serverSeq: seq });
  }

  /** Records what an answer says about back-fill (absent: the endpoint holds our history from seq 1). */
  private noteAnswer(text: string): void {
    let below: number | undefined;
    try {
      below = ChainAnswer.parse(JSON.parse(text)).missingBelow;
    } catch {
      return; // not a chain answer (a proxy's error page): says nothing about history
    }
    this.update({ missingBelow: below });
  }

  /** Our own ack with that seq, if the digest matches: proof the endpoint's head is on our chain. */
  private ours(seq: number, digest: string): boolean {
    if (seq === 0) return true;
    const mine =
      seq === this.journal.lastSeq()
        ? this.journal.last()
        : this.journal.all().find((a) => a.signed.seq === seq);
    return !!mine && ackDigest(mine) === digest;
  }

  /** The latest ack the control plane publishes for this host (undefined: it has none). */
  async publishedHead(): Promise<SignedAck | undefined> {
    try {
      const bytes = await this.client.get(latestAckPath(this.host), LIMITS.ack);
      return readAck(bytes, latestAckPath(this.host));
    } catch (e) {
      if (e instanceof NotFound) return undefined;
      throw e;
    }
  }

  /**
   * Compares the published head with what the endpoint confirmed earlier; if the endpoint lost acks
   * (rebuilt from empty, torn log), lowers serverSeq so flush() re-posts them.
   *
   * `published`: this host's ack as its wave's bundle shows it (peer-acks.ts), when the cycle already
   * read that bundle. The endpoint writes a host's head file and its wave bundle from the same latest
   * ack in the same flush, so an ack of ours on our own chain at or past the confirmed seq there proves
   * what the head GET would: nothing was lost. The head is then not fetched (one request less in steady
   * state). The bundle is no more trusted than the head: a control plane can hide a loss in either, and
   * that only delays our acks (missing evidence counts against progress, never for it). Anything short
   * of that proof (no bundle, our ack missing or older) falls back to the head.
   */
  async detectLoss(now: number = Date.now(), published?: SignedAck): Promise<void> {
    const confirmed = this.serverSeq;
    if (
      confirmed === 0 ||
      (published &&
        published.signed.seq >= confirmed &&
        this.ours(published.signed.seq, ackDigest(published)))
    ) {
      this.noteLossChecked(now);
      return;
    }
    const head = await this.publishedHead();
    const headSeq = head && this.ours(head.signed.seq, ackDigest(head)) ? head.signed.seq : 0;
    // A head at or past what we know is fine. The endpoint publishes an accepted ack within about a
    // second, so a head behind an ack signed moments ago is a lag, not a loss (with heartbeats every
    // second it is the normal case); a loss shows once that ack is older than the grace.
    if (headSeq < confirmed) {
      const last = this.journal.last();
      const newest =
        last && last.signed.seq === confirmed
          ? last
          : this.journal.all().find((a) => a.signed.seq === confirmed);
      // Inconclusive: not recorded as a check, so the next run that can looks again.
      if (newest && now - Date.parse(newest.signed.time) < PUBLISH_GRACE_MS) return;
      this.confirmedBeforeLoss = Math.max(this.confirmedBeforeLoss, confirmed);
      this.log.warn('ack-loss-detected', {
        publishedSeq: head?.signed.seq ?? null,
        confirmedSeq: confirmed,
        reason: head
          ? 'the control plane publishes an older ack than it confirmed'
          : 'the control plane has no ack for this host',
      });
      this.setServerSeq(headSeq);
    }
    this.noteLossChecked(now);
  }

  /** Posts every journal entry the endpoint has not confirmed, in order. Never throws for network trouble. */
  async flush(): Promise<FlushResult> {
    let posted = 0;
    let reposted = 0;
    for (let guard = 0; guard < 10_000; guard++) {
      const serverSeq = this.serverSeq;
      const next = this.journal.after(serverSeq)[0];
      if (!next) {
        const b = await this.backfill();
        return {
          posted,
          reposted,
          backfilled: b.backfilled,
          serverSeq,
          stoppedBecause: b.stoppedBecause,
        };
      }
      let res;
      try {
        res = await this.client.post(this.postPath, canonicalString(next), LIMITS.ack);
      } catch (e) {
        return { posted, reposted, backfilled: 0, serverSeq, stoppedBecause: (e as Error).message };
      }
      const text = Buffer.from(res.body).toString('utf8');
      if (res.status === 200 || res.status === 201) {
        this.noteAnswer(text);
        posted++;
        if (next.signed.seq <= this.confirmedBeforeLoss) reposted++;
        this.setServerSeq(next.signed.seq);
        continue;
      }
      if (res.status === 409) {
        let head: { seq: number; digest: string } | undefined;
        try {
          head = ConflictBody.parse(JSON.parse(text)).head;
        } catch {
          /* unreadable 409: handled below */
        }
        if (
          head &&
          head.seq !== serverSeq &&
          head.seq <= this.journal.lastSeq() &&
          this.ours(head.seq, head.digest)
        ) {
          // The endpoint is elsewhere on our own chain: ahead (we missed its answer) or behind (it lost acks).
          this.noteAnswer(text);
          if (head.seq < serverSeq) {
            this.confirmedBeforeLoss = Math.max(this.confirmedBeforeLoss, serverSeq);
            this.log.warn('ack-endpoint-behind', {
              endpointSeq: head.seq,
              confirmedSeq: serverSeq,
            });
          }
          this.setServerSeq(head.seq);
          continue;
        }
        const why = `ack seq ${next.signed.seq} refused with 409: ${text.slice(0, 300)}`;
        this.log.error('ack-chain-conflict', { seq: next.signed.seq, answer: text.slice(0, 300) });
        return { posted, reposted, backfilled: 0, serverSeq, stoppedBecause: why };
      }
      const why = `ack seq ${next.signed.seq} refused with HTTP ${res.status}: ${text.slice(0, 300)}`;
      this.log.error('ack-refused', {
        seq: next.signed.seq,
        status: res.status,
        answer: text.slice(0, 300),
      });
      return { posted, reposted, backfilled: 0, serverSeq, stoppedBecause: why };
    }
    return {
      posted,
      reposted,
      backfilled: 0,
      serverSeq: this.serverSeq,
      stoppedBecause: 'too many ack round trips',
    };
  }

  /**
   * Posts our older acks downwards while the endpoint reports it holds our chain only from seq N > 1.
   * A busy or unavailable endpoint (429, 503, unreachable) stops the round; the next flush goes on from
   * the answer's point. A refusal that is not progress (a fork, or an ack our journal no longer has)
   * ends the back-fill, logged: retrying it could never succeed.
   */
  private async backfill(): Promise<{ backfilled: number; stoppedBecause: string | null }> {
    let backfilled = 0;
    let journal: Map<number, SignedAck> | undefined;
    const done = (stoppedBecause: string | null) => {
      if (backfilled > 0)
        this.log.info('acks-backfilled', {
          count: backfilled,
          missingBelow: this.missingBelow || null,
        });
      return { backfilled, stoppedBecause };
    };
    for (
      let below = this.missingBelow;
      below > 1 && backfilled < BACKFILL_PER_FLUSH;
      below = this.missingBelow
    ) {
      journal ??= new Map(this.journal.all().map((a) => [a.signed.seq, a]));
      const ack = journal.get(below - 1);
      if (!ack) {
        this.log.error('ack-backfill-impossible', {
          seq: below - 1,
          reason: 'the journal does not hold this ack',
        });
        this.update({ missingBelow: undefined });
        return done(null);
      }
      let res;
      try {
        res = await this.client.post(this.postPath, canonicalString(ack), LIMITS.ack);
      } catch (e) {
        return done((e as Error).message);
      }
      const text = Buffer.from(res.body).toString('utf8');
      if (res.status === 200 || res.status === 201) {
        backfilled++;
        this.noteAnswer(text);
        continue;
      }
      if (res.status === 409) {
        this.noteAnswer(text);
        if (this.missingBelow > 0 && this.missingBelow < below) continue;
        this.log.error('ack-backfill-refused', { seq: below - 1, answer: text.slice(0, 300) });
        this.update({ missingBelow: undefined });
        return done(null);
      }
      return done(
        `back-fill of ack seq ${below - 1} refused with HTTP ${res.status}: ${text.slice(0, 300)}`,
      );
    }
    return done(null);
  }

  /**
   * The confirm round trip: true once the control plane publishes `ack` (or a later ack of ours) as this
   * host's latest. Polls until `deadlineMs`.
   */
  async readBack(
    ack: SignedAck,
    deadlineMs: number,
    pollMs = 250,
    now: () => number = Date.now,
  ): Promise<boolean> {
    const want = ackDigest(ack);
    let misses = 0;
    while (now() < deadlineMs) {
      // A post that failed (ack endpoint restarting, nginx answering 502) is retried inside the window:
      // a short outage must not turn a healthy activation into a rollback.
      if (this.serverSeq < ack.signed.seq) await this.flush();
      try {
        const head = await this.publishedHead();
        if (
          head &&
          (ackDigest(head) === want ||
            (head.signed.seq > ack.signed.seq && this.ours(head.signed.seq, ackDigest(head))))
        )
          return true;
        // Confirmed but not published: the publisher lags a second, or the endpoint lost the ack (rebuilt
        // from empty, torn log). The loss check tells them apart (grace period); on a loss it lowers
        // serverSeq, so the next round re-posts.
        if (++misses >= 3) {
          misses = 0;
          await this.detectLoss(now());
        }
      } catch {
        /* unreachable: keep trying until the deadline */
      }
      await new Promise((r) => setTimeout(r, Math.max(0, Math.min(pollMs, deadlineMs - now()))));
    }
    return false;
  }
}
