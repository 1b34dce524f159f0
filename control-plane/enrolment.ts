// The enrolment endpoint (its own small process, `nixfleet enrol serve`, behind nginx at POST /enrol):
// a host proves it holds the host key of the signed release and either presents a one-time token
// (first enrolment) or its current certificate over mTLS (renewal), and gets a short-lived client
// certificate (CN = host, OU = agent) from the issuing CA (control-plane/pki.ts). The workflow reads as
// the checks it makes, in order; each refusal is a typed error naming what failed:
//   1. the installed tree verifies against the pinned root and is fresh (else 503: no certificates
//      from a stale or unverifiable view);
//   2. the request is signed by the host key the release lists for its host, of this fleet, fresh,
//      and bound to exactly the CSR sent;
//   3. the host is not revoked (signed revocations: host, host key, certificate serial);
//   4. enrol: the token verifies (enrolment role, host + host key, lifetime, nonce allowed by the bound
//      nonce document) and names this request's host and nonce; renew: nginx verified a certificate of
//      this host (OU agent), and the CSR key is not that certificate's key;
//   5. the CSR's self-signature holds and its key was never certified here before;
//   6. the nonce is unused (durable record); the reservation is fsynced, then the certificate issued.
// A retry of the very request whose reservation exists (a crash between reservation and answer) gets
// that reservation's certificate; anything else touching a used nonce or key is refused.
import { randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import {
  auditTree,
  diskTreeSource,
  hostKeysOfPlans,
  isVerificationError,
  isoTime,
  keyIdOf,
  KeyReused,
  LIMITS,
  Malformed,
  NonceRefused,
  parseStrictJson,
  parseWith,
  readEnrolmentRequest,
  readEnrolmentToken,
  Revoked,
  servedRoot,
  TIMESTAMP_PATH,
  unb64,
  verifyEnrolmentRequest,
  verifyEnrolmentToken,
  WrongHost,
  type EnrolmentNonces,
  type EnrolmentRequest,
  type Revocations,
  type SignedRoot,
  type TrustRoot,
} from '../protocol/index.ts';
import type { ClientIdentity } from './identity.ts';
import { EnrolmentRecord, type Reservation } from './enrolment-record.ts';
import { csrPublicKey, issueFromCsr, PkiError, publicKeyDigest } from './pki.ts';
import { normalizeSerial } from './release-view.ts';

/** Certificates are short-lived: agents renew at 2/3 of the lifetime, so a week leaves days of slack. */
export const DEFAULT_CERT_DAYS = 7;
/** A month at most: enrolment certificates are meant to be renewed, not kept. */
export const MAX_CERT_DAYS = 31;

/** POST /enrol body: the token file's text (enrol) or null (renew), the signed request's text, the CSR PEM. */
export const EnrolmentPost = z.strictObject({
  token: z.string().max(8192).nullable(),
  request: z.string().max(4096),
  csr: z.string().max(4096),
});
export type EnrolmentPost = z.infer<typeof EnrolmentPost>;

export interface EnrolmentAnswer {
  status: number;
  body: Record<string, unknown>;
  retryAfter?: number;
}

export interface EnrolmentServiceOptions {
  /** The control plane's tree directory (its installed `current` tree is verified). */
  treeDir: string;
  pinnedRoot: SignedRoot;
  /** The issuing CA directory (`nixfleet pki issuing-ca`). */
  issuingDir: string;
  /** Where the durable record and the issued certificates live. */
  stateDir: string;
  certDays?: number;
  clockSkewSeconds?: number;
  now?: () => number;
  log?: (event: Record<string, unknown>) => void;
  /** Test hook: runs after the reservation is durable and before the certificate is issued. */
  afterReserve?: (r: Reservation) => Promise<void>;
}

/** What the endpoint believes, from one verification of the installed tree. */
interface TrustView {
  signature: string;
  root: TrustRoot;
  fleet: string;
  hostKeys: Map<string, string>;
  revocations: Revocations;
  nonces: EnrolmentNonces | null;
}

class NotReady extends Error {}

export class EnrolmentService {
  private view: TrustView | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  readonly record: EnrolmentRecord;
  private readonly certDays: number;

  constructor(private readonly o: EnrolmentServiceOptions) {
    this.certDays = o.certDays ?? DEFAULT_CERT_DAYS;
    if (!Number.isInteger(this.certDays) || this.certDays < 1 || this.certDays > MAX_CERT_DAYS)
      throw new Error(`certDays must be 1..${MAX_CERT_DAYS}, got ${this.certDays}`);
    this.record = EnrolmentRecord.open(o.stateDir);
  }

  /** One request at a time: the nonce and key checks and the reservation must not interleave. */
  handle(
    body: Uint8Array,
    identity: ClientIdentity | null,
    presentedCert: string | null,
  ): Promise<EnrolmentAnswer> {
    const run = this.queue.then(() => this.answer(body, identity, presentedCert));
    this.queue = run.catch(() => undefined);
    return run;
  }

  close(): void {
    this.record.close();
  }

  private async answer(
    body: Uint8Array,
    identity: ClientIdentity | null,
    presentedCert: string | null,
  ): Promise<EnrolmentAnswer> {
    const now = this.now();
    try {
      const view = await this.trustView(now);
      const post = parsePost(body);
      const request = this.verifyRequest(post, view, now);
      requireNotRevoked(request.host, view, identity);
      if (request.kind === 'enrol') this.verifyToken(post, request, view, now);
      else requireRenewalIdentity(request, identity);
      const key = csrKey(post.csr, request.kind === 'renew' ? presentedCert : null);
      return await this.issueOnce(request, post.csr, key, now);
    } catch (e) {
      return this.refusal(e);
    }
  }

  private now(): number {
    return this.o.now ? this.o.now() : Date.now();
  }

  /** Step 1: the installed tree, verified against the pinned root (again only when its timestamp changes). */
  private async trustView(now: number): Promise<TrustView> {
    const root = servedRoot(this.o.treeDir);
    if (!root || !existsSync(join(root, TIMESTAMP_PATH)))
      throw new NotReady('no verified release is installed yet');
    const st = statSync(join(root, TIMESTAMP_PATH));
    const signature = `${root}:${st.ino}:${st.mtimeMs}:${st.size}`;
    if (this.view?.signature === signature && this.fresh(now)) return this.view;
    try {
      const { release } = await auditTree(diskTreeSource(root), this.o.pinnedRoot, {
        now,
        manifests: [],
        ...(this.o.clockSkewSeconds === undefined
          ? {}
          : { clockSkewSeconds: this.o.clockSkewSeconds }),
      });
      this.view = {
        signature,
        root: release.root.signed,
        fleet: release.root.signed.fleet,
        hostKeys: hostKeysOfPlans(release.plans),
        revocations: release.revocations.signed,
        nonces: release.enrolment?.signed ?? null,
      };
      this.expires = Date.parse(release.timestamp.signed.expires);
      return this.view;
    } catch (e) {
      this.view = null;
      throw new NotReady(
        `the installed tree does not verify: ${isVerificationError(e) ? `${e.code}: ${e.file}: ${e.detail}` : (e as Error).message}`,
      );
    }
  }

  private expires = 0;
  private fresh(now: number): boolean {
    return now < this.expires;
  }

  /** Step 2. */
  private verifyRequest(post: EnrolmentPost, view: TrustView, now: number): EnrolmentRequest {
    return verifyEnrolmentRequest(readEnrolmentRequest(post.request), post.csr, {
      fleet: view.fleet,
      hostKeys: view.hostKeys,
      now,
      clockSkewSeconds: this.o.clockSkewSeconds ?? 300,
    });
  }

  /** Step 4 (enrol). */
  private verifyToken(
    post: EnrolmentPost,
    request: EnrolmentRequest,
    view: TrustView,
    now: number,
  ): void {
    if (post.token === null)
      throw new Malformed('enrolment request', 'a first enrolment needs a token (token: null)');
    const token = verifyEnrolmentToken(readEnrolmentToken(post.token), {
      root: view.root,
      nonces: view.nonces,
      hostKeys: view.hostKeys,
      now,
      clockSkewSeconds: this.o.clockSkewSeconds ?? 300,
    });
    if (token.host !== request.host)
      throw new WrongHost(
        'enrolment token',
        `is for host "${token.host}", the request is signed for "${request.host}"`,
      );
    if (token.nonce !== request.nonce)
      throw new NonceRefused('enrolment request', 'names another nonce than the token');
  }

  /** Steps 5-6, under the queue: reuse checks, durable reservation, issuance. */
  private async issueOnce(
    request: EnrolmentRequest,
    csrPem: string,
    key: string,
    now: number,
  ): Promise<EnrolmentAnswer> {
    const retried = this.retriedReservation(request, key);
    if (retried) return this.deliver(retried, csrPem, 'recovered');
    const reservation: Reservation = {
      kind: request.kind,
      host: request.host,
      nonce: request.nonce,
      csr: request.csr,
      key,
      serial: newSerial(),
      at: isoTime(now),
    };
    this.record.reserve(reservation);
    this.o.log?.({
      event: 'enrolment-reserved',
      host: request.host,
      kind: request.kind,
      serial: reservation.serial,
    });
    await this.o.afterReserve?.(reservation);
    return this.deliver(reservation, csrPem, 'issued');
  }

  /**
   * The reservation this very request made before (same host, nonce and CSR): a retry after a crash.
   * Any other use of a recorded nonce or key is refused.
   */
  private retriedReservation(request: EnrolmentRequest, key: string): Reservation | undefined {
    const byNonce = request.nonce === null ? undefined : this.record.nonceUse(request.nonce);
    const byKey = this.record.keyUse(key);
    const same = (r: Reservation | undefined) =>
      r !== undefined &&
      r.host === request.host &&
      r.csr === request.csr &&
      r.nonce === request.nonce &&
      r.key === key;
    if (byNonce && !same(byNonce))
      throw new NonceRefused(
        'enrolment token',
        `nonce ${request.nonce!.slice(0, 16)}.. was already used (certificate ${byNonce.serial} for ${byNonce.host})`,
      );
    if (byKey && !same(byKey))
      throw new KeyReused(
        'csr',
        `this key was already certified (certificate ${byKey.serial} for ${byKey.host}); generate a new key`,
      );
    return byKey;
  }

  /** Issues the reservation's certificate unless it already exists, and answers with it. */
  private deliver(r: Reservation, csrPem: string, status: 'issued' | 'recovered'): EnrolmentAnswer {
    const certFile = this.record.certPath(r.serial);
    if (!existsSync(certFile))
      issueFromCsr(
        this.o.issuingDir,
        csrPem,
        { host: r.host, serial: r.serial, days: this.certDays },
        certFile,
      );
    const certificate = readFileSync(certFile, 'utf8');
    const x = new X509Certificate(certificate);
    this.o.log?.({
      event: `enrolment-${status}`,
      host: r.host,
      kind: r.kind,
      serial: r.serial,
      notAfter: x.validTo,
    });
    return {
      status: status === 'issued' ? 201 : 200,
      body: {
        status,
        host: r.host,
        serial: r.serial,
        notAfter: new Date(x.validTo).toISOString(),
        certificate,
        chain: readFileSync(join(this.o.issuingDir, 'ca.crt'), 'utf8'),
      },
    };
  }

  private refusal(e: unknown): EnrolmentAnswer {
    if (e instanceof NotReady)
      return { status: 503, retryAfter: 30, body: { error: 'NotReady', reason: e.message } };
    if (e instanceof PkiError) return { status: 400, body: { error: 'BadCsr', reason: e.message } };
    if (isVerificationError(e)) {
      const status =
        e.code === 'Malformed' || e.code === 'TooLarge' || e.code === 'SchemaUnsupported'
          ? 400
          : 403;
      this.o.log?.({ event: 'enrolment-refused', code: e.code, file: e.file, detail: e.detail });
      return { status, body: { error: e.code, file: e.file, reason: e.detail } };
    }
    throw e;
  }
}

function parsePost(body: Uint8Array): EnrolmentPost {
  return parseWith(
    EnrolmentPost,
    parseStrictJson(body, { file: 'enrolment request', maxBytes: LIMITS.enrolmentRequest }),
    'enrolment request',
  );
}

/** Step 3: the signed revocations, by host, host key and (renewal) the presented certificate's serial. */
function requireNotRevoked(host: string, view: TrustView, identity: ClientIdentity | null): void {
  const keyid = keyIdOf(unb64(view.hostKeys.get(host)!));
  for (const r of view.revocations.hosts) {
    if (r.host !== host) continue;
    if (r.keyid === null || r.keyid === keyid)
      throw new Revoked('enrolment request', `host "${host}" is revoked (${r.reason})`);
    if (
      r.certSerial !== null &&
      identity?.serial &&
      normalizeSerial(identity.serial) === normalizeSerial(r.certSerial)
    )
      throw new Revoked(
        'enrolment request',
        `certificate ${identity.serial} of "${host}" is revoked (${r.reason})`,
      );
  }
}

/** Step 4 (renew): nginx verified a client certificate of this very host. */
function requireRenewalIdentity(request: EnrolmentRequest, identity: ClientIdentity | null): void {
  if (identity === null)
    throw new WrongHost(
      'enrolment request',
      'a renewal needs the current client certificate (mTLS); enrol with a token instead',
    );
  if (identity.ou !== 'agent' || identity.cn !== request.host)
    throw new WrongHost(
      'enrolment request',
      `is for "${request.host}", but the client certificate is ${identity.ou ?? 'no OU'}/${identity.cn}`,
    );
}

/** Step 5: the CSR's key (self-signature checked), never the presented certificate's key. */
function csrKey(csrPem: string, presentedCert: string | null): string {
  const key = publicKeyDigest(csrPublicKey(csrPem));
  if (
    presentedCert !== null &&
    publicKeyDigest(new X509Certificate(presentedCert).publicKey) === key
  )
    throw new KeyReused('csr', 'is for the key of the current certificate; renew with a new key');
  return key;
}

/** 16 random bytes, top bit clear (a positive serial), never starting with 00 (one spelling everywhere). */
function newSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x10;
  return b.toString('hex').toUpperCase();
}
