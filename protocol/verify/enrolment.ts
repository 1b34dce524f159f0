// Enrolment documents (see protocol/schemas/enrolment.ts): the nonce document as the timestamp binds it,
// the one-time token, and the host-signed request. Pure: the caller passes the verified root, the
// verified nonce document, the host keys of the verified release and `now`.
import { readEnvelope } from '../document.ts';
import { sha256Digest } from '../canonical.ts';
import { verifyEnvelope } from '../envelope.ts';
import { keyIdOf, unb64 } from '../keys.ts';
import { Expired, MixAndMatch, NonceRefused, UnknownHost, WrongHost } from '../errors.ts';
import { LIMITS } from '../limits.ts';
import { TIMESTAMP_PATH } from '../layout.ts';
import {
  EnrolmentNonces,
  EnrolmentRequest,
  EnrolmentToken,
  MAX_TOKEN_LIFETIME_SECONDS,
  isoTime,
  parseIsoTime,
  type SignedDocument,
  type Timestamp,
  type TrustRoot,
} from '../schemas/index.ts';
import { verifyEnrolmentSigned } from '../trust-root.ts';
import { requireBoundVersion, requireFleet, requireNotFutureDated } from './documents.ts';

/** The label refusals name for the parts of an enrolment request (they are not files of the tree). */
export const TOKEN_LABEL = 'enrolment token';
export const REQUEST_LABEL = 'enrolment request';

export const readEnrolmentNonces = (b: Uint8Array, file: string) =>
  readEnvelope(b, EnrolmentNonces, { file, maxBytes: LIMITS.enrolment, expectType: 'enrolment' });
export const readEnrolmentToken = (b: Uint8Array | string, file = TOKEN_LABEL) =>
  readEnvelope(b, EnrolmentToken, {
    file,
    maxBytes: LIMITS.enrolmentRequest,
    expectType: 'enrolment-token',
  });
export const readEnrolmentRequest = (b: Uint8Array | string, file = REQUEST_LABEL) =>
  readEnvelope(b, EnrolmentRequest, {
    file,
    maxBytes: LIMITS.enrolmentRequest,
    expectType: 'enrolment-request',
  });

/** A nonce document on its own: enrolment-role signature, fleet, not issued after `now` + skew. */
export function verifyEnrolmentDocument(
  bytes: Uint8Array,
  root: TrustRoot,
  file: string,
  now?: number,
  clockSkewSeconds = 300,
): SignedDocument<EnrolmentNonces> {
  const env = readEnrolmentNonces(bytes, file);
  verifyEnrolmentSigned(env, root, file, bytes);
  requireFleet(env.signed, root, file);
  if (now !== undefined) requireNotFutureDated(env.signed.issuedAt, now, clockSkewSeconds, file);
  return env;
}

/** The nonce document the timestamp binds (call only when `ts.enrolment` is set). */
export function verifyEnrolmentNonces(
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  highestSeen: number,
  now: number,
  clockSkewSeconds: number,
): SignedDocument<EnrolmentNonces> {
  const ref = ts.enrolment!;
  const file = ref.file.path;
  const env = verifyEnrolmentDocument(bytes, root, file, now, clockSkewSeconds);
  requireBoundVersion(bytes, env.signed, ref, highestSeen, file, TIMESTAMP_PATH);
  return env;
}

export interface TokenContext {
  root: TrustRoot;
  /** The nonce document the verified timestamp binds (null: none bound, so no token is allowed). */
  nonces: EnrolmentNonces | null;
  /** Base64 host keys of the verified release's channel plans. */
  hostKeys: ReadonlyMap<string, string>;
  now: number;
  clockSkewSeconds: number;
}

/**
 * A token: enrolment-role signature, fleet, host in the signed release with exactly the key the token
 * names, within its (bounded) lifetime, and its nonce allowed by the bound nonce document. Whether the
 * nonce was already used is the endpoint's durable record, checked by the caller.
 */
