import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateFleet } from '../support/fleet-gen.ts';
import { FleetInvalid } from '../../publisher/validate.ts';
import { vouchedHostKeys } from '../../publisher/vouched-keys.ts';
import { readCurrentRelease } from '../../publisher/diff.ts';
import { readCurrentTimestamp } from '../../publisher/tree.ts';
import { isValidPublicKey } from '../../protocol/ed25519.ts';
import { budgetsPath, channelPlanPath } from '../../protocol/layout.ts';
import {
  readBudgets,
  readBudgetsHead,
  readChannelPlan,
  readChannelPlanHead,
} from '../../protocol/verify/documents.ts';
import { publishInto, setupTrust, T0 } from './helpers.ts';

const fleetOf = () =>
  generateFleet({ hosts: 12, channels: 2, wavesPerChannel: 2, seed: 'vouch', budgetPct: 50 }).fleet;

/** 32 bytes that are not the encoding of a curve point (deterministic). */
function offCurveKey(): string {
  for (let i = 0; ; i++) {
    const raw = createHash('sha256').update(`off-curve/${i}`).digest();
    if (!isValidPublicKey(raw)) return raw.toString('base64');
  }
}

test('the verified current release vouches for exactly the host keys of its channel plans', () => {
  const s = setupTrust();
  try {
    assert.equal(
      vouchedHostKeys(s.treeDir, s.root.signed).keys.size,
      0,
      'an empty tree vouches for nothing',
    );
    const fleet = fleetOf();
    publishInto(s, fleet);
    const v = vouchedHostKeys(s.treeDir, s.root.signed);
    assert.equal(v.from, { releaseVersion: 1 });
    const expected = new Set(
      Object.values(fleet.hosts).map((h) => (h as { hostKey: string }).hostKey),
    );
    assert.equal([...v.keys].sort(), [...expected].sort());
  } finally {
    s.cleanup();
  }
});

test('the documents it verified are the current release as the diff reads it, named by the timestamp', () => {
  const s = setupTrust();
  try {
    publishInto(s, fleetOf());
    const v = vouchedHostKeys(s.treeDir, s.root.signed);
    const ts = readCurrentTimestamp(s.treeDir)!.signed;
    assert.ok(v.release, 'a verified release hands its documents on');
    assert.equal(v.release.index, ts.release.index);
    const read = readCurrentRelease(s.treeDir, ts);
    assert.equal(v.release.documents.index, read.index);
    assert.equal([...v.release.documents.plans], [...read.plans]);
    assert.equal(v.release.documents.budgets, read.budgets);
  } finally {
    s.cleanup();
  }
});

test('a plan that does not verify (one byte changed) vouches for nothing', () => {
  const s = setupTrust();
  try {
    const fleet = fleetOf();
    publishInto(s, fleet);
    const channel = Object.keys(fleet.channels).sort()[0]!;
    const path = join(s.treeDir, channelPlanPath(1, channel));
    const bytes = readFileSync(path, 'utf8');
    writeFileSync(path, bytes.replace('"wave":0', '"wave":1'));
    const v = vouchedHostKeys(s.treeDir, s.root.signed);
    assert.equal(v.keys.size, 0);
    assert.ok('none' in v.from && /plan|digest|bytes/.test(v.from.none), JSON.stringify(v.from));
    assert.is(v.release, undefined, 'nor hands on documents');
  } finally {
    s.cleanup();
  }
});

test('a tree signed under another trust root vouches for nothing', () => {
  const a = setupTrust();
  const b = setupTrust('other-fleet');
  try {
    publishInto(a, fleetOf());
    const v = vouchedHostKeys(a.treeDir, b.root.signed);
    assert.equal(v.keys.size, 0);
  } finally {
    a.cleanup();
    b.cleanup();
  }
});

test('a new key that is not a curve point is still refused when the rest of the fleet is vouched for', () => {
  const s = setupTrust();
  try {
    const fleet = fleetOf();
    publishInto(s, fleet);
    const host = Object.keys(fleet.hosts).sort()[0]!;
    const next = structuredClone(fleet);
    (next.hosts[host] as { hostKey: string }).hostKey = offCurveKey();
    try {
      publishInto(s, next, T0 + 60_000);
      assert.unreachable('an off-curve host key was published');
    } catch (e) {
      assert.instance(e, FleetInvalid);
      assert.match((e as Error).message, new RegExp(`hosts\\.${host}\\.hostKey.*curve point`));
    }
    // The unchanged fleet publishes (its keys vouched for by release 1).
    const r = publishInto(s, fleet, T0 + 120_000);
    assert.is(r.version, 2);
  } finally {
    s.cleanup();
  }
});

test('the previous plans and budgets are read with their per-host parts checked by JSON type: the same documents, and a wrong type is refused', () => {
  const s = setupTrust();
  try {
    const fleet = fleetOf();
    publishInto(s, fleet);
    const file = channelPlanPath(1, Object.keys(fleet.channels).sort()[0]!);
    const bytes = readFileSync(join(s.treeDir, file), 'utf8');
    assert.equal(
      readChannelPlanHead(Buffer.from(bytes), file),
      readChannelPlan(Buffer.from(bytes), file),
    );
    const budgets = readFileSync(join(s.treeDir, budgetsPath(1)));
    assert.equal(readBudgetsHead(budgets, 'b'), readBudgets(budgets, 'b'));
    const badBudget = Buffer.from(budgets.toString('utf8').replace(/"hosts":\["/, '"hosts":[1,"'));
    assert.throws(
      () => readBudgetsHead(badBudget, 'b'),
      (e: unknown) => (e as { code?: string }).code === 'Malformed',
    );
    for (const [what, from, to] of [
      ['a wave as text', '"wave":0', '"wave":"0"'],
      ['a host key as a number', /"hostKey":"[^"]+"/, '"hostKey":1'],
      ['a member too many', '"wave":0', '"wave":0,"x":1'],
      ['a host entry with other members', /"target":"[^"]+","wave":0/, '"x":[]'],
      ['a wave host that is not text', /"hosts":\["/, '"hosts":[1,"'],
      ['another member with a bad value', /"rolloutId":"[^"]+"/, '"rolloutId":"sha256:x"'],
    ] as const) {
      const bad = Buffer.from(bytes.replace(from, to));
      assert.throws(
        () => readChannelPlanHead(bad, file),
        (e: unknown) => (e as { code?: string }).code === 'Malformed',
        what,
      );
    }
  } finally {
    s.cleanup();
  }
});

test.run();
