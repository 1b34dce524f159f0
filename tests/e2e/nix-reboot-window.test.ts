// `reboot: in-maintenance-window` end to end through nginx (tests/support/nix-e2e.ts): real Nix hosts
// (own /nix and system profile each), closures from the control plane's /nix-cache/, acks through
// nginx's mTLS ack route, the rebooting stub as the reboot command (tests/support/stub-reboot.ts).
// Channel `win` signs one daily maintenance window (UTC cron) that opened 5 min before the test, for
// 2 h, and `reboot: in-maintenance-window`. w1 (wave 1) goes v1 -> v3 (a kernel change); w2 (wave 2)
// v1 -> v2 (switches live).
// Time without sleeping: CI signs the release 50 min in the past; the "outside" runs are agents whose
// clock is 40 min behind (tests/support/clock-offset.mjs), so for them the window opens in 35 min and
// the release was signed before their now; the "inside" runs use the true clock. `nixfleet status`
// is asked about each instant with --now.
//   outside: the maintenance-window gate (it comes before the switch inhibitor, so the host has not
//     fetched its closure and cannot know it needs a reboot yet): it waits, says so in a signed ack,
//     and status shows it pending at that gate with the window and when it opens, holding wave 1,
//     with w2 waiting for wave 1; nothing fetched, staged or rebooted.
//   inside: the gate opens, the closure is fetched, the inhibitor found, and the reboot verdict of
//     `in-maintenance-window` allows it: `started`, `boot`, the reboot command (which reboots and
//     stops the agent), then from the new boot `activated` + `healthy`; wave 1 completes and w2
//     switches live. All read from the control plane's signed ack log.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { NixE2e } from '../support/nix-e2e.ts';
import { until } from '../support/e2e-processes.ts';
import { cleanupNixHosts } from '../support/nix-hosts.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';

const HOSTS = ['w1', 'w2'];
/** Generous: one `--once` run under a loaded machine starts Node, fetches and posts through nginx. */
const RUN_MS = 180_000;
const MIN = 60_000;
/** The "outside" agents' clocks: 40 min behind. The window opened 5 min before the test. */
const OUTSIDE_OFFSET_MS = -40 * MIN;
const WINDOW_OPENED_AGO_MS = 5 * MIN;
/** CI signed the release before the outside agents' time (and after the trust root's issuedAt, 1 h ago). */
const SIGNED_AGO_MS = 50 * MIN;

/** A daily window (six-field cron, UTC) starting at `start`'s second of the day. */
function dailyWindowAt(start: number, durationMinutes: number) {
  const d = new Date(start);
  return {
    cron: `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} * * *`,
    durationMinutes,
  };
}

test.after(() => cleanupNixHosts());

