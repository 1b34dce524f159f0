// The reboot path end to end through nginx (tests/support/nix-e2e.ts): real Nix hosts (own /nix and
// system profile in a mount namespace each), closures fetched from the control plane's /nix-cache/ over
// https, acks posted through nginx's mTLS ack route, channels under the signed `reboot: allowed` policy.
// A kernel change (v1 -> v3) cannot switch live: the agent stages it with `switch-to-configuration
// boot` and runs its configured reboot command. That command is the rebooting stub
// (tests/support/stub-reboot.ts, standing in for `systemctl reboot`): it boots the bootloader's default
// entry under a new boot id and stops the agent that ran it with SIGTERM, as shutdown stops the agent's
// unit. Each `nixfleet agent --once` run here is one start by systemd's timer; the run after a reboot
// is the first of the new boot. Outcomes are read from the control plane's signed ack log.
//   b1: v1 -> v3, healthy after the reboot: `started` before the reboot (the run ends in it), then
//       `activated` + `healthy` only from the new boot; generation 2 stays.
//   b2: v1 -> v3unhealthy: after the reboot its probe fails until the confirm deadline, so it restores
//       generation 1 by number with `boot` and reboots again (that run ends in it too); only the run of
//       the third boot, running v1, says `rolled-back`.
//   b3: v1 -> v3 under the default `reboot: never`: a `deferred` ack with the reason, nothing staged,
//       shown as deferred (never offline, however old its ack) by `nixfleet status --json` and the
//       dashboard, holding its wave under the default, signed `deferredHosts: hold`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { currentFleetView } from '../support/e2e-timeline.ts';
import { NixE2e } from '../support/nix-e2e.ts';
import { until } from '../support/e2e-processes.ts';
import { cleanupNixHosts } from '../support/nix-hosts.ts';
import { runCli } from '../support/cli.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { readPending } from '../../agent/pending.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';

const HOSTS = ['b1', 'b2', 'b3'];
/** Generous: one `--once` run under a loaded machine starts Node, fetches and posts through nginx. */
const RUN_MS = 180_000;

test.after(() => cleanupNixHosts());