export function verifyEnrolmentToken(
  env: SignedDocument<EnrolmentToken>,
  ctx: TokenContext,
  file = TOKEN_LABEL,
): EnrolmentToken {
  verifyEnrolmentSigned(env, ctx.root, file);
  const t = env.signed;
  requireFleet(t, ctx.root, file);
  requireTokenWindow(t, ctx.now, ctx.clockSkewSeconds, file);
  requireHostKey(t.host, t.hostKeyId, ctx.hostKeys, file);
  const allowed = ctx.nonces?.nonces.find((n) => n.nonce === t.nonce);
  if (allowed === undefined || allowed.host !== t.host)
    throw new NonceRefused(
      file,
      `nonce ${t.nonce.slice(0, 16)}.. is not allowed by the bound enrolment document${ctx.nonces ? ` v${ctx.nonces.version}` : ' (none bound)'}: withdrawn, or never published`,
    );
  return t;
}

function requireTokenWindow(t: EnrolmentToken, now: number, skew: number, file: string): void {
  requireNotFutureDated(t.issuedAt, now, skew, file);
  const issued = parseIsoTime(t.issuedAt);
  const expires = parseIsoTime(t.expires);
  if (expires - issued > MAX_TOKEN_LIFETIME_SECONDS * 1000 || expires <= issued)
    throw new Expired(
      file,
      `lives from ${t.issuedAt} to ${t.expires}; a token must expire after it is issued and within ${MAX_TOKEN_LIFETIME_SECONDS / 86_400} days`,
    );
  if (expires <= now) throw new Expired(file, `expired at ${t.expires} (now ${isoTime(now)})`);
}

function requireHostKey(
  host: string,
  keyid: string,
  hostKeys: ReadonlyMap<string, string>,
  file: string,
): void {
  const key = hostKeys.get(host);
  if (key === undefined)
    throw new UnknownHost(file, `host "${host}" is not in the verified release`);
  if (keyIdOf(unb64(key)) !== keyid)
    throw new WrongHost(
      file,
      `names host key ${keyid.slice(0, 16)}.., but the signed release lists ${keyIdOf(unb64(key)).slice(0, 16)}.. for "${host}"`,
    );
}

export interface RequestContext {
  fleet: string;
  hostKeys: ReadonlyMap<string, string>;
  now: number;
  clockSkewSeconds: number;
}

/**
 * The host-signed request: signed by the host key of the signed release (the proof that the caller holds
 * that key), of this fleet, fresh (within the clock skew), and bound to exactly the CSR sent with it.
 */
export function verifyEnrolmentRequest(
  env: SignedDocument<EnrolmentRequest>,
  csrPem: string,
  ctx: RequestContext,
  file = REQUEST_LABEL,
): EnrolmentRequest {
  const r = env.signed;
  const key = ctx.hostKeys.get(r.host);
  if (key === undefined)
    throw new UnknownHost(file, `host "${r.host}" is not in the verified release`);
  const raw = unb64(key);
  verifyEnvelope(env, {
    file,
    keys: new Map([[keyIdOf(raw), { name: r.host, keyid: keyIdOf(raw), publicKey: raw }]]),
    threshold: 1,
    role: `host key of ${r.host}`,
  });
  if (r.fleet !== ctx.fleet)
    throw new MixAndMatch(file, `belongs to fleet "${r.fleet}", this is "${ctx.fleet}"`);
  const at = parseIsoTime(r.issuedAt);
  if (Math.abs(at - ctx.now) > ctx.clockSkewSeconds * 1000)
    throw new Expired(
      file,
      `signed at ${r.issuedAt}, more than ${ctx.clockSkewSeconds} s from now (${isoTime(ctx.now)}): sign a fresh request`,
    );
  const digest = sha256Digest(Buffer.from(csrPem, 'utf8'));
  if (digest !== r.csr)
    throw new MixAndMatch(file, `binds CSR ${r.csr}, but the CSR sent is ${digest}`);
  return r;
}
