// JCS (RFC 8785) canonical bytes and SHA-256 digests. Every signature and every digest binding in the
// project is computed over these bytes, never over whatever bytes happened to be on disk.
import canonicalize from 'canonicalize';
// One-shot `hash` (Node >= 20.12) rather than a Hash object per call: a 10,000-host publish digests
// every manifest and host order key (~10-25 ms less per 10,000 digests).
import { hash } from 'node:crypto';

export function canonicalString(value: unknown): string {
  const out = canonicalize(value);
  if (out === undefined)
    throw new TypeError('value cannot be canonicalised (undefined at top level)');
  return out;
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalString(value), 'utf8');
}

/** A digest as sha256Digest writes it: `sha256:` and 64 lowercase hex digits. */
export const SHA256_DIGEST = /^sha256:[0-9a-f]{64}$/;

/** Whether `s` has the form of a digest (files of ours read back, where no schema runs). */
export function isSha256Digest(s: string): boolean {
  return SHA256_DIGEST.test(s);
}

/** `sha256:<hex>` of the given bytes: the digest format used in every binding. */
export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${hash('sha256', bytes, 'hex')}`;
}

export function sha256Hex(bytes: Uint8Array | string): string {
  return hash('sha256', bytes, 'hex');
}
