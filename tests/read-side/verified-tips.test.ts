// Chain tips verified on other threads (AckCache.primeVerifiedTips, site-gen/ack-preparse.ts): the
// collector takes such a tip as an accepted chain tip only under the key the release names for its
// host, only when it verifies by chain tips, and still checks every claim.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalBytes, sha256Digest } from '../../protocol/canonical.ts';
import { b64, newSigningKey, unb64, type SigningKey } from '../../protocol/keys.ts';
import { SCHEMA_VERSION, isoTime } from '../../protocol/schemas/common.ts';
import { AckCache, AckCollector } from '../../read-side/acks.ts';

const T = Date.parse('2030-03-01T10:00:00Z');

function ack(
  host: string,
  seq: number,
  prev: string | null,
  key: SigningKey,
  fleet = 'f',
): SignedAck {
  return signAck(
    {
      type: 'ack',
      schemaVersion: SCHEMA_VERSION,
      fleet,
      host,
      seq,
      prev,
      time: isoTime(T + seq * 60_000),
      kind: 'heartbeat',
      releaseVersion: 1,
      rolloutId: null,
      target: null,
      current: null,
      healthySince: null,
      probes: [],
      reason: null,
    },
    key,
  );
}

/** The signature with one bit flipped (same key id): a bad signature. */
function badSignature(a: SignedAck): SignedAck {
  const sig = unb64(a.signatures[0]!.sig);
  sig[7]! ^= 1;
  return { signed: a.signed, signatures: [{ ...a.signatures[0]!, sig: b64(sig) }] };
}

const key = newSigningKey('host-a');
const other = newSigningKey('other');
const trust = { fleet: 'f', hostKeys: new Map([['host-a', b64(key.publicKey)]]) };
// A chain whose acks all carry bad signatures (same key id): nothing in it verifies on its own.
const first = badSignature(ack('host-a', 1, null, key));
const tip = badSignature(ack('host-a', 2, ackDigest(first), key));
const digestOf = (a: SignedAck) => sha256Digest(canonicalBytes(a));

/** Both acks through a collector whose cache was primed with `tips`; what was accepted, what refused. */
function collect(
  tips: ReadonlyMap<string, string> | null,
  signatures: 'each' | 'chain-tips' = 'chain-tips',
  t = trust,
) {
  const cache = new AckCache();
  let asked = 0;
  if (tips !== null) cache.primeVerifiedTips(() => (asked++, tips));
  const c = new AckCollector(t, cache, [], signatures);
  for (const a of [first, tip]) c.add(canonicalBytes(a), `${a.signed.seq}.json`);
  const r = c.result();
  return {
    accepted: r.acks.map((a) => a.seq),
    refused: r.rejected.map((x) => `${x.source} ${x.code}`),
    asked,
  };
}

test('a tip primed under the key the release names is an accepted tip: its chain is walked back', () => {
  const r = collect(new Map([[digestOf(tip), b64(key.publicKey)]]));
  assert.equal(r.accepted, [1, 2]);
  assert.equal(r.refused, []);
  assert.is(r.asked, 1);
});

test('a tip primed under another key is checked here (and refused), as is everything behind it', () => {
  const r = collect(new Map([[digestOf(tip), b64(other.publicKey)]]));
  assert.equal(r.accepted, []);
  assert.equal(r.refused, ['1.json BadSignature', '2.json BadSignature']);
});

test('a primed tip of another digest, or none primed: every signature is checked here', () => {
  assert.equal(collect(new Map([[digestOf(first), b64(key.publicKey)]])).accepted, [1]);
  assert.equal(collect(null).accepted, []);
});

test('a collector that checks every signature does not ask for the primed tips', () => {
  const r = collect(new Map([[digestOf(tip), b64(key.publicKey)]]), 'each');
  assert.equal(r.accepted, []);
  assert.is(r.asked, 0);
});

test("a primed tip's claims are still checked against the release", () => {
  const foreign = { fleet: 'g', hostKeys: trust.hostKeys };
  const r = collect(new Map([[digestOf(tip), b64(key.publicKey)]]), 'chain-tips', foreign);
  assert.equal(r.accepted, []);
  assert.equal(r.refused, ['1.json WrongFleet', '2.json WrongFleet']);
});

test.run();
