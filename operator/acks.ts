// Acks as an operator reads them: from a tree's `acks/` (each host's latest ack and the per-wave
// bundles) or from the ack endpoint's append-only log (the full history). The control plane is not
// trusted, so every ack is verified against the host key of the SIGNED release before it counts; an
// ack that does not verify is never believed, only reported (with where it came from and why).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { readAck, verifyAckSignature, type SignedAck } from '../protocol/acks.ts';
import { signedTextOf } from '../protocol/envelope.ts';
import { keyIdOf, unb64 } from '../protocol/keys.ts';
import { verifyBatch, type SignatureJob } from '../protocol/verify/batch-verify.ts';
import { isVerificationError, Malformed, TooLarge } from '../protocol/errors.ts';
import { LIMITS } from '../protocol/limits.ts';
import { AckBundle } from '../protocol/schemas/ack.ts';
import { parseWith } from '../protocol/schemas/parse.ts';
import { parseStrictJson } from '../protocol/strict-json.ts';
import { canonicalString, sha256Digest } from '../protocol/canonical.ts';
import { parseAckLog } from '../control-plane/ack-log.ts';
import type { AckRecord } from '../reconciler/index.ts';

/** An ack log bigger than this is refused rather than read into memory whole. */
export const MAX_ACK_LOG_BYTES = 1024 * 1024 * 1024;

export interface AckRejection {
  /** Where the ack was found: a tree-relative file, `file#index` inside a bundle, or `log:line`. */
  source: string;
  /** The host the ack claims to be from, when it could be read at all. */
  host: string | null;
  /** A VerificationError code (BadSignature, WrongHost, Malformed, ...), or UnknownHost / WrongFleet. */
  code: string;
  reason: string;
}

export interface VerifiedAcks {
  /** Every distinct verified ack (`.signed`), in the order found. Use latestAcks() for the newest per host. */
  acks: AckRecord[];
  rejected: AckRejection[];
}

/** The parts of a verified release an ack is checked against. */
export interface AckTrust {
  fleet: string;
  /** Host -> base64 host key from the signed channel plans. */
  hostKeys: ReadonlyMap<string, string>;
}

interface PendingAck {
  ack: SignedAck;
  bytes: Uint8Array;
  source: string;
  host: string;
  hostKey: string;
}

/**
 * Collects acks from any number of sources, de-duplicated by their bytes, and verifies them in one batch
 * on every core when `result()` is called (a long ack log is mostly signature checks). Only "accepted"
 * is trusted from the batch; anything else goes through verifyAckSignature, which gives the typed error.
 */
export class AckCollector {
  private readonly seen = new Set<string>();
  private pending: PendingAck[] = [];
  private readonly keyIds = new Map<string, { keyid: string; publicKey: Uint8Array }>();
  readonly acks: AckRecord[] = [];
  readonly rejected: AckRejection[] = [];

  constructor(private readonly trust: AckTrust) {}

  /** `expectedHost`: the host a per-host file is named after; its ack must be that host's. */
  add(raw: Uint8Array | string, source: string, expectedHost?: string): void {
    const bytes = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    let ack: SignedAck;
    try {
      ack = readAck(bytes, source);
    } catch (e) {
      if (!isVerificationError(e)) throw e;
      this.reject(source, null, e.code, e.detail);
      return;
    }
    const host = ack.signed.host;
    if (expectedHost !== undefined && expectedHost !== host) {
      this.reject(source, host, 'WrongHost', `ack is for host ${host}, expected ${expectedHost}`);
      return;
    }
    // The same ack is usually found twice (the log and the tree's latest ack): verify it once.
    const digest = sha256Digest(bytes);
    if (this.seen.has(digest)) return;
    this.seen.add(digest);
    if (ack.signed.fleet !== this.trust.fleet) {
      this.reject(source, host, 'WrongFleet', `ack is for fleet "${ack.signed.fleet}", the trust root is for "${this.trust.fleet}"`);
      return;
    }
    const hostKey = this.trust.hostKeys.get(host);
    if (hostKey === undefined) {
      this.reject(source, host, 'UnknownHost', `host "${host}" is in no channel plan of the verified release`);
      return;
    }
    this.pending.push({ ack, bytes, source, host, hostKey });
  }

