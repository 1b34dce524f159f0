// The signed envelope: { signed: <document>, signatures: [{ keyid, sig }] }.
// Signatures cover the JCS canonical bytes of `signed` only.
import { z } from 'zod';
import { KeyId, Base64Sig64 } from './common.ts';

export const SignatureEntry = z.strictObject({ keyid: KeyId, sig: Base64Sig64 });
export type SignatureEntry = z.infer<typeof SignatureEntry>;

export const Envelope = z.strictObject({
  signed: z.record(z.string(), z.unknown()),
  signatures: z.array(SignatureEntry).min(1).max(16),
});
export type Envelope = z.infer<typeof Envelope>;

export interface SignedDocument<T> {
  signed: T;
  signatures: SignatureEntry[];
}
