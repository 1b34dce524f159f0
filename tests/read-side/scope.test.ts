// One-host views read only what the host's gates read (read-side/scope.ts): the host's channel, the
// channels gating it, its budgets' members. Checked here: the scoped view equals the fleet view for
// every host (status and trace), a tampered ack of the host or of a gating peer is still refused and
// listed, and an ack outside the scope is not read at all.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { formatRecord } from '../../protocol/ack-log.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { ChannelPlan, DisruptionBudgets } from '../../protocol/index.ts';
import { loadFleetState } from '../../read-side/load.ts';
import { loadAckHistory, traceReport, traceScope } from '../../read-side/trace.ts';
import { loadVerifiedRelease } from '../../read-side/release.ts';
import { viewScope } from '../../read-side/scope.ts';
import { claimedHost } from '../../read-side/acks.ts';
import type { StatusReport } from '../../read-side/status.ts';
import {
  MIN,
  NOW,
  ROOT,
  chainedRollout,
  cleanupTempDirs,
  run,
  traceHost,
  type Fixture,
} from './fixture.ts';

test.after.each(cleanupTempDirs);

const NOW_ISO = isoTime(NOW);

/**
 * ch-0 (gates ch-1) completes: wave 0 [a] soaks, then wave 1 [b, c, d]. ch-1 wave 0 [e] then starts and
 * soaks; its wave 1 polls (held by earlier waves). Each host's latest ack is a heartbeat.
 */
function rollout(): Fixture {
  return chainedRollout('scope', { first: 1, ch0: 1, ch1: 1, polling: 1 });
}

const allHosts = (fx: Fixture) => Object.values(fx.plans).flatMap((p) => Object.keys(p.hosts));

test('status --host: for every host, the scoped view equals the fleet view of that host, its channel and budgets', async () => {
  const fx = rollout();
  const full = await loadFleetState(fx.tree, ROOT, { now: NOW, manifests: [] });
  for (const host of allHosts(fx)) {
    const one = await loadFleetState(fx.tree, ROOT, { now: NOW, manifests: [host], host });
    const channel = one.view.hosts.find((h) => h.host === host)!.channel;
    assert.equal(
      one.view.hosts.find((h) => h.host === host),
      full.view.hosts.find((h) => h.host === host),
      host,
    );
    assert.equal(
      one.view.channels,
      full.view.channels.filter((c) => c.channel === channel),
    );
    assert.equal(one.view.budgets, full.view.budgets);
    // Read: the channel's hosts and the gating channel's, nothing else.
    const read = new Set(one.acks.acks.map((a) => a.host));
    const expected = new Set(
      [channel, ...fx.plans[channel]!.gatedBy].flatMap((c) => Object.keys(fx.plans[c]!.hosts)),
    );
    assert.equal([...read].sort(), [...expected].sort(), `acks read for ${host}`);
  }
});

test('trace --host: the scoped history gives the same trace as every ack, for every host', async () => {
  const fx = rollout();
  const release = await loadVerifiedRelease(fx.tree, ROOT, { now: NOW });
  const everything = loadAckHistory(fx.tree, release, fx.logFile);
  const period = { now: NOW, from: NOW - 35 * MIN, until: NOW };
  for (const host of allHosts(fx)) {
    const scope = traceScope(release, { host });
    const scoped = loadAckHistory(fx.tree, release, fx.logFile, undefined, [], scope.hosts);
    assert.ok(scoped.acks.every((a) => scope.hosts.has(a.host)));
    assert.ok(scoped.acks.length < everything.acks.length || scope.hosts.size === 8);
    const a = traceReport(release, scoped, { host }, period);
    const b = traceReport(release, everything, { host }, period);
    assert.equal(a.hosts, b.hosts, host);
    assert.equal(a.entries, b.entries, host);
    if (host === fx.wave('ch-1', 0)[0]) assert.ok(a.hosts[0]!.eligibleAt !== null);
  }
});

/** The ack file with one signed field changed and the signature kept: it no longer verifies. */
function tamperLatest(fx: Fixture, host: string): void {
  const file = join(fx.tree, 'acks', 'hosts', `${host}.json`);
  const text = readFileSync(file, 'utf8');
  assert.match(text, '"kind":"heartbeat"');
  writeFileSync(file, text.replace('"kind":"heartbeat"', '"kind":"healthy"'));
}

const status = (fx: Fixture, host: string) =>
  run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--no-cache',
    '--host',
    host,
    '--json',
  );

