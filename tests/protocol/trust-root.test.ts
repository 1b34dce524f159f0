import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import { newSigningKey } from '../../protocol/keys.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import {
  releaseKeysValidAt,
  verifyReleaseSigned,
  verifyRootChain,
  type SignedRoot,
} from '../../protocol/trust-root.ts';
import { initialClientState, parseClientState } from '../../protocol/verify/state.ts';
import { DAY, makeRoot } from '../support/tree-builder.ts';
import { NOW, expectRefusal } from '../verify/helpers.ts';

const [a, b, c, d, e, f] = Array.from({ length: 6 }, (_, i) => newSigningKey(`root-${i}`)) as [
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
  ReturnType<typeof newSigningKey>,
];
const rel1 = newSigningKey('release-1');
const rel2 = newSigningKey('release-2');
const window = (key: typeof rel1, from = NOW - 100 * DAY, until = NOW + 100 * DAY) => ({
  key,
  validFrom: from,
  validUntil: until,
});

const root1 = makeRoot({
  issuedAt: NOW - 50 * DAY,
  rootKeys: [a, b, c],
  rootThreshold: 2,
  releaseKeys: [window(rel1)],
  signers: [a, b],
});
function chainOf(...roots: SignedRoot[]) {
  const byVersion = new Map(roots.map((r) => [r.signed.version, envelopeBytes(r)]));
  return (v: number) => byVersion.get(v);
}

test('pinned root alone: verifies and is returned', () => {
  const { root, chain } = verifyRootChain(root1, chainOf(), NOW);
  assert.is(root.signed.version, 1);
  assert.is(chain.length, 1);
});

test('rotation: 2-of-3 old keys and 2-of-3 new keys -> root 2 trusted, new release key valid', () => {
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [d, e, f],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, c, d, f],
  });
  const { root, chain } = verifyRootChain(root1, chainOf(root2), NOW);
  assert.is(root.signed.version, 2);
  assert.equal(
    chain.map((r) => r.signed.version),
    [1, 2],
  );
  assert.equal([...releaseKeysValidAt(root.signed, NOW).keys()], [rel2.keyid]);
});

test('2-of-3 root threshold with one old signature -> ThresholdNotMet naming root/2.json', () => {
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [d, e, f],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, d, e],
  });
  expectRefusal(
    () => verifyRootChain(root1, chainOf(root2), NOW),
    'ThresholdNotMet',
    'root/2.json',
  );
});

test('new root signed only by the new keys -> ThresholdNotMet', () => {
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [d, e, f],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [d, e, f],
  });
  const err = expectRefusal(
    () => verifyRootChain(root1, chainOf(root2), NOW),
    'ThresholdNotMet',
    'root/2.json',
  );
  assert.match(err.detail, /0 of the required 2 root v1 signatures/);
});

test('new root signed by the old keys but not a threshold of its own -> ThresholdNotMet', () => {
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [d, e, f],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, b, d],
  });
  expectRefusal(
    () => verifyRootChain(root1, chainOf(root2), NOW),
    'ThresholdNotMet',
    'root/2.json',
  );
});

test('root/2.json holding version 3 (a skipped version) -> MixAndMatch', () => {
  const root3 = makeRoot({
    version: 3,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [a, b, c],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, b],
  });
  const bytes = envelopeBytes(root3);
  expectRefusal(
    () => verifyRootChain(root1, (v) => (v === 2 ? bytes : undefined), NOW),
    'MixAndMatch',
    'root/2.json',
  );
});

test('a gap in the chain stops the walk at the last contiguous version', () => {
  const root3 = makeRoot({
    version: 3,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [a, b, c],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, b],
  });
  assert.is(verifyRootChain(root1, chainOf(root3), NOW).root.signed.version, 1);
});

test("another fleet's root -> MixAndMatch", () => {
  const other = makeRoot({
    fleet: 'other',
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [a, b, c],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, b],
  });
  expectRefusal(() => verifyRootChain(root1, chainOf(other), NOW), 'MixAndMatch', 'root/2.json');
});

test('final root expired -> Expired; an expired intermediate root is fine', () => {
  const old = makeRoot({
    issuedAt: NOW - 50 * DAY,
    expiresInMs: 10 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1)],
  });
  expectRefusal(() => verifyRootChain(old, chainOf(), NOW), 'Expired', 'root/1.json');
  const next = makeRoot({
    version: 2,
    issuedAt: NOW - 5 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1)],
  });
  assert.is(verifyRootChain(old, chainOf(next), NOW).root.signed.version, 2);
});

