// The enrolment endpoint's durable memory: every certificate it reserved, one JSON line each, appended
// and fsynced BEFORE the certificate is issued and the answer sent. So a used nonce stays used and a
// certified key stays certified across a crash at any point, and a request retried after a crash finds
// its reservation (same nonce, same CSR) and gets the certificate of that reservation's serial: nothing
// is ever issued twice. A torn last line (a crash inside the append) was never acted on and is cut at
// open; a damaged complete line refuses the start rather than forget a used nonce.
import {
  closeSync,
  existsSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  Digest,
  EnrolmentNonce,
  HostName,
  IsoTime,
  fsyncDir,
  parseStrictJson,
  parseWith,
} from '../protocol/index.ts';

export const Reservation = z.strictObject({
  kind: z.enum(['enrol', 'renew']),
  host: HostName,
  /** The token's nonce (enrol), null (renew). */
  nonce: EnrolmentNonce.nullable(),
  /** sha256 of the CSR PEM (the request binds it). */
  csr: Digest,
  /** sha256 of the CSR key's SPKI DER. */
  key: Digest,
  /** Uppercase hex serial of the certificate issued for this reservation. */
  serial: z.string().regex(/^[0-9A-F]{2,40}$/),
  at: IsoTime,
});
export type Reservation = z.infer<typeof Reservation>;

export class EnrolmentRecordCorrupt extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    detail: string,
  ) {
    super(
      `${file}: line ${line} is damaged (${detail}); refusing to start without knowing which nonces were used`,
    );
    this.name = 'EnrolmentRecordCorrupt';
  }
}

export const RECORD_FILE = 'reservations.jsonl';

export class EnrolmentRecord {
  private readonly byNonce = new Map<string, Reservation>();
  private readonly byKey = new Map<string, Reservation>();
  readonly file: string;
  /** Bytes of a torn last line cut at open (0: none). */
  readonly cutBytes: number;

  private constructor(
    readonly dir: string,
    private readonly fd: number,
    entries: Reservation[],
    cutBytes: number,
  ) {
    this.file = join(dir, RECORD_FILE);
    this.cutBytes = cutBytes;
    for (const r of entries) this.remember(r);
  }

  static open(dir: string): EnrolmentRecord {
    mkdirSync(join(dir, 'certs'), { recursive: true, mode: 0o700 });
    const file = join(dir, RECORD_FILE);
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    const entries = complete
      .split('\n')
      .filter((l) => l !== '')
      .map((line, i) => parseLine(file, line, i + 1));
    const fd = openSync(file, 'a+', 0o600);
    const cut = Buffer.byteLength(text) - Buffer.byteLength(complete);
    if (cut > 0) {
      ftruncateSync(fd, Buffer.byteLength(complete));
      fdatasyncSync(fd);
    }
    fsyncDir(dir);
    return new EnrolmentRecord(dir, fd, entries, cut);
  }

  nonceUse(nonce: string): Reservation | undefined {
    return this.byNonce.get(nonce);
  }

  keyUse(keyDigest: string): Reservation | undefined {
    return this.byKey.get(keyDigest);
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Where the certificate of a reservation is kept (written atomically once issued). */
  certPath(serial: string): string {
    return join(this.dir, 'certs', `${serial}.crt`);
  }

  /** Appends and fsyncs the reservation; only then may the certificate be issued. */
  reserve(r: Reservation): void {
    writeSync(this.fd, JSON.stringify(r) + '\n');
    fdatasyncSync(this.fd);
    this.remember(r);
  }

  close(): void {
    closeSync(this.fd);
  }

  private remember(r: Reservation): void {
    if (r.nonce !== null) this.byNonce.set(r.nonce, r);
    this.byKey.set(r.key, r);
  }
}

function parseLine(file: string, line: string, n: number): Reservation {
  try {
    return parseWith(Reservation, parseStrictJson(line, { file, maxBytes: 4096 }), file);
  } catch (e) {
    throw new EnrolmentRecordCorrupt(file, n, (e as Error).message);
  }
}
