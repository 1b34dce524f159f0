// The one way this project builds a node:crypto KeyObject from a raw 32-byte Ed25519 public key, shared by
// protocol/ed25519.ts and the batch verifier's threads (verify/batch-shared.ts, which loads nothing else
// of ed25519.ts into its helper thread).
import { createPublicKey, type KeyObject } from 'node:crypto';

/**
 * As a JWK (RFC 8037: the raw bytes as `x`), not as DER SubjectPublicKeyInfo: the same key object
 * (KeyObject.equals, the same verdict on every key, valid or not: tests/verify/batch-verify.test.ts),
 * but OpenSSL 3's DER decoder tries several formats first, ~0.1 ms a key against ~0.01 ms (10,000 host
 * keys: ~1 s of a cold `site build`'s CPU).
 */
export function ed25519PublicKeyObject(raw: Uint8Array): KeyObject {
  return createPublicKey({
    key: {
      kty: 'OKP',
      crv: 'Ed25519',
      x: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64url'),
    },
    format: 'jwk',
  });
}
