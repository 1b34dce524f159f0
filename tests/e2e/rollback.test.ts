// Fleet-wide emergency rollback end to end (issue 9 section 2): `nixfleet rollback --to-release N`
// publishes release M > N with N's targets; real agent cycles against the embedded mTLS control plane
// switch back, all at once (budget lifted) or in the fleet's own waves.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runAgentOnce } from '../../agent/agent.ts';
import { memoryLogger } from '../../agent/log.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { createActivator } from '../../agent/activators/index.ts';
import { requireTool } from '../support/skip.ts';
import { runCli } from '../support/cli.ts';
import { makeLab, labFleet, OLD, NEW } from '../agent/lab-fleet.ts';
import type { Lab } from '../support/lab.ts';

const V2 = '/nix/store/33333333333333333333333333333333-nixos-system-v2';
const HOSTS = ['w1', 'w2', 'w3'];

async function current(lab: Lab, host: string): Promise<string> {
  const cfg = lab.agentConfig(host);
  return (await createActivator(cfg.activator, new StateDir(cfg.stateDir)).currentGeneration())
    .path;
}

/** One poll of every host at once; returns each host's outcome. */
async function round(
  lab: Lab,
): Promise<Record<string, { decision: string; acted: string | null }>> {
  const out = await Promise.all(
    HOSTS.map((h) => runAgentOnce(lab.agentConfig(h), { log: memoryLogger(h) })),
  );
  return Object.fromEntries(
    out.map((o, i) => [
      HOSTS[i]!,
      o.kind === 'decided'
        ? { decision: o.decision, acted: o.acted }
        : { decision: o.kind, acted: null },
    ]),
  );
}

async function convergeAll(lab: Lab, target: string): Promise<void> {
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    const r = await round(lab);
    if (
      Object.values(r).every((o) => o.decision === 'converged') &&
      (await Promise.all(HOSTS.map((h) => current(lab, h)))).every((p) => p === target)
    )
      return;
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`hosts did not converge on ${target}`);
}

const settle = () => new Promise((r) => setTimeout(r, 400));

function fleetWith(lab: Lab, target: string) {
  // Two waves (one host, then the rest) and a budget of one host in flight.
  return labFleet(
    lab,
    {
      prod: {
        hosts: Object.fromEntries(HOSTS.map((h) => [h, target])),
        waves: [{ count: 1, soakSeconds: 0 }, { soakSeconds: 0 }],
      },
    },
    { budget: 1 },
  );
}

test('rollback --to-release 1: all-at-once lifts the budget (every host switches back in one poll); waves keeps the waves', async () => {
  if (!requireTool('openssl', 'lab PKI')) return;
  const lab = makeLab(HOSTS);
  try {
    await lab.startControlPlane();
    lab.publish(fleetWith(lab, NEW));
    await settle();
    await convergeAll(lab, NEW);
    const v2 = fleetWith(lab, V2);
    lab.publish(v2);
    await settle();
    await convergeAll(lab, V2);

    const fleetFile = join(lab.opts.dir, 'fleet.json');
    writeFileSync(fleetFile, JSON.stringify(v2));
    const args = [
      '--tree',
      lab.treeDir,
      '--trust',
      lab.trustDir,
      '--release-key',
      join(lab.trustDir, 'release.key'),
      '--no-cache-check',
    ];
    // Refusals first: a release that is not in the tree, a tampered release index.
    const missing = await runCli(
      'rollback',
      '--to-release',
      '9',
      '--policy',
      'all-at-once',
      fleetFile,
      ...args,
    );
    assert.is(missing.code, 1, missing.err);
    assert.match(missing.err, /releases\/9\/index.json does not exist/);
    const indexFile = join(lab.treeDir, 'releases', '1', 'index.json');
    const good = readFileSync(indexFile);
    writeFileSync(
      indexFile,
      Buffer.from(good.toString('utf8').replace(/"source":null/, '"source":"x"')),
    );
    const tampered = await runCli(
      'rollback',
      '--to-release',
      '1',
      '--policy',
      'all-at-once',
      fleetFile,
      ...args,
    );
    assert.is(tampered.code, 1, tampered.err);
    assert.match(tampered.err, /BadSignature: releases\/1\/index.json/);
    writeFileSync(indexFile, good);

    const dry = await runCli(
      'rollback',
      '--to-release',
      '1',
      '--policy',
      'all-at-once',
      fleetFile,
      ...args,
      '--dry-run',
    );
    assert.is(dry.code, 0, dry.err);
    assert.match(dry.out, /dry run: would publish release 3/);
    const r = await runCli(
      'rollback',
      '--to-release',
      '1',
      '--policy',
      'all-at-once',
      fleetFile,
      ...args,
      '--json',
    );
    assert.is(r.code, 0, r.err);
    const res = JSON.parse(r.out) as { version: number; restored: { host: string; to: string }[] };
    assert.is(res.version, 3);
    assert.equal(
      res.restored.map((x) => x.to),
      [NEW, NEW, NEW],
    );
    await settle();
    // All at once, budget lifted: every host activates and confirms in the first poll.
    const first = await round(lab);
    for (const h of HOSTS)
      assert.equal(
        first[h],
        { decision: 'activate', acted: 'confirmed' },
        `${h}: ${JSON.stringify(first)}`,
      );
    for (const h of HOSTS) assert.is(await current(lab, h), NEW);
    const index = JSON.parse(
      readFileSync(join(lab.treeDir, 'releases', '3', 'index.json'), 'utf8'),
    ) as { signed: { source: string } };
    assert.is(index.signed.source, 'rollback to release 1 (policy all-at-once)');

    // Back to release 2's targets in the fleet's own waves: one host first (wave 0, budget 1).
    const w = await runCli(
      'rollback',
      '--to-release',
      '2',
      '--policy',
      'waves',
      fleetFile,
      ...args,
      '--json',
    );
    assert.is(w.code, 0, w.err);
    assert.is((JSON.parse(w.out) as { version: number }).version, 4);
    await settle();
    const staged = await round(lab);
    const started = HOSTS.filter((h) => staged[h]!.decision === 'activate');
    assert.is(started.length, 1, JSON.stringify(staged));
    for (const h of HOSTS.filter((x) => !started.includes(x)))
      assert.is(staged[h]!.decision, 'wait');
    await convergeAll(lab, V2);
    void OLD;
  } finally {
    await lab.close();
  }
});

test.run();