test('status --host: a tampered ack of the host itself or of a gating peer is refused and listed; one outside the scope is not read', async () => {
  const fx = rollout();
  const [a] = fx.wave('ch-0', 0);
  const [e] = fx.wave('ch-1', 0);
  const [, f] = fx.wave('ch-1', 0).concat(fx.wave('ch-1', 1));
  tamperLatest(fx, a!); // a gates e (channel edge ch-0 -> ch-1)
  tamperLatest(fx, f!); // in e's channel; outside a's scope
  const ofE = await status(fx, e!);
  assert.is(ofE.code, 0, ofE.err);
  const r = JSON.parse(ofE.out) as StatusReport;
  const rejected = r.acks.rejected.map((x) => `${x.source} ${x.code}`).sort();
  assert.equal(rejected, [
    `acks/hosts/${a}.json BadSignature`,
    `acks/hosts/${f}.json BadSignature`,
  ]);
  // Without a's ack ch-0 is not complete: e's channel shows as gated (nothing unverified believed).
  assert.is(r.channels[0]!.state, 'gated');
  assert.is(r.acks.scope!.hosts, 8);

  const ofA = JSON.parse((await status(fx, a!)).out) as StatusReport;
  assert.equal(
    ofA.acks.rejected.map((x) => x.source),
    [`acks/hosts/${a}.json`],
    'the host itself; ch-1 is not in its scope, so f is not read',
  );
  assert.is(ofA.hosts[0]!.lastAck, null, "a's own forged ack is not believed");
  assert.is(ofA.acks.scope!.hosts, 4);
});

test('trace --host: a forged log record of a gating peer is refused and listed; the log is read for the scope only', async () => {
  const fx = rollout();
  const [a] = fx.wave('ch-0', 0);
  const [e] = fx.wave('ch-1', 0);
  const [g] = fx.wave('ch-1', 1);
  // A record whose digest matches its bytes (the log is not corrupt) but whose signature does not.
  const lines = readFileSync(fx.logFile, 'utf8').trimEnd().split('\n');
  for (const host of [a!, g!]) {
    const line = lines.find(
      (l) => claimedHost(Buffer.from(l.slice(72))) === host && l.includes('"kind":"heartbeat"'),
    )!;
    const forged = line.slice(72).replace('"kind":"heartbeat"', '"kind":"healthy"');
    appendFileSync(fx.logFile, formatRecord({ digest: sha256Digest(forged), canonical: forged }));
  }
  const trace = (host: string) => traceHost(fx, host, null);
  const ofE = await trace(e!);
  const n = lines.length + 2;
  assert.equal(
    ofE.history.rejected.map((x) => `${x.source} ${x.code}`),
    [`${fx.logFile}:${n - 1} BadSignature`, `${fx.logFile}:${n} BadSignature`],
    'both: a gates e, g is in its channel (sources keep their line numbers)',
  );
  const ofAtrace = await trace(a!);
  assert.equal(
    ofAtrace.history.rejected.map((x) => x.source),
    [`${fx.logFile}:${n - 1}`],
    "g's record is outside a's scope: skipped unread",
  );
});

test('viewScope: the channel, the channels gating it, and every member of a budget one of its hosts is in', () => {
  const plan = (channel: string, hosts: string[], gatedBy: string[] = []) =>
    ({
      channel,
      gatedBy,
      hosts: Object.fromEntries(hosts.map((h) => [h, {}])),
    }) as unknown as ChannelPlan;
  const plans = {
    a: plan('a', ['a1', 'a2']),
    b: plan('b', ['b1', 'b2'], ['a']),
    c: plan('c', ['c1'], ['b']),
    d: plan('d', ['d1', 'd2']),
  };
  const budgets = { budgets: [{ id: 'x', hosts: ['c1', 'd1'] }] } as unknown as DisruptionBudgets;
  assert.equal([...viewScope(plans, budgets, ['c']).hosts].sort(), ['b1', 'b2', 'c1', 'd1']);
  assert.equal([...viewScope(plans, budgets, ['b']).hosts].sort(), ['a1', 'a2', 'b1', 'b2']);
  assert.equal([...viewScope(plans, budgets, ['d']).hosts].sort(), ['c1', 'd1', 'd2']);
});

test('claimedHost: the signed host of a canonical ack; null where the bytes do not say plainly', () => {
  const rec = (o: unknown) => Buffer.from(canonicalString(o));
  assert.is(claimedHost(rec({ signatures: [], signed: { fleet: 'f', host: 'web-1' } })), 'web-1');
  assert.is(claimedHost(Buffer.from('{"signed":{"host" : "web-1"}}')), null);
  assert.is(claimedHost(Buffer.from('{"signed":{"\\u0068ost":"web-1"}}')), null);
  assert.is(claimedHost(Buffer.from('{"signed":{"host":"we\\"b"}}')), null);
  // Inside a string the quotes are escaped: never taken for the key.
  assert.is(claimedHost(rec({ signed: { fleet: '"host":"decoy"', host: 'web-2' } })), 'web-2');
});

test.run();
