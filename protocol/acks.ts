// Host-signed acks: signing, reading, the chain digest. Shared by the agent (signs), the ack endpoint
// (checks chain + signature, holds no key) and the reconciler's callers (verify peers' acks).
import { canonicalBytes, sha256Digest } from './canonical.ts';
import { readEnvelope } from './document.ts';
import { signDocument, verifyEnvelope } from './envelope.ts';
import { BadSignature, WrongHost } from './errors.ts';
import { keyIdOf, unb64, type SigningKey } from './keys.ts';
import { LIMITS } from './limits.ts';
import { Ack } from './schemas/ack.ts';
import type { SignedDocument } from './schemas/envelope.ts';

export type SignedAck = SignedDocument<Ack>;

export function signAck(ack: Ack, hostKey: SigningKey): SignedAck {
  return signDocument(Ack.parse(ack), [hostKey]);
}

/** Digest that the next ack's `prev` must carry: SHA-256 of the canonical envelope bytes. */
export function ackDigest(ack: SignedAck): string {
  return sha256Digest(canonicalBytes(ack));
}

/** Strict intake of one ack envelope (size cap, strict JSON, schema). No signature check yet. */
export function readAck(bytes: Uint8Array | string, file = 'ack'): SignedAck {
  return readEnvelope(bytes, Ack, { file, maxBytes: LIMITS.ack, expectType: 'ack' });
}

/**
 * Verifies that `ack` is signed by `hostKeyB64` (the host key named in the signed release) and is
 * about `expectedHost`. Throws WrongHost or BadSignature/UnknownKey.
 */
export function verifyAckSignature(ack: SignedAck, expectedHost: string, hostKeyB64: string, file = 'ack'): void {
  if (ack.signed.host !== expectedHost) throw new WrongHost(file, `ack is for host ${ack.signed.host}, expected ${expectedHost}`);
  const publicKey = unb64(hostKeyB64);
  const keyid = keyIdOf(publicKey);
  if (ack.signatures.length !== 1) throw new BadSignature(file, 'an ack carries exactly one signature (the host key)');
  verifyEnvelope(ack, { file, keys: new Map([[keyid, { name: expectedHost, keyid, publicKey }]]), threshold: 1, role: `host ${expectedHost}` });
}
