// Ed25519 sign and verify throughput: @noble/ed25519 (pure JS) against our node:crypto path
// (protocol/ed25519.ts, which adds the RFC 8032 strict checks), side by side in one run.
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from 'node:crypto';
import { publicKeyFromSeed, signBytes, verifyBytes } from '../protocol/ed25519.ts';
import { canonicalBytes } from '../protocol/canonical.ts';

noble.hashes.sha512 = sha512;

/** Runs `op` for about `ms` milliseconds (after a short warm-up) and returns operations per second. */
function opsPerSecond(op: (i: number) => void, ms = 700): number {
  for (let i = 0; i < 50; i++) op(i);
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  while ((elapsed = performance.now() - start) < ms) {
    for (let k = 0; k < 20; k++) op(n++);
  }
  return (n / elapsed) * 1000;
}

export default async function signBench(): Promise<void> {
  const seed = new Uint8Array(randomBytes(32));
  const pub = publicKeyFromSeed(seed);
  // A message the size of a typical host manifest's canonical bytes (~1.2 KB).
  const message = canonicalBytes({ type: 'host-manifest', padding: 'x'.repeat(1100) });
  const sig = signBytes(seed, message);
  if (!verifyBytes(pub, message, sig) || !noble.verify(sig, message, pub, { zip215: false }))
    throw new Error('self-check failed');

  const nobleSign = opsPerSecond(() => noble.sign(message, seed));
  const nodeSign = opsPerSecond(() => signBytes(seed, message));
  const nobleVerify = opsPerSecond(() => noble.verify(sig, message, pub, { zip215: false }));
  const nodeVerify = opsPerSecond(() => verifyBytes(pub, message, sig));
  const row = (what: string, n: number, o: number) =>
    console.log(`| ${what} | ${n.toFixed(0)} | ${o.toFixed(0)} | ${(o / n).toFixed(1)}x |`);
  console.log(
    '| operation (1.2 KB message) | @noble/ed25519 ops/s | node:crypto (protocol/ed25519.ts) ops/s | ratio |',
  );
  console.log('|---|---|---|---|');
  row('sign', nobleSign, nodeSign);
  row('verify (RFC 8032 strict)', nobleVerify, nodeVerify);
}
