// The host's own ack history: an append-only JSON-lines file of signed ack envelopes, fsynced on every
// append. It is the source of the next sequence number and previous-hash, and the copy the agent
// re-posts when the control plane has lost acks (rebuilt from empty, torn log). A torn last line (crash
// mid-append) is cut on open; everything before it was fsynced and stays.
import {
  closeSync,
  copyFileSync,
  existsSync,
  fstatSync,
  fsyncSync,
  openSync,
  readSync,
  readFileSync,
  ftruncateSync,
  writeSync,
} from 'node:fs';
import {
  ackDigest,
  readAck,
  signAck,
  type SignedAck,
  type SigningKey,
  type Ack,
  type AckKind,
  SCHEMA_VERSION,
  isoTime,
  canonicalString,
  type ControlEvidence,
} from '../protocol/index.ts';
import { LocalStateError, localWrite, type StateDir } from './state-dir.ts';

export const ACK_JOURNAL_FILE = 'acks.jsonl';

export interface AckFields {
  kind: AckKind;
  releaseVersion: number;
  rolloutId: string | null;
  target: string | null;
  current: string | null;
  healthySince: string | null;
  probes: { name: string; ok: boolean; detail: string }[];
  reason: string | null;
  /** Runtime compliance controls' results (agent/compliance.ts); absent outside compliance channels. */
  evidence?: ControlEvidence[];
}

export class AckJournal {
  private lastAck: SignedAck | undefined;
  private readonly file: string;

  constructor(
    state: StateDir,
    private readonly fleet: string,
    private readonly host: string,
    private readonly key: SigningKey,
  ) {
    this.file = state.path(ACK_JOURNAL_FILE);
    this.lastAck = this.recoverTail();
  }

  /** Reads only the end of the file (steady-state cycles must stay cheap), cutting a torn last line. */
  private recoverTail(): SignedAck | undefined {
    if (!existsSync(this.file)) return undefined;
    const fd = openSync(this.file, 'r+');
    try {
      for (let window = 64 * 1024; ; window *= 4) {
        const size = fstatSync(fd).size;
        if (size === 0) return undefined;
        const start = Math.max(0, size - window);
        const buf = Buffer.alloc(size - start);
        readSync(fd, buf, 0, buf.length, start);
        if (buf[buf.length - 1] !== 0x0a) {
          // The bytes after the last newline never completed an append: cut them.
          const nl = buf.lastIndexOf(0x0a);
          if (nl < 0 && start > 0) continue;
          ftruncateSync(fd, nl < 0 ? 0 : start + nl + 1);
          fsyncSync(fd);
          window /= 4;
          continue;
        }
        const prevNl = buf.lastIndexOf(0x0a, buf.length - 2);
        if (prevNl < 0 && start > 0) continue;
        try {
          return readAck(buf.subarray(prevNl + 1, buf.length - 1), this.file);
        } catch {
          return this.cutDamagedTail(fd);
        }
      }
    } finally {
      closeSync(fd);
    }
  }

  /**
   * Complete lines at the end that are not acks (garbage appended by something else, a damaged block)
   * were never signed by this agent as they stand: the file is copied aside for inspection
   * (`acks.jsonl.damaged-<ms>`) and cut back to its last readable ack, so the chain goes on from there.
   * Rare path: reads the whole file.
   */
  private cutDamagedTail(fd: number): SignedAck | undefined {
    const all = readFileSync(this.file);
    let end = all.length;
    let last: SignedAck | undefined;
    while (end > 0) {
      const prevNl = end >= 2 ? all.lastIndexOf(0x0a, end - 2) : -1;
      try {
        last = readAck(all.subarray(prevNl + 1, end - 1), this.file);
        break;
      } catch {
        end = prevNl + 1;
      }
    }
    const aside = `${this.file}.damaged-${Date.now()}`;
    localWrite(aside, () => copyFileSync(this.file, aside));
    ftruncateSync(fd, end);
    fsyncSync(fd);
    this.repaired = { savedAs: aside, cutBytes: all.length - end };
    return last;
  }

  /** Set when opening cut unreadable lines off the end (the caller logs it). */
  repaired: { savedAs: string; cutBytes: number } | null = null;

  last(): SignedAck | undefined {
    return this.lastAck;
  }

  lastSeq(): number {
    return this.lastAck?.signed.seq ?? 0;
  }

  /** Every ack in order (used for re-posting and for tests). */
  all(): SignedAck[] {
    if (!existsSync(this.file)) return [];
    return readFileSync(this.file, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l, i) => {
        try {
          return readAck(l, `${this.file}:${i + 1}`);
        } catch (e) {
          throw new LocalStateError(`${this.file}:${i + 1}`, 'damaged', (e as Error).message);
        }
      });
  }

  /** Acks with seq > afterSeq, in order. */
  after(afterSeq: number): SignedAck[] {
    if (afterSeq >= this.lastSeq()) return [];
    return this.all().filter((a) => a.signed.seq > afterSeq);
  }

  /** Signs the next ack of the chain and makes it durable before returning it. */
  append(fields: AckFields, nowMs: number): SignedAck {
    const prev = this.lastAck;
    const ack: Ack = {
      type: 'ack',
      schemaVersion: SCHEMA_VERSION,
      fleet: this.fleet,
      host: this.host,
      seq: (prev?.signed.seq ?? 0) + 1,
      prev: prev ? ackDigest(prev) : null,
      time: isoTime(nowMs),
      ...fields,
      reason: fields.reason === null ? null : fields.reason.slice(0, 512),
    };
    const signed = signAck(ack, this.key);
    localWrite(this.file, () => {
      const fd = openSync(this.file, 'a', 0o600);
      const size = fstatSync(fd).size;
      try {
        const line = Buffer.from(canonicalString(signed) + '\n', 'utf8');
        let off = 0;
        while (off < line.length) off += writeSync(fd, line, off, line.length - off);
        fsyncSync(fd);
      } catch (e) {
        // Disk full mid-line: cut the partial line now rather than leave it for the next open.
        try {
          ftruncateSync(fd, size);
        } catch {
          /* the next open cuts it */
        }
        throw e;
      } finally {
        closeSync(fd);
      }
    });
    this.lastAck = signed;
    return signed;
  }
}