test('reboot in-maintenance-window: outside the window the kernel change waits, visibly; inside it the host boots, reboots through its reboot command and confirms', async () => {
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
    const t0 = Date.now();
    // Whole seconds: cron has no finer unit.
    const opens = Math.floor((t0 - WINDOW_OPENED_AGO_MS) / 1000) * 1000;
    await e2e.seed(sys.v1);
    await e2e.push([sys.v2, sys.v3], e2e.key);
    const fleet = e2e.fleet({
      win: {
        hosts: { w1: sys.v3, w2: sys.v2 },
        waves: [{ soakSeconds: 0 }, { soakSeconds: 0 }],
        confirmDeadlineSeconds: 300,
        // Long enough for the outside runs' release, signed 50 min ago, to stay fresh throughout.
        freshnessSeconds: 6 * 3600,
      },
    });
    fleet.channels['win']!.reboot = 'in-maintenance-window';
    fleet.channels['win']!.maintenanceWindows = [dailyWindowAt(opens, 120)];
    // w1 alone in wave 1, w2 in wave 2 (the last wave takes the rest).
    fleet.policies['p-win']!.waves[0]!.selector = { hosts: ['w1'] };
    const release = await e2e.publish(fleet, t0 - SIGNED_AGO_MS);
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('w1');
    for (const h of HOSTS) e2e.host(h).setBootId('boot-1');

    /** This host's acks of the release in the control plane's signed log, in acceptance order. */
    const logged = (h: string): Ack[] =>
      stack.acksOf(h).filter((a) => a.releaseVersion === release.version);
    const kinds = (h: string) => logged(h).map((a) => a.kind);
    /** Its rollout's acks after the first (heartbeats of a converged host left out: they come by time). */
    const rollout = (h: string) => kinds(h).filter((k, i) => i === 0 || k !== 'heartbeat');
    const once = async (h: string, clockOffsetMs = 0) => {
      const r = await stack.runAgentOnce(h, {}, RUN_MS, { clockOffsetMs });
      assert.is(r.code, 0, `${h}: agent --once exit code\n${JSON.stringify(r.events.slice(-6))}`);
      return r;
    };
    /** Its soak proof (soak 0: the ack after its healthy one, a clock second later) published. */
    const proofPublished = (h: string) =>
      until(`${h}'s soak proof published under acks/hosts/`, 60_000, () =>
        stack
          .publishedAcks()
          .some(
            (a) =>
              a.signed.host === h &&
              a.signed.healthySince !== null &&
              a.signed.time > a.signed.healthySince,
          ),
      );
    const published = (h: string, kind: string) =>
      until(`${h}'s ${kind} ack published under acks/hosts/`, 60_000, () =>
        stack.publishedAcks().some((a) => a.signed.host === h && a.signed.kind === kind),
      );

    // ---- Outside the window (the agents' clocks 40 min behind).
    const w1out = await once('w1', OUTSIDE_OFFSET_MS);
    assert.equal(
      [w1out.outcome?.['kind'], w1out.outcome?.['decision']],
      ['decided', 'wait'],
      JSON.stringify(w1out.outcome),
    );
    const gateLine = w1out.events.find((e) => e['event'] === 'decision')!;
    assert.is(gateLine['gate'], 'maintenance-window');
    assert.match(String(gateLine['reason']), `next opens at ${new Date(opens).toISOString()}`);
    const w2out = await once('w2', OUTSIDE_OFFSET_MS);
    assert.is(w2out.events.find((e) => e['event'] === 'decision')!['gate'], 'earlier-waves');
    const w1 = e2e.host('w1');
    assert.equal(w1.switchLog(), [`switch ${sys.v1}`], 'nothing staged outside the window');
    assert.equal([w1.rebootLog(), w1.bootId(), w1.profileGeneration()], [[], 'boot-1', 1]);
    // Its signed ack says it is there and waiting, dated on its own (behind) clock, before the window.
    assert.equal(kinds('w1'), ['heartbeat']);
    const waiting = logged('w1')[0]!;
    assert.equal([waiting.current, waiting.rolloutId], [sys.v1, null]);
    assert.ok(Date.parse(waiting.time) < opens, waiting.time);

    // What the operator sees at that instant: pending at the maintenance-window gate, with the window
    // and when it opens, holding wave 1; w2 waits for wave 1. Not offline, not failed.
    await published('w1', 'heartbeat');
    await published('w2', 'heartbeat');
    const outside = await e2e.status({ now: Date.parse(waiting.time) + 1000 });
    const ch = outside.channels.find((c) => c.channel === 'win')!;
    assert.equal(
      [ch.reboot, ch.deferredHosts, ch.currentWave],
      ['in-maintenance-window', 'hold', 0],
    );
    const [wave1, wave2] = ch.waves;
    assert.equal(wave1!.blockingHosts, ['w1']);
    assert.equal([wave1!.counts.pending, wave1!.counts.offline], [1, 0]);
    assert.is(wave2!.state, 'waiting');
    const w1status = outside.hosts.find((h) => h.host === 'w1')!;
    assert.equal([w1status.phase, w1status.gate], ['pending', 'maintenance-window']);
    assert.match(String(w1status.reason), /channel win: outside the maintenance windows/);
    assert.match(String(w1status.reason), `next opens at ${new Date(opens).toISOString()}`);
    const w2status = outside.hosts.find((h) => h.host === 'w2')!;
    assert.equal([w2status.phase, w2status.gate], ['pending', 'earlier-waves']);
    assert.match(String(w2status.reason), /waiting for wave 1 of channel win: w1/);

    // ---- Inside the window (true clocks). w1: boot + the reboot command, which ends the run.
    const w1in = await stack.runAgentOnce('w1', {}, RUN_MS);
    assert.is(w1in.code, null, `stopped by its reboot\n${JSON.stringify(w1in.events.slice(-6))}`);
    const decided = w1in.events.find((e) => e['event'] === 'decision' && e['decision'] === 'defer');
    assert.match(
      String(decided?.['reason']),
      /needs a reboot \(kernel changes.*reboot policy \(in-maintenance-window\) allows it now/,
    );
    assert.equal(w1.switchLog(), [`switch ${sys.v1}`, `boot ${sys.v3}`], 'staged with boot');
    assert.equal(w1.rebootLog(), ['reboot']);
    assert.equal(w1.bootsLog(), [`boot-1 -> boot-2 ${sys.v3}`]);
    assert.is(readlinkSync(join(w1.dir, 'current-system')), sys.v3);
    // From the new boot: activated and healthy, on the staged generation.
    const w1boot2 = await once('w1');
    assert.ok(
      w1boot2.events.some((e) => e['event'] === 'booted-into-target'),
      JSON.stringify(w1boot2.events.map((e) => e['event'])),
    );
    assert.equal(rollout('w1'), ['heartbeat', 'started', 'activated', 'healthy']);
    const started = logged('w1').find((a) => a.kind === 'started');
    const healthy = logged('w1').find((a) => a.kind === 'healthy');
    assert.ok(Date.parse(started!.time) >= opens, `started inside the window: ${started!.time}`);
    assert.equal([started!.current, started!.target], [sys.v1, sys.v3]);
    assert.match(String(started!.reason), /rebooting into its target \(kernel changes/);
    assert.equal([healthy!.current, healthy!.target], [sys.v3, sys.v3]);
    assert.equal([w1.profileGeneration(), w1.generations()], [2, [1, 2]]);

    // Wave 1 complete (soak 0, proved by w1's next ack): w2 switches live inside the window, no reboot.
    await proofPublished('w1');
    const w2in = await once('w2');
    assert.is(w2in.outcome?.['kind'], 'decided', JSON.stringify(w2in.outcome));
    assert.equal(rollout('w2'), ['heartbeat', 'started', 'activated', 'healthy']);
    const w2 = e2e.host('w2');
    assert.equal(w2.switchLog(), [`switch ${sys.v1}`, `switch ${sys.v2}`]);
    assert.equal([w2.rebootLog(), w2.bootId()], [[], 'boot-1']);

    await proofPublished('w2');
    const inside = await e2e.status();
    const done = inside.channels.find((c) => c.channel === 'win')!;
    assert.equal(
      done.waves.map((w) => w.state),
      ['complete', 'complete'],
      JSON.stringify(done.waves.map((w) => w.reason)),
    );
    for (const h of HOSTS)
      assert.ok(
        ['healthy', 'soaked', 'converged'].includes(inside.hosts.find((x) => x.host === h)!.phase),
      );
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await e2e.close();
  }
});

test.run();
