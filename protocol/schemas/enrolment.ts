// Host enrolment with one-time tokens. Three signed documents:
// - the token (`enrolment-token`), signed by the trust root's enrolment role: one host name, the keyid of
//   that host's key in the signed release (useless for any other key), a random nonce and a short expiry;
// - the nonce document (`enrolment-<n>.json`), signed by the same role and bound by the timestamp like
//   the revocations and controls: the nonces still allowed. Minting adds one, withdrawing removes one;
//   a token whose nonce is not in the bound version is refused;
// - the request (`enrolment-request`), signed by the host key: binds the certificate signing request
//   (by digest), the token's nonce (first enrolment) or the certificate being renewed, and its time.
import { z } from 'zod';
import { SchemaVersion, FleetName, Version, IsoTime, HostName, Digest, KeyId } from './common.ts';

/** 32 random bytes, lowercase hex: unguessable and safe in a file name or a log line. */
export const EnrolmentNonce = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (32 random bytes)');

/** A token lives at most a week: it is a bearer secret between the operator and a host's first boot. */
export const MAX_TOKEN_LIFETIME_SECONDS = 7 * 86_400;

export const EnrolmentToken = z.strictObject({
  type: z.literal('enrolment-token'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  host: HostName,
  /** keyid of the host key the signed release lists for `host`; a CSR must be signed by that key. */
  hostKeyId: KeyId,
  nonce: EnrolmentNonce,
  issuedAt: IsoTime,
  expires: IsoTime,
});
export type EnrolmentToken = z.infer<typeof EnrolmentToken>;

export const EnrolmentNonces = z
  .strictObject({
    type: z.literal('enrolment'),
    schemaVersion: SchemaVersion,
    fleet: FleetName,
    version: Version,
    issuedAt: IsoTime,
    /** Nonces of tokens still allowed (minted, not withdrawn, not yet pruned after expiry). */
    nonces: z
      .array(z.strictObject({ nonce: EnrolmentNonce, host: HostName, expires: IsoTime }))
      .max(4096),
  })
  .superRefine((d, ctx) => {
    const seen = new Set<string>();
    d.nonces.forEach((n, i) => {
      if (seen.has(n.nonce))
        ctx.addIssue({ code: 'custom', path: ['nonces', i, 'nonce'], message: 'is listed twice' });
      seen.add(n.nonce);
    });
  });
export type EnrolmentNonces = z.infer<typeof EnrolmentNonces>;

export const EnrolmentRequest = z.strictObject({
  type: z.literal('enrolment-request'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  host: HostName,
  /** `enrol`: first certificate, with a token; `renew`: over mTLS with the current certificate, no token. */
  kind: z.enum(['enrol', 'renew']),
  /** The token's nonce (enrol); null (renew). */
  nonce: EnrolmentNonce.nullable(),
  /** sha256 of the CSR's PEM bytes as sent. */
  csr: Digest,
  issuedAt: IsoTime,
});
export type EnrolmentRequest = z.infer<typeof EnrolmentRequest>;