test('kernel change through nginx: boot + a reboot command that reboots, confirmed after the reboot; an unhealthy one rolls back to the exact generation across a second reboot; under "never" it defers, visibly', async () => {
  if (
    !requireTool('nix', 'real Nix hosts') ||
    !requireTool('unshare', 'a /nix per host') ||
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI')
  )
    return;
  const e2e = await NixE2e.create({ hosts: HOSTS, agent: { probeIntervalMs: 300 } });
  const { stack, sys } = e2e;
  try {
    await e2e.seed(sys.v1);
    await e2e.push([sys.v3, sys.v3unhealthy], e2e.key);
    const fleet = e2e.fleet({
      good: { hosts: { b1: sys.v3 }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 300 },
      // Generous (the machine is loaded): the run after the reboot must start and post `activated`
      // well before it; the rollback then waits for the deadline, as a host that never turns healthy does.
      bad: {
        hosts: { b2: sys.v3unhealthy },
        waves: [{ soakSeconds: 0 }],
        confirmDeadlineSeconds: 60,
      },
      // The default policy: a kernel change waits, visibly, and nothing is touched.
      held: { hosts: { b3: sys.v3 }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 300 },
    });
    fleet.channels['good']!.reboot = 'allowed';
    fleet.channels['bad']!.reboot = 'allowed';
    const release = await e2e.publish(fleet);
    assert.is(release.cacheCheck.skipped, false, 'published with the cache check');
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('b1');
    for (const h of HOSTS) e2e.host(h).setBootId('boot-1');

    /** This host's acks of the release in the control plane's signed log (heartbeats left out). */
    const logged = (h: string): Ack[] =>
      stack.acksOf(h).filter((a) => a.releaseVersion === release.version && a.kind !== 'heartbeat');
    const kinds = (h: string) => logged(h).map((a) => a.kind);
    /** One start of the agent by the timer, ending normally with the expected outcome. */
    const once = async (h: string, expected: string) => {
      const r = await stack.runAgentOnce(h, {}, RUN_MS);
      assert.is(r.code, 0, `${h}: agent --once exit code\n${JSON.stringify(r.events.slice(-6))}`);
      assert.is(r.outcome?.['kind'], expected, `${h}: ${JSON.stringify(r.outcome)}`);
      return r;
    };
    /**
     * One start of the agent that its own reboot command ends: stopped by the signal (no exit code, no
     * outcome printed) after logging `event` (the reboot it asked for), and the host is up again under
     * the next boot id. Returns the system the host booted.
     */
    const onceEndedByReboot = async (h: string, event: string) => {
      const host = e2e.host(h);
      const before = host.bootsLog().length;
      const r = await stack.runAgentOnce(h, {}, RUN_MS);
      const events = r.events.map((e) => e['event']);
      assert.is(
        r.code,
        null,
        `${h}: stopped by the reboot, not exited\n${JSON.stringify(r.events.slice(-6))}`,
      );
      assert.is(r.outcome, null, `${h}: no outcome printed after the reboot command`);
      assert.ok(events.includes(event), `${h}: ${JSON.stringify(events)}`);
      const boots = host.bootsLog();
      assert.is(boots.length, before + 1, `${h}: one boot: ${JSON.stringify(boots)}`);
      const [, from, to, booted] = /^(\S+) -> (\S+) (\S+)$/.exec(boots.at(-1)!)!;
      assert.is(to, `boot-${Number(from!.slice('boot-'.length)) + 1}`);
      assert.is(host.bootId(), to);
      assert.is(readlinkSync(join(host.dir, 'current-system')), booted, 'the booted system runs');
      return booted!;
    };
    /** The agent's pending record, read as its next run will. */
    const pending = (h: string) => readPending(new StateDir(stack.lab.host(h).stateDir));

    const good = async () => {
      const host = e2e.host('b1');
      // Boot 1: staged for the next boot, never switched live; the started ack is out before the
      // reboot, posted from v1; the reboot command ends the run and boots v3 (the default entry).
      assert.is(await onceEndedByReboot('b1', 'rebooting'), sys.v3);
      assert.equal(host.switchLog(), [`switch ${sys.v1}`, `boot ${sys.v3}`]);
      assert.equal(host.rebootLog(), ['reboot'], 'the reboot command ran once');
      assert.is(host.profileGeneration(), 2);
      assert.equal(kinds('b1'), ['started']);
      const started = logged('b1')[0]!;
      assert.is(started.current, sys.v1);
      assert.match(String(started.reason), /rebooting into its target \(kernel changes/);
      const p = pending('b1');
      assert.equal([p?.phase, p?.bootId, p?.target], ['booting', 'boot-1', sys.v3]);
      assert.equal(p?.previous, { number: 1, path: sys.v1 });

      // Boot 2 runs v3: activated and healthy, posted from the new boot, on the same generation 2.
      const r2 = await once('b1', 'decided');
      const events = r2.events.map((e) => e['event']);
      assert.ok(
        events.includes('booted-into-target') && events.includes('confirmed'),
        JSON.stringify(events),
      );
      assert.equal(kinds('b1'), ['started', 'activated', 'healthy']);
      const healthy = logged('b1')[2]!;
      assert.equal([healthy.target, healthy.current], [sys.v3, sys.v3]);
      assert.is(pending('b1'), undefined, 'confirmed: nothing pending');
      assert.is(host.profileGeneration(), 2, 'the staged generation, no new one');
      assert.equal(host.generations(), [1, 2]);
      assert.is(readlinkSync(join(host.nixDir, 'var/nix/profiles/system-2-link')), sys.v3);
      assert.equal(host.rebootLog(), ['reboot'], 'no second reboot');
      assert.equal(host.switchLog(), [`switch ${sys.v1}`, `boot ${sys.v3}`]);
    };

    const bad = async () => {
      const host = e2e.host('b2');
      assert.is(await onceEndedByReboot('b2', 'rebooting'), sys.v3unhealthy);
      assert.equal(kinds('b2'), ['started']);
      assert.is(host.profileGeneration(), 2);

      // Boot 2 runs v3unhealthy: its probe fails until the deadline; generation 1 again (by number)
      // with `boot`, and the reboot command again, which ends this run and boots v1. Nothing claims a
      // rollback before it has happened.
      assert.is(await onceEndedByReboot('b2', 'rebooting-back'), sys.v1);
      assert.equal(
        host.switchLog(),
        [`switch ${sys.v1}`, `boot ${sys.v3unhealthy}`, `boot ${sys.v1}`],
        'rolled back with boot, not switch',
      );
      assert.equal(host.rebootLog(), ['reboot', 'reboot']);
      assert.is(host.profileGeneration(), 1, 'the exact previous generation number');
      assert.ok(!kinds('b2').includes('rolled-back'), JSON.stringify(kinds('b2')));
      assert.equal([pending('b2')?.phase, pending('b2')?.bootId], ['rebooting-back', 'boot-2']);

      // Boot 3 runs v1 again: now the rolled-back ack, signed and in the control plane's log.
      await once('b2', 'decided');
      const acks = logged('b2').filter((a) => a.kind !== 'blocked');
      assert.equal(
        acks.map((a) => a.kind),
        ['started', 'activated', 'rolled-back'],
      );
      const back = acks[2]!;
      assert.equal([back.target, back.current], [sys.v3unhealthy, sys.v1]);
      assert.match(String(back.reason), /not healthy before the confirm deadline/);
      assert.is(pending('b2'), undefined);
      assert.is(host.profileGeneration(), 1);
      assert.equal(host.generations(), [1, 2], 'no new generation for the rollback');
      assert.is(readlinkSync(join(host.nixDir, 'var/nix/profiles/system-1-link')), sys.v1);
      assert.equal(host.rebootLog(), ['reboot', 'reboot'], 'no third reboot');
      assert.equal(host.bootsLog().length, 2);
      assert.equal(
        new Quarantine(new StateDir(stack.lab.host('b2').stateDir))
          .active(Date.now())
          .map((q) => q.target),
        [sys.v3unhealthy],
      );
    };

    const held = async () => {
      const host = e2e.host('b3');
      const r = await once('b3', 'decided');
      assert.is(r.outcome?.['decision'], 'defer');
      assert.equal(kinds('b3'), ['deferred']);
      assert.match(String(logged('b3')[0]!.reason), /needs a reboot \(kernel changes/);
      assert.match(String(logged('b3')[0]!.reason), /reboot policy of channel held is never/);
      assert.equal(host.switchLog(), [`switch ${sys.v1}`], 'nothing staged');
      assert.equal(host.rebootLog(), []);
      assert.equal(host.bootId(), 'boot-1');
      assert.equal([host.profileGeneration(), host.generations()], [1, [1]]);
    };

    await Promise.all([good(), bad(), held()]);

    // Both closures came through nginx's /nix-cache/; the dashboard's view of the signed acks agrees.
    const access = readFileSync(join(stack.runtimeDir, 'access.log'), 'utf8');
    for (const path of [sys.v3, sys.v3unhealthy])
      assert.match(
        access,
        new RegExp(`GET /nix-cache/${path.slice(11, 43)}\\.narinfo HTTP/1\\.1" 200`),
      );
    // The endpoint publishes acks/hosts/ after its log (asynchronously): wait until b2's rolled-back is there.
    await until('b2 rolled-back published under acks/hosts/', 60_000, () =>
      stack.publishedAcks().some((a) => a.signed.host === 'b2' && a.signed.kind === 'rolled-back'),
    );
    const view = currentFleetView(stack.cpDir, stack.publishedAcks());
    const phase = (h: string) => view.hosts.find((x) => x.host === h)?.phase;
    assert.ok(['healthy', 'soaked'].includes(String(phase('b1'))), `b1: ${phase('b1')}`);
    assert.is(phase('b2'), 'failed');
    assert.is(phase('b3'), 'deferred', 'a deferred host is shown as deferred, not offline');

    await deferredAsTheOperatorSeesIt(e2e);
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await e2e.close();
  }
});

/**
 * b3 defers under the defaults (`reboot: never`, `deferredHosts: hold`, both signed into its channel
 * plan): `nixfleet status --json` and the dashboard show its state, its reason and what it does to its
 * wave, now and 45 min later: long past the offline window (600 s) and still within the timestamp's
 * freshness (3600 s), so the view is current, not stale (a deferred host never turns offline).
 */
async function deferredAsTheOperatorSeesIt(e2e: NixE2e): Promise<void> {
  for (const at of [Date.now(), Date.now() + 45 * 60_000]) {
    const s = await e2e.status({ now: at });
    const ch = s.channels.find((c) => c.channel === 'held')!;
    assert.equal([ch.reboot, ch.deferredHosts], ['never', 'hold'], 'the signed defaults');
    const wave = ch.waves[0]!;
    assert.is(wave.state, 'active', 'the wave waits for the deferred host');
    assert.equal(wave.blockingHosts, ['b3']);
    assert.is(wave.counts.deferred, 1);
    assert.is(wave.counts.offline, 0);
    assert.match(wave.reason, /b3 is deferred .*deferredHosts: hold keeps the wave waiting/);
    const b3 = s.hosts.find((h) => h.host === 'b3')!;
    assert.is(b3.phase, 'deferred', `at ${new Date(at).toISOString()}: ${JSON.stringify(b3)}`);
    assert.is(b3.lastAckKind, 'deferred');
    assert.match(String(b3.lastAckReason), /reboot policy of channel held is never/);
    assert.match(String(b3.reason), /waits for it \(deferredHosts: hold\)/);
    assert.is(b3.excused, false);
  }

  // The dashboard, built from the same tree and acks.
  const out = join(e2e.stack.dir, 'site');
  const r = await runCli(
    'site',
    'build',
    '--tree',
    e2e.stack.cpDir,
    '--root',
    e2e.stack.lab.rootFile,
    '--out',
    out,
  );
  assert.is(r.code, 0, r.err + r.out);
  const channelPage = readFileSync(join(out, 'channels', 'held.html'), 'utf8');
  assert.match(channelPage, 'a deferred host holds its wave (deferredHosts: hold)');
  assert.match(channelPage, /b3 is deferred \(.*\); deferredHosts: hold keeps the wave waiting/);
  assert.match(channelPage, 'wave 1 of channel held waits for it (deferredHosts: hold)');
  const index = readFileSync(join(out, 'index.html'), 'utf8');
  assert.match(index, /1 deferred host\(s\) waiting for a reboot or maintenance window/);
  assert.match(index, /b3: switching to \S+ needs a reboot \(kernel changes/);
}

test.run();
