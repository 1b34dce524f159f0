// The agent's intake of peers' acks (agent/peer-acks.ts): a control plane that serves forged,
// foreign-fleet or replayed (older) acks can only make them ignored and logged, never believed. Signed
// plans from the control-plane tree fixture, real signatures, a real state directory; the bundles are
// served by an in-memory fetch standing in for the tree fetcher.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fetchPeerAcks } from '../../agent/peer-acks.ts';
import { PEER_ACKS_FILE } from '../../agent/peer-ack-memory.ts';
import { ACK_BUNDLE_MEMO_FILE } from '../../agent/ack-bundle-memo.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { b64, newSigningKey } from '../../protocol/keys.ts';
import { ackBundlePath, channelPlanPath } from '../../protocol/layout.ts';
import { ChannelPlan } from '../../protocol/schemas/release.ts';
import { isoTime, SCHEMA_VERSION } from '../../protocol/schemas/common.ts';
import type { SignedAck } from '../../protocol/acks.ts';
import {
  AckChain,
  FLEET,
  fixtureHosts,
  fixtureKeys,
  removeDir,
  tempDir,
  writeTree,
  type FixtureHost,
} from '../control-plane/tree-fixture.ts';

const test = suite('agent peer acks');
const keys = fixtureKeys();
const hosts = fixtureHosts({ self: { wave: 0 }, web1: { wave: 0 }, web2: { wave: 1 } });
const byName = (n: string) => hosts.find((h) => h.name === n) as FixtureHost;
let dir: string;
let plans: ChannelPlan[];

test.before.each(() => {
  dir = tempDir('peer-acks');
  writeTree(join(dir, 'tree'), { keys, hosts, version: 1 });
  plans = [
    ChannelPlan.parse(
      (
        JSON.parse(readFileSync(join(dir, 'tree', channelPlanPath(1, 'prod')), 'utf8')) as {
          signed: unknown;
        }
      ).signed,
    ),
  ];
});
test.after.each(() => removeDir(dir));

/** What the control plane serves: wave -> the acks of its bundle. */
function served(waves: Record<number, SignedAck[]>) {
  const files = new Map<string, Uint8Array>();
  for (const [wave, acks] of Object.entries(waves)) {
    const bundle = {
      type: 'ack-bundle',
      schemaVersion: SCHEMA_VERSION,
      fleet: FLEET,
      channel: 'prod',
      wave: Number(wave),
      generatedAt: isoTime(Date.now()),
      acks,
    };
    files.set(ackBundlePath('prod', Number(wave)), Buffer.from(canonicalString(bundle)));
  }
  return async (path: string) => files.get(path);
}

async function intake(
  waves: Record<number, SignedAck[]> | ReturnType<typeof served>,
  planList = plans,
) {
  const log = memoryLogger('self');
  const state = new StateDir(join(dir, 'state'));
  const r = await fetchPeerAcks({
    fetch: typeof waves === 'function' ? waves : served(waves),
    plans: planList,
    budgets: { budgets: [] } as never,
    self: 'self',
    fleet: FLEET,
    state,
    log,
  });
  return { ...r, log: log.records, state };
}

const events = (records: Record<string, unknown>[], name: string) =>
  records.filter((r) => r['event'] === name);

test('valid acks of every wave are believed; the highest seq per peer is remembered', async () => {
  const w1 = new AckChain(byName('web1'));
  const w2 = new AckChain(byName('web2'));
  w1.next();
  const r = await intake({ 0: [w1.next()], 1: [w2.next()] });
  assert.equal(Object.keys(r.acks).sort(), ['web1', 'web2']);
  assert.is(r.acks['web1']!.seq, 2);
  assert.is(r.dropped, 0);
  const memory = JSON.parse(readFileSync(r.state.path(PEER_ACKS_FILE), 'utf8')) as {
    peers: Record<string, { seq: number }>;
  };
  assert.equal([memory.peers['web1']!.seq, memory.peers['web2']!.seq], [2, 1]);
});

