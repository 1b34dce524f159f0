// verifyByChainTips: each host chain's tip verified, what its `prev` links reach established by it,
// everything else verified on its own. Real host-signed acks, chained as agents chain them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalBytes, sha256Digest } from '../../protocol/canonical.ts';
import { signedTextOf } from '../../protocol/envelope.ts';
import { newSigningKey, unb64, type SigningKey } from '../../protocol/keys.ts';
import { SCHEMA_VERSION, isoTime } from '../../protocol/schemas/common.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';
import { verifyByChainTips, type ChainedSignatureJob } from '../../protocol/verify/ack-chains.ts';
import { verifyBatch, type SignatureJob } from '../../protocol/verify/batch-verify.ts';

const T = Date.parse('2030-03-01T10:00:00Z');

function ackOf(
  host: string,
  seq: number,
  prev: string | null,
  kind: Ack['kind'] = 'heartbeat',
): Ack {
  return {
    type: 'ack',
    schemaVersion: SCHEMA_VERSION,
    fleet: 'f',
    host,
    seq,
    prev,
    time: isoTime(T + seq * 60_000),
    kind,
    releaseVersion: 1,
    rolloutId: null,
    target: null,
    current: null,
    healthySince: null,
    probes: [],
    reason: null,
  };
}

/** `n` acks of `host`, each naming the digest of the one before (what the endpoint accepts). */
function chain(host: string, key: SigningKey, n: number): SignedAck[] {
  const out: SignedAck[] = [];
  for (let seq = 1; seq <= n; seq++)
    out.push(signAck(ackOf(host, seq, seq === 1 ? null : ackDigest(out[seq - 2]!)), key));
  return out;
}

/** The signature with one bit flipped (same length, same key id): a bad signature. */
function badSignature(a: SignedAck): SignedAck {
  const sig = unb64(a.signatures[0]!.sig);
  sig[7]! ^= 1;
  return {
    signed: a.signed,
    signatures: [{ ...a.signatures[0]!, sig: Buffer.from(sig).toString('base64') }],
  };
}

/** The job a reader builds for `a` read from its canonical bytes, checked against `key` (the plan's). */
function job(a: SignedAck, key: SigningKey): ChainedSignatureJob & SignatureJob {
  const bytes = canonicalBytes(a);
  return {
    publicKey: key.publicKey,
    message: signedTextOf(bytes, a.signatures)!,
    signature: unb64(a.signatures[0]!.sig),
    id: sha256Digest(bytes),
    prev: a.signed.prev,
  };
}

test('an intact chain: every ack established, as one by one', () => {
  const k = newSigningKey('host-a');
  const jobs = chain('host-a', k, 5).map((a) => job(a, k));
  assert.equal(verifyByChainTips(jobs), [true, true, true, true, true]);
  assert.equal(verifyBatch(jobs), [true, true, true, true, true]);
});

test("only the tip's signature is checked: an earlier ack is vouched for by the host key that chained it", () => {
  // The host signed ack 2 over the digest of ack 1 exactly as it is, bad signature included: the key's
  // holder vouched for those bytes (what no one without the key can do).
  const k = newSigningKey('host-a');
  const first = badSignature(signAck(ackOf('host-a', 1, null), k));
  const second = signAck(ackOf('host-a', 2, ackDigest(first)), k);
  const jobs = [job(first, k), job(second, k)];
  assert.equal(verifyBatch(jobs), [false, true]);
  assert.equal(verifyByChainTips(jobs), [true, true]);
});

test('a mid-chain ack whose bytes were changed is refused: the next ack no longer names it', () => {
  const k = newSigningKey('host-a');
  const acks = chain('host-a', k, 4);
  const tampered: SignedAck = {
    signed: { ...acks[1]!.signed, kind: 'failed' },
    signatures: acks[1]!.signatures,
  };
  const jobs = [acks[0]!, tampered, acks[2]!, acks[3]!].map((a) => job(a, k));
  assert.equal(verifyByChainTips(jobs), [true, false, true, true]);
  assert.equal(verifyByChainTips(jobs), verifyBatch(jobs));
});

test("a forged ack outside any chain, or forked onto the host's tip, is refused; the chain still stands", () => {
  const k = newSigningKey('host-a');
  const forger = newSigningKey('forger');
  const acks = chain('host-a', k, 3);
  // Signed by another key, checked against the host's: claims the host's tip as its predecessor.
  const fork = signAck(ackOf('host-a', 4, ackDigest(acks[2]!), 'failed'), forger);
  const loose = signAck(ackOf('host-a', 9, `sha256:${'ab'.repeat(32)}`, 'failed'), forger);
  const jobs = [...acks, fork, loose].map((a) => job(a, k));
  assert.equal(verifyByChainTips(jobs), [true, true, true, false, false]);
  assert.equal(verifyByChainTips(jobs), verifyBatch(jobs));
});

test('a chain whose tip signature is bad falls back to checking each ack', () => {
  const k = newSigningKey('host-a');
  // Ack 1's bad signature is vouched for only by ack 2, which is now behind a bad tip: checked alone.
  const first = badSignature(signAck(ackOf('host-a', 1, null), k));
  const second = signAck(ackOf('host-a', 2, ackDigest(first)), k);
  const third = badSignature(signAck(ackOf('host-a', 3, ackDigest(second)), k));
  const jobs = [first, second, third].map((a) => job(a, k));
  assert.equal(verifyByChainTips(jobs), [false, true, false]);
  assert.equal(verifyByChainTips(jobs), verifyBatch(jobs));
});

test("an ack under another key never vouches for its predecessor (each host's chain is its own key's)", () => {
  const a = newSigningKey('host-a');
  const b = newSigningKey('host-b');
  const first = badSignature(signAck(ackOf('host-a', 1, null), a));
  // host-b's valid ack names host-a's bytes as its predecessor.
  const other = signAck(ackOf('host-b', 2, ackDigest(first)), b);
  assert.equal(verifyByChainTips([job(first, a), job(other, b)]), [false, true]);
});

test('a signed message given as a function is asked for only where a signature is checked', () => {
  const k = newSigningKey('host-a');
  const asked: number[] = [];
  const jobs = chain('host-a', k, 4).map((a, i) => {
    const j = job(a, k);
    return { ...j, message: () => (asked.push(i), j.message) };
  });
  assert.equal(verifyByChainTips(jobs), [true, true, true, true]);
  assert.equal(asked, [3]);
  // A tip whose message cannot be had is not established, nor is what only it would vouch for.
  const noText = jobs.map((j, i) => (i === 3 ? { ...j, message: () => undefined } : j));
  asked.length = 0;
  assert.equal(verifyByChainTips(noText), [true, true, true, false]);
  assert.equal(asked, [0, 1, 2]);
});

test('many chains across the helper thread: equal to one-by-one verification', () => {
  const jobs: ChainedSignatureJob[] = [];
  const expected: boolean[] = [];
  for (let h = 0; h < 400; h++) {
    const k = newSigningKey(`host-${h}`);
    const acks = chain(`host-${h}`, k, 4);
    // Every seventh host's tip is bad: its other acks are then checked one by one.
    if (h % 7 === 0) acks[3] = badSignature(acks[3]!);
    acks.forEach((x, i) => {
      jobs.push(job(x, k));
      expected.push(!(h % 7 === 0 && i === 3));
    });
  }
  assert.equal(verifyByChainTips(jobs, { parallel: true }), expected);
});

test.run();