test('a tampered pinned root is refused', () => {
  const tampered = { ...root1, signed: { ...root1.signed, releaseThreshold: 1, cacheKeys: [] } };
  expectRefusal(() => verifyRootChain(tampered, chainOf(), NOW), 'BadSignature', 'pinned root');
});

test('duplicate keys in a root file -> Malformed', () => {
  const root2 = makeRoot({
    version: 2,
    issuedAt: NOW - 10 * DAY,
    rootKeys: [a, b, c],
    rootThreshold: 2,
    releaseKeys: [window(rel2)],
    signers: [a, b],
  });
  const text = envelopeBytes(root2)
    .toString()
    .replace('{"signatures":', '{"signatures":[],"signatures":');
  expectRefusal(
    () => verifyRootChain(root1, (v) => (v === 2 ? Buffer.from(text) : undefined), NOW),
    'Malformed',
    'root/2.json',
  );
});

const doc = (issuedAt: number) => ({ type: 'x', fleet: 'test-fleet', issuedAt: isoTime(issuedAt) });

test('release key windows: validFrom <= issuedAt < validUntil', () => {
  const root = makeRoot({
    issuedAt: NOW - 50 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1, NOW - 10 * DAY, NOW)],
  }).signed;
  verifyReleaseSigned(signDocument(doc(NOW - 10 * DAY), [rel1]), root, 'first-second.json');
  verifyReleaseSigned(signDocument(doc(NOW - 1000), [rel1]), root, 'last-second.json');
  const late = expectRefusal(
    () => verifyReleaseSigned(signDocument(doc(NOW), [rel1]), root, 'late.json'),
    'Expired',
    'late.json',
  );
  assert.match(late.detail, /release key "release-1"/);
  expectRefusal(
    () => verifyReleaseSigned(signDocument(doc(NOW - 11 * DAY), [rel1]), root, 'early.json'),
    'Expired',
    'early.json',
  );
  expectRefusal(
    () => verifyReleaseSigned(signDocument(doc(NOW - DAY), [rel2]), root, 'unknown.json'),
    'UnknownKey',
    'unknown.json',
  );
});

test('alsoValidAt: a key retired by now cannot keep a backdated document alive', () => {
  const root = makeRoot({
    issuedAt: NOW - 50 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1, NOW - 10 * DAY, NOW - DAY)],
  }).signed;
  const env = signDocument(doc(NOW - 2 * DAY), [rel1]);
  verifyReleaseSigned(env, root, 'ts.json');
  expectRefusal(() => verifyReleaseSigned(env, root, 'ts.json', NOW), 'Expired', 'ts.json');
});

test('rejectBefore: documents issued before it are refused as Revoked', () => {
  const root = makeRoot({
    issuedAt: NOW - 50 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1)],
    rejectBefore: NOW - DAY,
  }).signed;
  verifyReleaseSigned(signDocument(doc(NOW - DAY), [rel1]), root, 'after.json');
  expectRefusal(
    () => verifyReleaseSigned(signDocument(doc(NOW - DAY - 1000), [rel1]), root, 'before.json'),
    'Revoked',
    'before.json',
  );
});

test('release threshold 2: one release signature -> ThresholdNotMet', () => {
  const root = makeRoot({
    issuedAt: NOW - 50 * DAY,
    rootKeys: [a],
    releaseKeys: [window(rel1), window(rel2)],
    releaseThreshold: 2,
  }).signed;
  verifyReleaseSigned(signDocument(doc(NOW - DAY), [rel1, rel2]), root, 'both.json');
  expectRefusal(
    () => verifyReleaseSigned(signDocument(doc(NOW - DAY), [rel2]), root, 'one.json'),
    'ThresholdNotMet',
    'one.json',
  );
});

test('the client state keeps a root with several signatures (2-of-3) across a save and load', () => {
  assert.is(root1.signatures.length, 2);
  const state = initialClientState(root1);
  const loaded = parseClientState(JSON.stringify(state), 'trust-state.json');
  assert.equal(loaded.trustedRoot, root1);
});

test.run();
