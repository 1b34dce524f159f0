// Signature batches for the batch verifier's tests: n jobs over three keys, with bad signatures among
// them (a flipped bit, S + L, the wrong key), and the answer one-by-one verification gives each.
import { randomBytes } from 'node:crypto';
import { publicKeyFromSeed, signBytes } from '../../protocol/ed25519.ts';
import type { SignatureJob } from '../../protocol/verify/batch-verify.ts';

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
/** The signature with S + L: the same point equation, but not canonical (refused). */
export function addL(sig: Uint8Array): Uint8Array {
  let s = sig.subarray(32).reduceRight((n, b) => (n << 8n) | BigInt(b), 0n) + L;
  const out = sig.slice();
  for (let i = 32; i < 64; i++, s >>= 8n) out[i] = Number(s & 255n);
  return out;
}

export function signatureJobs(n: number): { jobs: SignatureJob[]; expected: boolean[] } {
  const seeds = [0, 1, 2].map(() => new Uint8Array(randomBytes(32)));
  const out: SignatureJob[] = [];
  const expected: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const seed = seeds[i % 3]!;
    const message = new Uint8Array(randomBytes(64 + (i % 300)));
    let signature = signBytes(seed, message);
    let ok = true;
    if (i % 97 === 5) {
      signature = signature.slice();
      signature[10]! ^= 4;
      ok = false;
    } else if (i % 89 === 7) {
      signature = addL(signature);
      ok = false;
    } else if (i % 83 === 3) {
      out.push({ publicKey: publicKeyFromSeed(seeds[(i + 1) % 3]!), message, signature });
      expected.push(false);
      continue;
    }
    out.push({ publicKey: publicKeyFromSeed(seed), message, signature });
    expected.push(ok);
  }
  return { jobs: out, expected };
}
