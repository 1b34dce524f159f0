// What CI signs while a rollout is under way, end to end in network namespaces through nginx
// (tests/support/e2e-scenario.ts), each asserted from the hosts' signed acks:
//   superseding release:  release 2 (V2) lands after wave 0 installed NEW: wave 1 never installs NEW,
//                         release 2's waves run from the start, everyone ends on V2
//   revoked closure:      release 2 revokes NEW (and targets V2): the waiting wave never starts NEW, the
//                         host running it moves on to V2
//   freeze:               CI stops re-signing; once the served timestamp expires, the next wave starts
//                         nothing and the running hosts are not rolled back; a fresh timestamp resumes
//   root rotation:        `nixfleet trust rotate --reject-before NOW` mid-rollout, release 2 signed after
//                         it: a control plane replaying release 1's timestamp is refused (Revoked);
//                         the rollout (same rollout id) continues under release 2
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../support/cli.ts';
import { until } from '../support/e2e-processes.ts';
import {
  NEW,
  V2,
  requireScenarioTools,
  scenarioFleet,
  startScenario,
  type Scenario,
} from '../support/e2e-scenario.ts';
import { newSigningKey, writePrivateKey } from '../../protocol/keys.ts';
import { readTimestamp } from '../../protocol/verify/documents.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import type { E2eStack } from '../support/e2e-stack.ts';

const WHY = 'e2e releases mid-rollout in network namespaces';
const HOSTS = ['a', 'b', 'c'];

/** Wave 0 = a (soaked 1 s), wave 1 = b and c. */
function twoWaves(
  st: E2eStack,
  target: string,
  extra: Partial<FleetInput> = {},
  channel: { freshnessSeconds?: number; signingIntervalSeconds?: number } = {},
): FleetInput {
  return scenarioFleet(
    st,
    {
      main: {
        targets: Object.fromEntries(HOSTS.map((h) => [h, target])),
        waves: [{ hosts: ['a'], soakSeconds: 1 }, { hosts: ['b', 'c'] }],
        channel,
      },
    },
    extra,
  );
}

const soaked = (s: Scenario, h: string) => () => s.timeline().get(h)!.soaked !== null;

test('superseding release mid-rollout: wave 1 never installs the superseded target; release 2 runs its waves from the start', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: HOSTS }, (st) => twoWaves(st, NEW));
  try {
    await s.roundsUntil(['a'], 'a soaked on NEW', soaked(s, 'a'));
    await s.release(twoWaves(s.stack, V2));
    await s.roundsUntil(HOSTS, 'all on V2', () => HOSTS.every((h) => s.isOn(h, V2)));
    for (const h of ['b', 'c'])
      assert.is(s.acksOf(h, (a) => a.target === NEW && a.kind === 'started').length, 0, h);
    const t = s.timeline(); // of release 2's rollout
    for (const h of ['b', 'c'])
      assert.ok(t.get(h)!.started! >= t.get('a')!.soaked!, `${h} started before a soaked on V2`);
  } finally {
    await s.close();
  }
});

test('revoked closure: wave 1 never starts it, the host running it moves on to the fix', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: HOSTS }, (st) => twoWaves(st, NEW));
  try {
    await s.roundsUntil(['a'], 'a soaked on NEW', soaked(s, 'a'));
    await s.release(
      twoWaves(s.stack, V2, {
        revoked: { hosts: [], closures: [{ storePath: NEW, reason: 'CVE in the new closure' }] },
      }),
    );
    await s.roundsUntil(HOSTS, 'all on V2', () => HOSTS.every((h) => s.isOn(h, V2)));
    for (const h of ['b', 'c'])
      assert.is(s.acksOf(h, (a) => a.target === NEW && a.kind === 'started').length, 0, h);
    assert.ok(s.signed('a', 'healthy', V2), 'a left the revoked closure');
  } finally {
    await s.close();
  }
});

