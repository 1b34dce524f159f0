// Real NixOS-like hosts end to end through nginx (tests/support/nix-e2e.ts): three `nixfleet agent`
// daemons, each in its own mount namespace with its own /nix (store + system profile), the `nix`
// activator fetching real closures from the control plane's /nix-cache/ over https through the real
// nginx (fleet CA via NIX_SSL_CERT_FILE), releases published with the real cache check.
//   release 1: 3 hosts, 2 waves, v1 -> v2: every host on a new generation 2, wave order provable from
//              the signed ack log.
//   release 2: every host -> "unhealthy" (its switch succeeds, its service probe fails): the wave-0 host
//              rolls back to exactly generation 2 (not a new generation), quarantines the closure and
//              says `rolled-back`; the wave's failure threshold is 0, so the rollout halts and the other
//              hosts never start.
// Kernel-change reboot cases (v1 -> v3: `boot`, reboot, confirm after boot; rollback across a second
// reboot) are in tests/e2e/nix-reboot.test.ts, on the same NixE2e helper.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { until } from '../support/e2e-processes.ts';
import {
  currentFleetView,
  describeTimeline,
  installedRelease,
  rolloutTimeline,
  waveSoakedAt,
} from '../support/e2e-timeline.ts';
import { NixE2e } from '../support/nix-e2e.ts';
import { cleanupNixHosts } from '../support/nix-hosts.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { StateDir } from '../../agent/state-dir.ts';

const HOSTS = ['n1', 'n2', 'n3'];

test.after(() => cleanupNixHosts());

