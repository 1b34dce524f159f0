// The signed envelope: { signed: <document>, signatures: [{ keyid, sig }] }.
// Signatures cover the JCS canonical bytes of `signed` only.
import { z } from 'zod';
import { KeyId, Base64Sig64 } from './common.ts';

export const SignatureEntry = z.strictObject({ keyid: KeyId, sig: Base64Sig64 });
export type SignatureEntry = z.infer<typeof SignatureEntry>;

/**
 * Any JSON object: the document's own schema (readEnvelope's next step) checks its members. Not
 * `z.record(z.string(), z.unknown())`, which refuses the same values of parsed JSON but runs two
 * schemas and builds a copy per member (~4 us per document, ~44,000 documents in a cold dashboard
 * build); the words are the record's: "required", "must be an object".
 */
const SignedObject = z.custom<Record<string, unknown>>(isJsonObject, {
  error: (iss) => (iss.input === undefined ? 'required' : 'must be an object'),
});

/** What JSON.parse and the strict parser make of a JSON object (not an array, not null). */
function isJsonObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v); // an array's is Array.prototype
  return proto === Object.prototype || proto === null;
}

export const Envelope = z.strictObject({
  signed: SignedObject,
  signatures: z.array(SignatureEntry).min(1).max(16),
});
export type Envelope = z.infer<typeof Envelope>;

export interface SignedDocument<T> {
  signed: T;
  signatures: SignatureEntry[];
}
