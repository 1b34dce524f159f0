import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as noble from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  publicKeyFromSeed,
  signBytes,
  startBatchSigner,
  verifyBytes,
  isValidPublicKey,
} from '../../protocol/ed25519.ts';
import { RFC8032_VECTORS } from './rfc8032-vectors.ts';

noble.hashes.sha512 = sha512;

const hex = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const fromLe = (b: Uint8Array) => b.reduceRight((n, byte) => (n << 8n) | BigInt(byte), 0n);
function toLe(n: bigint): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++, n >>= 8n) out[i] = Number(n & 255n);
  return out;
}

/** Both verifiers must give the same answer; returns it. */
function bothVerify(pub: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const ours = verifyBytes(pub, msg, sig);
  let theirs: boolean;
  try {
    theirs = noble.verify(sig, msg, pub, { zip215: false });
  } catch {
    theirs = false;
  }
  assert.is(ours, theirs, `verifiers disagree on pub=${toHex(pub)} sig=${toHex(sig)}`);
  return ours;
}

for (const v of RFC8032_VECTORS) {
  test(`RFC 8032 ${v.name}: public key, signature byte-identical, verifies`, () => {
    const seed = hex(v.secretKey);
    const msg = hex(v.message);
    assert.is(toHex(publicKeyFromSeed(seed)), v.publicKey);
    assert.is(toHex(signBytes(seed, msg)), v.signature);
    assert.is(toHex(noble.sign(msg, seed)), v.signature);
    assert.ok(bothVerify(hex(v.publicKey), msg, hex(v.signature)));
    const tampered = hex(v.signature);
    tampered[5]! ^= 1;
    assert.not.ok(bothVerify(hex(v.publicKey), msg, tampered));
  });
}

test('TEST 1024 message is 1023 bytes (transcription check)', () => {
  assert.is(hex(RFC8032_VECTORS[3]!.message).length, 1023);
});

test('malleated signature (S + L) is refused', () => {
  const v = RFC8032_VECTORS[1]!;
  const sig = hex(v.signature);
  const s = fromLe(sig.subarray(32));
  const malleated = new Uint8Array([...sig.subarray(0, 32), ...toLe(s + L)]);
  assert.not.ok(bothVerify(hex(v.publicKey), hex(v.message), malleated));
  // S = L exactly is also non-canonical
  const sEqualsL = new Uint8Array([...sig.subarray(0, 32), ...toLe(L)]);
  assert.not.ok(bothVerify(hex(v.publicKey), hex(v.message), sEqualsL));
});

const SMALL_ORDER_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
];
const NON_CANONICAL = [
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p (= 0)
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1 (= identity)
  'efffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 2
  'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = 2^255 - 1
  '0100000000000000000000000000000000000000000000000000000000000080', // identity, x = 0 with sign bit
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // order 2, x = 0 with sign bit
];

test('small-order public keys are refused, even with a "signature" that satisfies the equation', () => {
  const msg = new TextEncoder().encode('any message at all');
  for (const a of SMALL_ORDER_CANONICAL) {
    assert.not.ok(isValidPublicKey(hex(a)), a);
    for (const r of SMALL_ORDER_CANONICAL) {
      // S = 0, R small order, A small order: [0]B = R + [k]A holds (cofactored) for many pairs.
      const sig = new Uint8Array([...hex(r), ...new Uint8Array(32)]);
      assert.not.ok(bothVerify(hex(a), msg, sig));
    }
  }
});

test('32-byte strings that are not curve points are refused as public keys (noble agrees)', () => {
  // y = 2 has no x on edwards25519 (x^2 = (y^2 - 1) / (d y^2 + 1) is a non-square): a fixed off-curve case.
  const offCurve = hex('0200000000000000000000000000000000000000000000000000000000000000');
  assert.throws(() => noble.Point.fromBytes(offCurve, false));
  assert.not.ok(isValidPublicKey(offCurve));
  // And on random strings the two decide identically (about half are not points).
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    const bytes = new Uint8Array(randomBytes(32));
    let nobleOk = true;
    try {
      noble.Point.fromBytes(bytes, false);
    } catch {
      nobleOk = false;
    }
    if (!nobleOk) refused++;
    if (!nobleOk) assert.not.ok(isValidPublicKey(bytes), Buffer.from(bytes).toString('hex'));
  }
  assert.ok(refused > 40, `only ${refused} of 200 random strings refused`);
});

test('non-canonical encodings of A and R are refused', () => {
  const v = RFC8032_VECTORS[0]!;
  const sig = hex(v.signature);
  for (const enc of NON_CANONICAL) {
    assert.not.ok(isValidPublicKey(hex(enc)), enc);
    assert.not.ok(bothVerify(hex(enc), hex(v.message), sig));
    const withR = new Uint8Array([...hex(enc), ...sig.subarray(32)]);
    assert.not.ok(bothVerify(hex(v.publicKey), hex(v.message), withR));
  }
});

// Signatures only the key holder can craft: R or A with a small-order component. OpenSSL's cofactorless
// check refuses them, noble's cofactored check accepts them; ours must agree with noble.
const extended = noble.utils.getExtendedPublicKey(new Uint8Array(32).fill(7));
const ORDER_8 = noble.Point.fromHex(SMALL_ORDER_CANONICAL[4]!);
function craft(
  rPoint: InstanceType<typeof noble.Point>,
  r: bigint,
  pub: Uint8Array,
  msg: Uint8Array,
): Uint8Array {
  const rBytes = rPoint.toBytes();
  const k = fromLe(sha512(new Uint8Array([...rBytes, ...pub, ...msg]))) % L;
  return new Uint8Array([...rBytes, ...toLe((r + k * extended.scalar) % L)]);
}