test('3 Nix hosts, 2 waves through nginx: real generations; an unhealthy host rolls back to the exact generation, rollout halts', async () => {
  if (
    !requireTool('nix', 'real Nix hosts') ||
    !requireTool('unshare', 'a /nix per host') ||
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI')
  )
    return;
  const e2e = await NixE2e.create({ hosts: HOSTS });
  const { stack, sys } = e2e;
  try {
    await e2e.seed(sys.v1);
    await e2e.push([sys.v2, sys.unhealthy], e2e.key);
    const r1 = await e2e.publish(
      e2e.fleet({
        prod: {
          hosts: Object.fromEntries(HOSTS.map((h) => [h, sys.v2])),
          waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 0 }],
          confirmDeadlineSeconds: 60,
        },
      }),
    );
    assert.is(r1.cacheCheck.skipped, false, 'published with the cache check');
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('n1');
    const rel1 = installedRelease(stack.cpDir);
    const [canary] = rel1.plans['prod']!.waves[0]!.hosts as [string];
    for (const h of HOSTS) stack.startAgent(h);

    // Release 1: every host healthy on v2.
    await until(
      'every host healthy on v2',
      90_000,
      () =>
        HOSTS.every((h) =>
          stack
            .acksOf(h)
            .some(
              (a) => a.kind === 'healthy' && a.target === sys.v2 && a.releaseVersion === r1.version,
            ),
        ),
      200,
    );
    await until(
      'every agent confirmed',
      30_000,
      () => HOSTS.every((h) => stack.agentEvents(h).some((e) => e['event'] === 'confirmed')),
      200,
    );
    const timeline = rolloutTimeline(
      rel1.plans,
      stack.ackLog().map((a) => a.signed),
    );
    const soaked = waveSoakedAt(timeline, 'prod', 0);
    assert.ok(soaked !== null, describeTimeline(timeline));
    for (const h of HOSTS.filter((x) => x !== canary)) {
      const started = timeline.get(h)!.started;
      assert.ok(
        started !== null && started >= soaked!,
        `${h} started before wave 0 was proven soaked:\n${describeTimeline(timeline)}`,
      );
    }
    // The NAR came through nginx's /nix-cache/ (no client certificate on that route).
    const access = readFileSync(join(stack.runtimeDir, 'access.log'), 'utf8');
    assert.match(
      access,
      new RegExp(`GET /nix-cache/${sys.v2.slice(11, 43)}\\.narinfo HTTP/1\\.1" 200`),
    );
    assert.match(access, /GET \/nix-cache\/nar\/[0-9a-z]+\.nar\.xz HTTP\/1\.1" 200/);
    const generations: Record<string, number[]> = {};
    for (const h of HOSTS) {
      const host = e2e.host(h);
      generations[h] = host.generations();
      assert.is(host.profileGeneration(), 2, `${h} on a new generation`);
      assert.equal(host.generations(), [1, 2]);
      assert.is(readlinkSync(join(host.nixDir, 'var/nix/profiles/system-2-link')), sys.v2);
      assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v2, `${h} runs v2`);
      assert.equal(host.switchLog(), [`switch ${sys.v1}`, `switch ${sys.v2}`]);
      // Fetched over https from nginx (the NAR of v2), not found anywhere else.
      const fetched = stack.agentEvents(h).find((e) => e['event'] === 'fetching');
      assert.is(fetched?.['cache'], e2e.cacheUrl);
    }

    // Release 2: everyone -> unhealthy; the canary's probe fails, it rolls back by number, the rollout halts.
    const r2 = await e2e.publish(
      e2e.fleet({
        prod: {
          hosts: Object.fromEntries(HOSTS.map((h) => [h, sys.unhealthy])),
          waves: [{ count: 1, soakSeconds: 1 }, { soakSeconds: 0 }],
          confirmDeadlineSeconds: 6,
        },
      }),
    );
    assert.is(r2.cacheCheck.skipped, false);
    const rel2 = installedRelease(stack.cpDir);
    assert.is(rel2.plans['prod']!.waves[0]!.hosts[0], canary, 'the same canary');
    const rolledBack = await until(
      `${canary}'s rolled-back ack`,
      60_000,
      () =>
        stack
          .acksOf(canary)
          .find((a) => a.kind === 'rolled-back' && a.releaseVersion === r2.version),
      200,
    );
    assert.is(rolledBack.target, sys.unhealthy);
    assert.is(rolledBack.current, sys.v2);
    assert.match(
      String(rolledBack.reason),
      /not healthy before the confirm deadline.*service-health/,
    );
    const failureSeen = Date.now();
    const others = HOSTS.filter((h) => h !== canary);
    await until('the other hosts to poll a few times after the failure', 30_000, () =>
      others.every(
        (h) =>
          stack
            .agentEvents(h)
            .filter(
              (e) =>
                e['event'] === 'cycle-done' && Date.parse(String(e['time'])) > failureSeen + 1000,
            ).length >= 3,
      ),
    );

    // The canary: the exact previous generation number again (2), its switch ran again; 3 stays in history.
    const c = e2e.host(canary);
    assert.is(c.profileGeneration(), 2, 'back on generation 2, not a new generation 4');
    assert.equal(c.generations(), [1, 2, 3]);
    assert.is(readlinkSync(join(c.nixDir, 'var/nix/profiles/system-3-link')), sys.unhealthy);
    assert.is(readlinkSync(join(c.dir, 'current-system')), sys.v2);
    assert.equal(c.switchLog().slice(-2), [`switch ${sys.unhealthy}`, `switch ${sys.v2}`]);
    const magic = stack.agentEvents(canary).find((e) => e['event'] === 'magic-rollback');
    assert.is(magic?.['toGeneration'], 2);
    assert.equal(
      new Quarantine(new StateDir(stack.lab.host(canary).stateDir))
        .active(Date.now())
        .map((q) => q.target),
      [sys.unhealthy],
    );
    assert.equal(
      stack
        .acksOf(canary)
        .filter((a) => a.releaseVersion === r2.version)
        .map((a) => a.kind)
        .filter((k) => k !== 'heartbeat' && k !== 'blocked'),
      ['started', 'activated', 'rolled-back'],
    );

    // Halted per policy: nobody else started release 2; they keep generation 2.
    for (const h of others) {
      const started = stack
        .acksOf(h)
        .filter(
          (a) =>
            a.releaseVersion === r2.version && (a.kind === 'started' || a.kind === 'activated'),
        );
      assert.is(started.length, 0, `${h} started after the canary failed`);
      assert.equal(e2e.host(h).generations(), [1, 2]);
      assert.is(e2e.host(h).profileGeneration(), 2);
    }
    const view = currentFleetView(stack.cpDir, stack.publishedAcks());
    assert.is(view.channels.find((ch) => ch.channel === 'prod')!.state, 'halted');
    console.log(
      `  nix-rollout: generations after release 1 ${JSON.stringify(generations)}; ${canary} rolled back to 2`,
    );
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await e2e.close();
  }
});

test.run();