  /** Verifies what was added since the last call and returns every verified ack and every rejection. */
  result(): VerifiedAcks {
    const pending = this.pending;
    this.pending = [];
    const jobs: SignatureJob[] = [];
    const jobOf = pending.map((p) => {
      const sig = p.ack.signatures[0];
      if (p.ack.signatures.length !== 1 || sig === undefined) return -1;
      const key = this.keyOf(p.hostKey);
      const text = signedTextOf(p.bytes, p.ack.signatures);
      if (sig.keyid !== key.keyid || text === undefined) return -1;
      jobs.push({ publicKey: key.publicKey, message: text, signature: unb64(sig.sig) });
      return jobs.length - 1;
    });
    const accepted = verifyBatch(jobs);
    pending.forEach((p, i) => {
      const job = jobOf[i]!;
      if (job < 0 || !accepted[job]) {
        try {
          verifyAckSignature(p.ack, p.host, p.hostKey, p.source);
        } catch (e) {
          if (!isVerificationError(e)) throw e;
          this.reject(p.source, p.host, e.code, e.detail);
          return;
        }
      }
      this.acks.push(p.ack.signed);
    });
    return { acks: this.acks, rejected: this.rejected };
  }

  private keyOf(hostKey: string): { keyid: string; publicKey: Uint8Array } {
    let k = this.keyIds.get(hostKey);
    if (k === undefined) {
      const publicKey = unb64(hostKey);
      this.keyIds.set(hostKey, (k = { keyid: keyIdOf(publicKey), publicKey }));
    }
    return k;
  }

  private reject(source: string, host: string | null, code: string, reason: string): void {
    this.rejected.push({ source, host, code, reason });
  }
}

function readCapped(path: string, maxBytes: number, label: string): Buffer {
  const st = statSync(path);
  // A device or FIFO reports size 0 and never ends: only regular files are read.
  if (!st.isFile()) throw new Malformed(label, 'not a regular file');
  const size = st.size;
  if (size > maxBytes) throw new TooLarge(label, `${size} bytes exceeds the limit of ${maxBytes}`);
  return readFileSync(path);
}

function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return [];
    throw e;
  }
}

/**
 * The acks an `acks/` directory holds: `hosts/<host>.json` (each host's latest) and
 * `channels/<ch>/wave-<i>.json` (bundles). Sources are named relative to the tree (`acks/...`).
 */
export function collectTreeAcks(acksDir: string, collector: AckCollector): void {
  for (const f of listDir(join(acksDir, 'hosts'))) {
    if (!f.endsWith('.json') || f.startsWith('.')) continue;
    const source = `acks/hosts/${f}`;
    try {
      collector.add(readCapped(join(acksDir, 'hosts', f), LIMITS.ack, source), source, f.slice(0, -'.json'.length));
    } catch (e) {
      if (!isVerificationError(e)) throw e;
      collector.rejected.push({ source, host: null, code: e.code, reason: e.detail });
    }
  }
  for (const ch of listDir(join(acksDir, 'channels'))) {
    if (ch.startsWith('.')) continue;
    for (const f of listDir(join(acksDir, 'channels', ch))) {
      if (!/^wave-[0-9]+\.json$/.test(f)) continue;
      const source = `acks/channels/${ch}/${f}`;
      let bundle: AckBundle;
      try {
        const bytes = readCapped(join(acksDir, 'channels', ch, f), LIMITS.ackBundle, source);
        bundle = parseWith(AckBundle, parseStrictJson(bytes, { file: source, maxBytes: LIMITS.ackBundle }), source);
      } catch (e) {
        if (!isVerificationError(e)) throw e;
        collector.rejected.push({ source, host: null, code: e.code, reason: e.detail });
        continue;
      }
      bundle.acks.forEach((a, i) => collector.add(canonicalString(a), `${source}#${i}`));
    }
  }
}

/**
 * Every ack of an ack endpoint log (`acks.log`). A torn tail (a crash mid-append, never acknowledged)
 * is skipped; a corrupt record followed by valid ones throws AckLogCorrupt, as the endpoint does.
 */
export function collectAckLog(logFile: string, collector: AckCollector): { records: number; tornBytes: number } {
  const parsed = parseAckLog(readCapped(logFile, MAX_ACK_LOG_BYTES, logFile), logFile);
  parsed.records.forEach((r, i) => collector.add(r.canonical, `${logFile}:${i + 1}`));
  return { records: parsed.records.length, tornBytes: parsed.tornBytes };
}

export function readTreeAcks(acksDir: string, trust: AckTrust): VerifiedAcks {
  const c = new AckCollector(trust);
  collectTreeAcks(acksDir, c);
  return c.result();
}

export function readAckLog(logFile: string, trust: AckTrust): VerifiedAcks & { tornBytes: number } {
  const c = new AckCollector(trust);
  const { tornBytes } = collectAckLog(logFile, c);
  return { ...c.result(), tornBytes };
}
