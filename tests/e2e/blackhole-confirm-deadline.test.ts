// The confirm deadline is a promise, also when packets vanish. The control plane runs in one network
// namespace, each agent (`nixfleet agent --once`, production request timeout and retries) in its own,
// joined by veth pairs (tests/support/netns.ts). The manifest's health probe installs an nftables `drop` rule for the control
// plane's address inside the agent's namespace: from the host's first probe round on, every packet
// to the control plane vanishes (a black hole, not a refusal), so the healthy ack can neither be
// posted nor read back. The host must roll back at its deadline, at most one probe interval (+ a
// margin for a loaded machine) late, for several deadlines: no wait in the window outlives it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { requireNetns, NetnsTopology, CP_ADDR } from '../support/netns.ts';
import { jsonLines, startCli, until, type CliProcess } from '../support/e2e-processes.ts';
import { Lab } from '../support/lab.ts';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import { NEW, OLD } from '../agent/lab-fleet.ts';

const PROBE_INTERVAL_MS = 1000;
/** Scheduling slack on a busy 2-core machine; far below one request timeout (10 s), which old code waited out. */
const MARGIN_MS = 2500;
const BOUND_MS = PROBE_INTERVAL_MS + MARGIN_MS;
const DEADLINES = { fast: 8, slow: 20 } as const;

const CP_PORT = 18443;
const TABLE = 'nfblackhole';

function fleetFor(lab: Lab, nftBin: string): FleetInput {
  const fleet: FleetInput = {
    fleet: lab.opts.fleetName,
    hosts: {},
    channels: {},
    policies: {},
    channelEdges: [],
    disruptionBudgets: [],
  };
  for (const [ch, seconds] of Object.entries(DEADLINES)) {
    const host = `h-${ch}`;
    fleet.hosts[host] = {
      system: 'x86_64-linux',
      channel: ch,
      target: NEW,
      hostKey: lab.hostKeyB64(host),
      tags: [],
    };
    fleet.policies[`p-${ch}`] = {
      strategy: 'all-at-once',
      waves: [{ soakSeconds: 1, failureThreshold: { count: 0 } }],
      onFailure: 'halt',
      // Passes, and from then on the control plane's packets are dropped: the partition starts right
      // after the switch, from inside the host's own namespace.
      probes: [
        {
          kind: 'command',
          name: 'partition',
          argv: [nftBin, 'add', 'rule', 'inet', TABLE, 'out', 'ip', 'daddr', CP_ADDR, 'drop'],
          expectExit: 0,
          timeoutMs: 5000,
        },
      ],
      healthyPassesRequired: 1,
    };
    fleet.channels[ch] = {
      policy: `p-${ch}`,
      freshnessSeconds: 3600,
      signingIntervalSeconds: 600,
      confirmDeadlineSeconds: seconds,
      heartbeatSeconds: 1,
      offlineWindowSeconds: 600,
    };
  }
  return fleet;
}

test('black-hole partition after the switch: rollback at the confirm deadline (8 s and 20 s), not after the request timeouts', async () => {
  if (!requireNetns('network namespaces and an nftables drop rule for the black-hole partition'))
    return;
  const nftBin = execFileSync('sh', ['-c', 'command -v nft'], { encoding: 'utf8' }).trim();
  const lab = new Lab({
    dir: mkdtempSync(join(tmpdir(), 'nf-blackhole-')),
    fleetName: 'blackhole',
    hosts: ['h-fast', 'h-slow'],
    initialPath: OLD,
    serverNames: [CP_ADDR],
  });
  const procs: CliProcess[] = [];
  let net: NetnsTopology | null = null;
  try {
    net = NetnsTopology.create(['h-fast', 'h-slow']);
    const nft = (host: string, ...args: string[]) => net!.exec(net!.nsOf(host), ['nft', ...args]);
    lab.publish(fleetFor(lab, nftBin));
    const cp = startCli(
      [
        'cp',
        'serve',
        '--tree',
        lab.treeDir,
        '--ca',
        lab.pki.caCert,
        '--cert',
        lab.pki.serverCert,
        '--key',
        lab.pki.serverKey,
        '--host',
        CP_ADDR,
        '--port',
        String(CP_PORT),
      ],
      join(lab.opts.dir, 'cp.log'),
      { netns: net.cpNs },
    );
    procs.push(cp);
    await until(
      'the control plane listening',
      30_000,
      () =>
        cp.output().includes('"url"') ||
        (!cp.running() && assert.unreachable(`cp serve exited: ${cp.output()}`)),
    );

    for (const [ch, seconds] of Object.entries(DEADLINES)) {
      const host = `h-${ch}`;
      // An empty output chain; the probe adds the drop rule to it.
      nft(host, 'add', 'table', 'inet', TABLE);
      nft(host, 'add', 'chain', 'inet', TABLE, 'out', '{ type filter hook output priority 0; }');
      // Production request timeout and retries: what a silent network costs without deadline bounds.
      const config = lab.agentConfig(host, {
        controlPlaneUrl: `https://${CP_ADDR}:${CP_PORT}/`,
        requestTimeoutMs: 10_000,
        retries: 3,
        probeIntervalMs: PROBE_INTERVAL_MS,
      });
      const agent = startCli(
        ['agent', '--config', lab.host(host).configFile, '--once'],
        join(lab.opts.dir, `${host}.log`),
        { netns: net.nsOf(host) },
      );
      procs.push(agent);
      const events = () => jsonLines(agent.output());
      const rolledBack = await until(`${host} rolled back`, (seconds + 120) * 1000, () => {
        const e = events().find((x) => x.event === 'rolled-back');
        if (!e && !agent.running())
          throw new Error(`agent exited without rolling back:\n${agent.output()}`);
        return e;
      });
      const switching = events().find((e) => e.event === 'switching');
      assert.ok(switching, 'the host switched');
      const deadline = Date.parse(switching.deadline as string);
      const late = Date.parse(rolledBack.time as string) - deadline;
      assert.ok(
        Date.parse(switching.time as string) + seconds * 1000 - deadline < 2000,
        `deadline is the channel's ${seconds} s window`,
      );
      assert.ok(late >= 0, `${host}: rolled back ${-late} ms before its deadline`);
      assert.ok(
        late <= BOUND_MS,
        `${host}: rolled back ${late} ms after its ${seconds} s deadline (bound ${BOUND_MS} ms)`,
      );
      // The healthy ack really was stuck in the black hole, and the host runs its previous generation.
      assert.ok(
        events().some((e) => e.event === 'healthy'),
        'probes passed; only the confirmation was missing',
      );
      assert.match(
        String(events().find((e) => e.event === 'magic-rollback')?.reason),
        /could not be confirmed/,
      );
      assert.is(config.stateDir, lab.host(host).stateDir);
      await agent.stop();
      nft(host, 'delete', 'table', 'inet', TABLE);
    }
  } finally {
    for (const p of procs) await p.stop();
    net?.destroy();
    await lab.close();
  }
});

test.run();
