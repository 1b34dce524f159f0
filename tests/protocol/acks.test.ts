// protocol/acks.ts verifyAck: the one ack check every reader makes (agent, ack endpoint, replica merge,
// operator). Each refusal is a typed VerificationError naming where the ack was found.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import {
  checkAckClaims,
  hostKeysOfPlans,
  readAckBundle,
  verifyAck,
  verifyAckSignature,
  type AckTrust,
} from '../../protocol/acks.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import {
  BadSignature,
  Malformed,
  UnknownHost,
  UnknownKey,
  WrongFleet,
  WrongHost,
} from '../../protocol/errors.ts';
import { b64, newSigningKey } from '../../protocol/keys.ts';
import { isoTime, SCHEMA_VERSION } from '../../protocol/schemas/common.ts';
import type { ChannelPlan } from '../../protocol/schemas/release.ts';
import { AckChain, FLEET, fixtureHosts, type FixtureHost } from '../control-plane/tree-fixture.ts';
import { refusal } from '../support/refusal.ts';

const test = suite('protocol verifyAck');
const [web1, web2] = fixtureHosts({ web1: {}, web2: {} }) as [FixtureHost, FixtureHost];
const trust: AckTrust = {
  fleet: FLEET,
  hostKeys: new Map([
    [web1.name, b64(web1.key.publicKey)],
    [web2.name, b64(web2.key.publicKey)],
  ]),
};

test('a valid ack of a host in the plans verifies; its claims yield that host key', () => {
  const ack = new AckChain(web1).next();
  verifyAck(ack, trust, 'acks/hosts/web1.json');
  assert.is(checkAckClaims(ack, trust, 'x'), b64(web1.key.publicKey));
});

test('each refusal is typed and names the source, checked in order: fleet, host, signature', () => {
  const src = 'acks/channels/prod/wave-0.json#3';
  const foreign = refusal(() => verifyAck(new AckChain(web1).next({ fleet: 'other' }), trust, src));
  assert.ok(foreign instanceof WrongFleet);
  assert.equal([foreign.code, foreign.file], ['WrongFleet', src]);
  // A foreign ack of an unknown host with a bad signature is still WrongFleet: the first check decides.
  const ghost = fixtureHosts({ ghost: {} })[0]!;
  assert.ok(
    refusal(() => verifyAck(new AckChain(ghost).next({ fleet: 'other' }), trust, src)) instanceof
      WrongFleet,
  );
  const unknown = refusal(() => verifyAck(new AckChain(ghost).next(), trust, src));
  assert.ok(unknown instanceof UnknownHost);
  assert.equal([unknown.code, unknown.file], ['UnknownHost', src]);
  assert.match(unknown.message, 'host "ghost" is in no channel plan of the verified release');
  const forged = refusal(() =>
    verifyAck(new AckChain({ ...web2, key: newSigningKey('forger') }).next(), trust, src),
  );
  assert.ok(forged instanceof UnknownKey || forged instanceof BadSignature, forged.message);
  assert.is(forged.file, src);
  // The refusal names whose key was wanted: the host the release names for this ack.
  assert.match(forged.message, 'no signature by a valid host web2 key');
  const tampered = new AckChain(web2).next();
  const altered = { ...tampered, signed: { ...tampered.signed, kind: 'healthy' as const } };
  assert.ok(refusal(() => verifyAck(altered, trust, src)) instanceof BadSignature);
});

test("an ack carries exactly one signature: another one beside the host's is refused, its own twice too", () => {
  // Envelopes in general may carry up to 16 signatures (a threshold of release keys). An ack with a
  // second one would still meet a threshold of one, but its digest, which the host's next ack names
  // as prev, would be another: whoever relays an ack could fork the host's chain without its key.
  const src = 'acks/hosts/web1.json';
  const ack = new AckChain(web1).next();
  const other = new AckChain({ ...web1, key: newSigningKey('second') }).make({ seq: 1 });
  for (const signatures of [
    [...ack.signatures, ...other.signatures],
    [...ack.signatures, ...ack.signatures],
  ]) {
    const e = refusal(() => verifyAck({ ...ack, signatures }, trust, src));
    assert.ok(e instanceof BadSignature, e.message);
    assert.equal(
      [e.file, e.message],
      [src, `BadSignature: ${src}: an ack carries exactly one signature (the host key)`],
    );
  }
});

test("verifyAckSignature holds the ack to the host it is checked for: another host's ack is WrongHost", () => {
  const ack = new AckChain(web1).next();
  verifyAckSignature(ack, web1.name, b64(web1.key.publicKey), 'a');
  const e = refusal(() => verifyAckSignature(ack, web2.name, b64(web1.key.publicKey), 'a'));
  assert.ok(e instanceof WrongHost, e.message);
  assert.equal([e.file, e.message], ['a', 'WrongHost: a: ack is for host web1, expected web2']);
});

test('hostKeysOfPlans takes plans by channel or as a list', () => {
  const plan = (hosts: FixtureHost[]) =>
    ({
      hosts: Object.fromEntries(hosts.map((h) => [h.name, { hostKey: b64(h.key.publicKey) }])),
    }) as unknown as ChannelPlan;
  const byChannel = hostKeysOfPlans({ a: plan([web1]), b: plan([web2]) });
  assert.equal([...byChannel.entries()], [...trust.hostKeys.entries()]);
  assert.equal(
    [...hostKeysOfPlans([plan([web1]), plan([web2])]).entries()],
    [...trust.hostKeys.entries()],
  );
});

test('readAckBundle: strict intake, entries named file#index in canonical form; a bad bundle is Malformed naming it', () => {
  const acks = [new AckChain(web1).next(), new AckChain(web2).next()];
  const bundle = {
    type: 'ack-bundle',
    schemaVersion: SCHEMA_VERSION,
    fleet: FLEET,
    channel: 'prod',
    wave: 0,
    generatedAt: isoTime(Date.now()),
    acks,
  };
  const read = readAckBundle(JSON.stringify(bundle), 'acks/channels/prod/wave-0.json');
  assert.equal(
    read.map((a) => a.source),
    ['acks/channels/prod/wave-0.json#0', 'acks/channels/prod/wave-0.json#1'],
  );
  assert.is(read[1]!.canonical, canonicalString(acks[1]));
  const bad = refusal(() =>
    readAckBundle(JSON.stringify({ ...bundle, extra: 1 }), 'acks/channels/prod/wave-0.json'),
  );
  assert.ok(bad instanceof Malformed);
  assert.is(bad.file, 'acks/channels/prod/wave-0.json');
});

test.run();