test('freeze: once the served timestamp expires the next wave starts nothing, running hosts stay; a fresh one resumes', async () => {
  if (!requireScenarioTools(WHY)) return;
  // 6 s of freshness: CI's refresh (every 3 s; here before every round) keeps the release alive.
  const timing = { freshnessSeconds: 6, signingIntervalSeconds: 3 };
  const s = await startScenario({ hosts: HOSTS }, (st) => twoWaves(st, NEW, {}, timing));
  try {
    // CI's schedule while it works: a fresh timestamp before every round.
    for (let i = 0; i < 25 && !soaked(s, 'a')(); i++) {
      await s.refresh();
      await s.round(['a']);
    }
    assert.ok(soaked(s, 'a')(), 'a soaked while the timestamp was kept fresh');
    // CI stops re-signing (or the control plane freezes the timestamp): wait until it has expired.
    const ts = readTimestamp(
      readFileSync(join(s.stack.cpDir, 'current', 'timestamp.json')),
      'timestamp.json',
    ).signed;
    const expiresAt = Date.parse(ts.issuedAt) + timing.freshnessSeconds * 1000;
    await until('the served timestamp to expire', 30_000, () => Date.now() > expiresAt + 1000);
    const frozen = await s.round(HOSTS);
    await s.round(HOSTS);
    for (const h of ['b', 'c']) {
      assert.equal(s.gates(frozen[h]!), ['not-fresh'], JSON.stringify(frozen[h]!.outcome));
      assert.is(
        s.acksOf(h, (a) => a.kind === 'started').length,
        0,
        `${h} started on a stale release`,
      );
    }
    assert.ok(s.isOn('a', NEW), 'stale means no new activations, never a rollback');
    assert.is(s.acksOf('a', (a) => a.kind === 'rolled-back').length, 0);

    for (let i = 0; i < 25 && !(s.isOn('b', NEW) && s.isOn('c', NEW)); i++) {
      await s.refresh();
      await s.round(HOSTS);
    }
    for (const h of ['b', 'c']) {
      const started = s.acksOf(h, (a) => a.kind === 'started')[0]!;
      assert.ok(Date.parse(started.time) > expiresAt, `${h} started only after the new timestamp`);
    }
  } finally {
    await s.close();
  }
});

test('root rotation with rejectBefore mid-rollout: the old release is refused, the rollout continues under release 2', async () => {
  if (!requireScenarioTools(WHY)) return;
  const s = await startScenario({ hosts: HOSTS }, (st) => twoWaves(st, NEW));
  try {
    // Only a until it soaked: b, run in the same rounds, could read a's soak proof in the round that
    // posts it and start under release 1 (a race; more likely since a converged host reads no bundles).
    await s.roundsUntil(['a'], 'a soaked on NEW', soaked(s, 'a'));
    const servedTimestamp = join(s.stack.cpDir, 'current', 'timestamp.json');
    const release1Timestamp = readFileSync(servedTimestamp);
    const rollout = s.acksOf('a', (x) => x.kind === 'started')[0]!.rolloutId;

    // The org rotates its root (same release key kept) and revokes everything signed before now.
    const lab = s.stack.lab;
    const oldRoot = join(lab.trustDir, 'root-1.key');
    const newRoot = join(lab.trustDir, 'root-2.key');
    writePrivateKey(oldRoot, lab.rootKey);
    writePrivateKey(newRoot, newSigningKey('org-root-2'));
    const rejectBefore = new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
    const rot = await runCli(
      'trust',
      'rotate',
      '--trust',
      lab.trustDir,
      '--old-root-key',
      oldRoot,
      '--root-key',
      newRoot,
      '--reject-before',
      rejectBefore,
      '--out',
      lab.trustDir,
    );
    assert.is(rot.code, 0, rot.err);
    const v2 = await s.release(twoWaves(s.stack, NEW));

    // A control plane that replays release 1's timestamp (validly signed, before rejectBefore).
    const release2Timestamp = readFileSync(servedTimestamp);
    writeFileSync(servedTimestamp, release1Timestamp);
    const past = new Date(Date.now() - 3_600_000); // another mtime: another ETag, no 304
    utimesSync(servedTimestamp, past, past);
    const replayed = await s.stack.runAgentOnce('c');
    assert.is(replayed.code, 1, JSON.stringify(replayed.outcome));
    assert.match(JSON.stringify(replayed.events), /Revoked/);
    writeFileSync(servedTimestamp, release2Timestamp);
    utimesSync(servedTimestamp, new Date(), new Date());

    await s.roundsUntil(HOSTS, 'b and c on NEW', () => s.isOn('b', NEW) && s.isOn('c', NEW));
    for (const h of ['b', 'c']) {
      const started = s.acksOf(h, (a) => a.kind === 'started');
      assert.is(started.length, 1);
      assert.is(
        started[0]!.releaseVersion,
        v2,
        `${h} started under the release signed after the rotation`,
      );
      assert.is(started[0]!.rolloutId, rollout, 'the same rollout continued');
    }
    assert.is(s.acksOf('a', (x) => x.kind === 'started').length, 1, 'a did not start again');
  } finally {
    await s.close();
  }
});

test.run();