test('a forged ack (signed by another key) is ignored and logged as BadSignature/UnknownKey', async () => {
  const forger = { ...byName('web2'), key: newSigningKey('forger') };
  const r = await intake({
    0: [new AckChain(byName('web1')).next()],
    1: [new AckChain(forger).next({ kind: 'healthy' })],
  });
  assert.equal(Object.keys(r.acks), ['web1']);
  assert.is(r.dropped, 1);
  const ignored = events(r.log, 'peer-ack-ignored');
  assert.is(ignored.length, 1);
  assert.is(ignored[0]!['file'], `${ackBundlePath('prod', 1)}#0`);
  assert.match(String(ignored[0]!['reason']), /^(UnknownKey|BadSignature): /);
});

test('a foreign-fleet ack, validly signed by the right host key, is ignored and logged as WrongFleet', async () => {
  const foreign = new AckChain(byName('web2')).next({ fleet: 'other-fleet', kind: 'healthy' });
  const r = await intake({ 0: [new AckChain(byName('web1')).next()], 1: [foreign] });
  assert.equal(Object.keys(r.acks), ['web1']);
  assert.is(r.dropped, 1);
  const ignored = events(r.log, 'peer-ack-ignored');
  assert.match(
    String(ignored[0]!['reason']),
    /^WrongFleet: acks\/channels\/prod\/wave-1\.json#0: ack is for fleet "other-fleet"/,
  );
});

test('an ack of a host no signed plan names is ignored and logged as UnknownHost', async () => {
  const ghost = fixtureHosts({ ghost: { wave: 1 } })[0]!;
  const r = await intake({ 1: [new AckChain(ghost).next()] });
  assert.equal(Object.keys(r.acks), []);
  assert.match(String(events(r.log, 'peer-ack-ignored')[0]!['reason']), /^UnknownHost: .*"ghost"/);
});

test('a replayed older ack of a peer is ignored and logged, across restarts; a newer one is believed again', async () => {
  const w1 = new AckChain(byName('web1'));
  const old = w1.next({ kind: 'healthy' });
  const failed = w1.next({ kind: 'failed' });
  const first = await intake({ 0: [failed] });
  assert.is(first.acks['web1']!.kind, 'failed');

  // A new agent run (fresh StateDir object on the same directory) is served the older, validly signed ack.
  const replay = await intake({ 0: [old] });
  // Not believed, and not "no ack" either (an excusable offline host): the remembered "failed" stands.
  assert.equal(
    [replay.acks['web1']!.seq, replay.acks['web1']!.kind],
    [2, 'failed'],
    'the replayed "healthy" must not be believed',
  );
  assert.is(replay.regressed, 1);
  const logged = events(replay.log, 'peer-ack-regression-ignored');
  assert.equal(
    [logged.length, logged[0]!['host'], logged[0]!['seq'], logged[0]!['highestSeen']],
    [1, 'web1', 1, 2],
  );
  const memory = JSON.parse(readFileSync(join(dir, 'state', PEER_ACKS_FILE), 'utf8')) as {
    peers: Record<string, { seq: number }>;
  };
  assert.is(memory.peers['web1']!.seq, 2, 'a replay never lowers the memory');

  // Withheld altogether: the remembered ack stands too.
  const withheld = await intake({ 0: [] });
  assert.equal([withheld.acks['web1']!.seq, withheld.acks['web1']!.kind], [2, 'failed']);

  // The same ack again is not a regression; the next one moves the memory on.
  assert.is((await intake({ 0: [failed] })).acks['web1']!.seq, 2);
  const next = await intake({ 0: [w1.next()] });
  assert.equal([next.acks['web1']!.seq, next.regressed], [3, 0]);
});

test('a host re-keyed in a signed plan starts a new chain: its low seqs under the new key are believed', async () => {
  const w1 = new AckChain(byName('web1'));
  for (let i = 0; i < 4; i++) w1.next();
  await intake({ 0: [w1.next()] });
  const rekeyed = { ...byName('web1'), key: newSigningKey('web1-new') };
  const plan = structuredClone(plans[0]!);
  plan.hosts['web1']!.hostKey = b64(rekeyed.key.publicKey);
  const r = await intake({ 0: [new AckChain(rekeyed).next()] }, [plan]);
  assert.equal([r.acks['web1']?.seq, r.regressed], [1, 0]);
  // ... and the old key's acks no longer verify at all: what stands is the new key's ack seen before.
  const old = await intake({ 0: [w1.next()] }, [plan]);
  assert.equal([old.acks['web1'], old.dropped], [r.acks['web1'], 1]);
});