test('R = identity (crafted by the key holder): both verifiers agree', () => {
  const msg = new TextEncoder().encode('identity R');
  const sig = craft(noble.Point.ZERO, 0n, extended.pointBytes, msg);
  assert.ok(bothVerify(extended.pointBytes, msg, sig));
});

test('mixed-order R and mixed-order A: both verifiers agree on every case', () => {
  const mixedA = noble.Point.BASE.multiply(extended.scalar).add(ORDER_8).toBytes();
  for (let i = 1; i <= 24; i++) {
    const msg = new Uint8Array([i]);
    const r = BigInt(1000 + i);
    bothVerify(
      extended.pointBytes,
      msg,
      craft(noble.Point.BASE.multiply(r).add(ORDER_8), r, extended.pointBytes, msg),
    );
    bothVerify(mixedA, msg, craft(noble.Point.BASE.multiply(r), r, mixedA, msg));
  }
});

test('random valid signatures and random corruptions: both verifiers agree', () => {
  for (let i = 0; i < 40; i++) {
    const seed = new Uint8Array(randomBytes(32));
    const pub = publicKeyFromSeed(seed);
    const msg = new Uint8Array(randomBytes(i * 7));
    const sig = signBytes(seed, msg);
    assert.is(toHex(sig), toHex(noble.sign(msg, seed)));
    assert.ok(bothVerify(pub, msg, sig));
    const bad = sig.slice();
    bad[i % 64]! ^= 1 << (i % 8);
    assert.not.ok(bothVerify(pub, msg, bad));
  }
});

test('wrong lengths are refused without throwing', () => {
  const v = RFC8032_VECTORS[0]!;
  assert.not.ok(verifyBytes(hex(v.publicKey).subarray(0, 31), hex(v.message), hex(v.signature)));
  assert.not.ok(verifyBytes(hex(v.publicKey), hex(v.message), hex(v.signature).subarray(0, 63)));
});

test('the batch signer gives, in order, the signatures of the RFC 8032 vectors', async () => {
  for (const v of RFC8032_VECTORS) {
    const signer = startBatchSigner(hex(v.secretKey));
    signer.add(hex(v.message));
    const [sig] = await signer.finish();
    assert.is(toHex(sig!), v.signature);
  }
});

// The signing thread from the TypeScript source and from the compiled file the shipped command loads
// (dist/, built by npm test before the tests run).
const DIST_SIGNER = pathToFileURL(
  fileURLToPath(new URL('../../dist/ed25519-signing-worker.js', import.meta.url)),
);
for (const [label, module] of [
  ['source', undefined],
  ['dist', DIST_SIGNER],
] as const)
  test(`the batch signer's thread (${label}) signs as signBytes does, in order, over many chunks`, async () => {
    if (module && !existsSync(module))
      assert.unreachable('dist/ed25519-signing-worker.js is missing: run npm run build');
    // More than a few chunks, of differing lengths (empty included), so that both threads sign some.
    const seed = new Uint8Array(randomBytes(32));
    const messages = Array.from({ length: 1500 }, (_, i) => new Uint8Array(randomBytes(i % 700)));
    const signer = startBatchSigner(seed, module);
    for (const m of messages) signer.add(m);
    const sigs = await signer.finish();
    assert.is(sigs.length, messages.length);
    messages.forEach((m, i) =>
      assert.is(toHex(sigs[i]!), toHex(signBytes(seed, m)), `message ${i}`),
    );
  });

test('onSigned hears of every signature once, as finish returns them, and what it throws fails finish', async () => {
  const seed = new Uint8Array(randomBytes(32));
  const messages = Array.from({ length: 1300 }, (_, i) => new Uint8Array(randomBytes(i % 300)));
  const heard: (Uint8Array | undefined)[] = [];
  const signer = startBatchSigner(seed, undefined, (first, signatures) =>
    signatures.forEach((sig, i) => {
      assert.is(heard[first + i], undefined, `position ${first + i} heard twice`);
      heard[first + i] = sig;
    }),
  );
  for (const m of messages) signer.add(m);
  const sigs = await signer.finish();
  assert.is(heard.length, messages.length);
  heard.forEach((sig, i) => assert.is(toHex(sig!), toHex(sigs[i]!), `position ${i}`));

  const failing = startBatchSigner(seed, undefined, (first) => {
    if (first > 0) throw new Error('disk full');
  });
  for (const m of messages) failing.add(m);
  await failing.finish().then(
    () => assert.unreachable('finish resolved although onSigned threw'),
    (e: Error) => assert.is(e.message, 'disk full'),
  );
});

test('a signing thread that cannot start fails the batch (no signature is left out)', async () => {
  const signer = startBatchSigner(new Uint8Array(32), pathToFileURL('/nonexistent/signer.js'));
  for (let i = 0; i < 600; i++) signer.add(new Uint8Array([i & 0xff]));
  await signer.finish().then(
    () => assert.unreachable('finish resolved without the thread'),
    (e: Error) => assert.match(e.message, /nonexistent|Cannot find|exited/),
  );
});

test('the batch signer with nothing to sign, and one closed before finishing, end their thread', async () => {
  assert.equal(await startBatchSigner(new Uint8Array(32)).finish(), []);
  const closed = startBatchSigner(new Uint8Array(32));
  closed.add(new Uint8Array(10));
  closed.close();
  assert.throws(() => startBatchSigner(new Uint8Array(31)), /32 bytes/);
});

test.run();