test('a corrupt memory file never blocks the agent: logged, treated as empty, then rewritten', async () => {
  const state = new StateDir(join(dir, 'state'));
  writeFileSync(state.path(PEER_ACKS_FILE), '{"peers":{"web1":{"seq":9,"seq":1}}}');
  const r = await intake({ 0: [new AckChain(byName('web1')).next()] });
  assert.is(r.acks['web1']!.seq, 1);
  const unreadable = events(r.log, 'peer-ack-memory-unreadable');
  assert.is(unreadable.length, 1);
  assert.match(String(unreadable[0]!['reason']), /duplicate key/);
  assert.is(
    (
      JSON.parse(readFileSync(state.path(PEER_ACKS_FILE), 'utf8')) as {
        peers: Record<string, { seq: number }>;
      }
    ).peers['web1']!.seq,
    1,
  );
  writeFileSync(state.path(PEER_ACKS_FILE), 'not json at all');
  assert.is((await intake({ 0: [new AckChain(byName('web1')).next()] })).acks['web1']!.seq, 1);
});

test('bundles served again byte for byte come from the memo: the same acks, drops re-checked and logged', async () => {
  const forger = { ...byName('web2'), key: newSigningKey('forger') };
  const w1 = new AckChain(byName('web1'));
  const bundles = served({
    0: [w1.next()],
    1: [new AckChain(forger).next({ kind: 'healthy' })],
  });
  const first = await intake(bundles);
  assert.equal([Object.keys(first.acks), first.dropped, first.fromMemo], [['web1'], 1, 0]);
  const again = await intake(bundles);
  assert.is(again.fromMemo, 2, 'both bundles from the memo');
  assert.equal(again.acks, first.acks);
  assert.is(again.dropped, 1, 'the forged entry is checked again, not remembered as good');
  assert.is(events(again.log, 'peer-ack-ignored').length, 1);
  // New bytes (another ack): that bundle is verified again.
  const next = await intake(served({ 0: [w1.next()] }));
  assert.equal([next.fromMemo, next.acks['web1']!.seq], [0, 2]);
});

test('the memo never outlives the keys: a host re-keyed in the plans has its memoised ack dropped', async () => {
  const w1 = new AckChain(byName('web1'));
  const bundles = served({ 0: [w1.next()] });
  assert.equal(Object.keys((await intake(bundles)).acks), ['web1']);
  const plan = structuredClone(plans[0]!);
  plan.hosts['web1']!.hostKey = b64(newSigningKey('web1-new').publicKey);
  const rekeyed = await intake(bundles, [plan]);
  assert.is(rekeyed.fromMemo, 0, 'the bytes are the same, the keys are not');
  assert.is(rekeyed.dropped, 1, 'signed by the old key: not believed');
  assert.match(
    String(events(rekeyed.log, 'peer-ack-ignored')[0]!['reason']),
    /^(UnknownKey|BadSignature): /,
  );
});

test('a memo file others can write is not read: a planted entry is believed only from a private file', async () => {
  const bundles = served({ 0: [new AckChain(byName('web1')).next({ kind: 'healthy' })] });
  await intake(bundles);
  const file = join(dir, 'state', ACK_BUNDLE_MEMO_FILE);
  // Plant: the same bundle digest, but web1 "failed" at seq 7 (no valid signature could say so).
  const planted = readFileSync(file, 'utf8')
    .replace('"kind":"healthy"', '"kind":"failed"')
    .replace('"seq":1', '"seq":7');
  assert.ok(planted.includes('"seq":7'), 'the test planted its entry');
  const plant = (mode: number) => {
    writeFileSync(file, planted);
    chmodSync(file, mode);
    writeFileSync(join(dir, 'state', PEER_ACKS_FILE), '{"peers":{}}');
  };
  plant(0o666);
  const open = await intake(bundles);
  assert.equal([open.fromMemo, open.acks['web1']!.seq, open.acks['web1']!.kind], [0, 1, 'healthy']);
  // The same entry in a private file is what the memo trusts (as the state directory's other files):
  // this shows the planted entry would have been taken, had the mode not excluded it.
  plant(0o600);
  const private_ = await intake(bundles);
  assert.equal([private_.fromMemo, private_.acks['web1']!.seq], [1, 7]);
});

test.run();
