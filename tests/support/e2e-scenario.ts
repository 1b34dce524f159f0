// End-to-end scenarios in network namespaces (tests/e2e/netns-*.test.ts): one E2eStack with `netns: true`
// (nginx + ack endpoint in the control plane's namespace, each host's agent in its own), a compact fleet
// builder, and a driver that runs `nixfleet agent --once` for a set of hosts round after round until the
// signed record shows what the test waits for (never a sleep: every wait is a bounded number of rounds).
// Outcomes are read from the ack endpoint's append-only log, each ack's signature checked against the
// host key the fleet signed, so an assertion can only pass on what the hosts themselves signed.
import { requireTool } from './skip.ts';
import { requireNetns } from './netns.ts';
import {
  E2eStack,
  OLD,
  type AgentRunOptions,
  type OnceResult,
  type StackOptions,
} from './e2e-stack.ts';
import { installedRelease, rolloutTimeline, type HostTimeline } from './e2e-timeline.ts';
import { readFileSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { verifyAckSignature } from '../../protocol/acks.ts';
import { parseAckLog, ACK_LOG_FILE } from '../../protocol/ack-log.ts';
import { ackBundlePath, latestAckPath } from '../../protocol/layout.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';
import type {
  FleetChannel,
  FleetInput,
  FleetPolicy,
  FleetWave,
} from '../../publisher/fleet-schema.ts';
import type { AgentConfig } from '../../agent/config.ts';
import type { SimulatedActivatorConfig } from '../../agent/activators/simulated.ts';

export { OLD, NEW } from './e2e-stack.ts';
export const V2 = '/nix/store/33333333333333333333333333333333-nixos-system-v2';

/** The tools a netns scenario needs; false = skipped (outside CI only). */
export function requireScenarioTools(why: string): boolean {
  return (
    requireTool('nginx', `${why}: nginx serves the tree`) &&
    requireTool('openssl', `${why}: fleet PKI`) &&
    requireTool('curl', `${why}: requests from inside a namespace`) &&
    requireNetns(why)
  );
}

export interface WaveSpec extends Partial<Omit<FleetWave, 'selector' | 'count' | 'percent'>> {
  /** The wave's hosts (a `hosts` selector); omitted on a single all-at-once wave. */
  hosts?: string[];
}

export interface ChannelSpec {
  /** host -> target closure. */
  targets: Record<string, string>;
  waves: WaveSpec[];
  policy?: Partial<Omit<FleetPolicy, 'waves' | 'strategy'>>;
  channel?: Partial<Omit<FleetChannel, 'policy'>>;
}

/**
 * A fleet of channels with explicit waves (a `hosts` selector each), timings (confirm 60 s, 1 s
 * heartbeats, freshness 1 h) unless the spec says otherwise, plus any top-level fields in `extra`.
 */
export function scenarioFleet(
  stack: E2eStack,
  channels: Record<string, ChannelSpec>,
  extra: Partial<Omit<FleetInput, 'fleet' | 'hosts' | 'channels' | 'policies'>> = {},
): FleetInput {
  const fleet: FleetInput = {
    fleet: stack.lab.opts.fleetName,
    hosts: {},
    channels: {},
    policies: {},
    channelEdges: [],
    disruptionBudgets: [],
    ...extra,
  };
  for (const [ch, spec] of Object.entries(channels)) {
    for (const [h, target] of Object.entries(spec.targets))
      fleet.hosts[h] = {
        system: 'x86_64-linux',
        channel: ch,
        target,
        hostKey: stack.lab.hostKeyB64(h),
        tags: [],
      };
    const single = spec.waves.length === 1;
    fleet.policies[`p-${ch}`] = {
      strategy: single ? 'all-at-once' : 'staged',
      waves: spec.waves.map(({ hosts, ...w }) => ({
        ...(single || !hosts ? {} : { selector: { hosts } }),
        soakSeconds: 0,
        failureThreshold: { count: 0 },
        offlineExcuseLimit: 0,
        ...w,
      })),
      onFailure: 'halt',
      probes: [],
      healthyPassesRequired: 1,
      deferredHosts: 'hold',
      ...spec.policy,
    };
    fleet.channels[ch] = {
      policy: `p-${ch}`,
      freshnessSeconds: 3600,
      signingIntervalSeconds: 600,
      // Generous: a loaded 2-core machine has taken seconds per round. Tests that need a deadline to
      // pass (an unhealthy host rolled back) set a short one themselves.
      confirmDeadlineSeconds: 60,
      heartbeatSeconds: 1,
      offlineWindowSeconds: 600,
      maintenanceWindows: [],
      reboot: 'never',
      ...spec.channel,
    };
  }
  return fleet;
}

/** A simulated host starting on OLD, with failure injection. */
export function simulated(o: Partial<Omit<SimulatedActivatorConfig, 'kind'>> = {}) {
  return {
    kind: 'simulated' as const,
    initialPath: OLD,
    unhealthy: [],
    failSwitch: [],
    inhibit: [],
    switchDelayMs: 0,
    ...o,
  };
}

export type HostRun = Partial<AgentConfig> & AgentRunOptions;

/** The stack in namespaces, CI's first release published and synced, the ack endpoint primed. */
export async function startScenario(
  opts: Omit<StackOptions, 'netns'>,
  fleet: (stack: E2eStack) => FleetInput,
): Promise<Scenario> {
  const stack = await E2eStack.create({ ...opts, netns: true });
  try {
    stack.publish(fleet(stack));
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed(opts.hosts[0]!);
    return new Scenario(stack);
  } catch (e) {
    await stack.close();
    throw e;
  }
}

export class Scenario {
  /** Per-host agent settings for every following run (config fields and the clock offset). */
  readonly hostRuns = new Map<string, HostRun>();
  /** Every `--once` result of each host so far, oldest first. */
  readonly history = new Map<string, OnceResult[]>();
  constructor(readonly stack: E2eStack) {}

  /** CI publishes a new release (now = signing time) and the control plane installs it (`cp sync`). */
  async release(fleet: FleetInput, now?: number): Promise<number> {
    const r = this.stack.publish(fleet, now);
    await this.stack.sync();
    return r.version;
  }

  /** CI's scheduled `nixfleet refresh` (a new timestamp, same release), installed by `cp sync`. */
  async refresh(now?: number): Promise<void> {
    this.stack.lab.refresh(now);
    await this.stack.sync();
  }

  /** One `--once` cycle of each host, all at once; a run that exits with a crash fails the test. */
  async round(hosts: string[]): Promise<Record<string, OnceResult>> {
    const out = await Promise.all(
      hosts.map((h) => {
        const { clockOffsetMs, ...config } = this.hostRuns.get(h) ?? {};
        return this.stack.runAgentOnce(h, config, 60_000, {
          ...(clockOffsetMs ? { clockOffsetMs } : {}),
        });
      }),
    );
    out.forEach((o, i) => {
      if (o.code === null || o.code > 2 || !o.outcome)
        throw new Error(
          `${hosts[i]}: agent run failed (exit ${o.code}):\n${JSON.stringify(o.events.slice(-5))}`,
        );
      const runs = this.history.get(hosts[i]!) ?? [];
      runs.push(o);
      this.history.set(hosts[i]!, runs);
    });
    return Object.fromEntries(hosts.map((h, i) => [h, out[i]!]));
  }

  /**
   * Rounds of `hosts` until `done()` holds on the signed record (checked after each round), at most
   * `maxRounds`: a bound in rounds, so a loaded machine only makes the test slower, never wrong.
   */
  async roundsUntil(
    hosts: string[],
    what: string,
    done: () => boolean,
    maxRounds = 25,
  ): Promise<number> {
    for (let i = 1; i <= maxRounds; i++) {
      await this.round(hosts);
      if (done()) return i;
    }
    const last = hosts.map((h) => {
      const run = this.history.get(h)?.at(-1);
      return `${h}: ${JSON.stringify(run?.outcome)} ${JSON.stringify(run?.events.slice(-4))}`;
    });
    throw new Error(
      `not reached after ${maxRounds} rounds of ${hosts.join(', ')}: ${what}\n${last.join('\n')}`,
    );
  }

  /** `n` rounds, whatever happens (to show that something does NOT happen). */
  async rounds(hosts: string[], n: number): Promise<void> {
    for (let i = 0; i < n; i++) await this.round(hosts);
  }

  /**
   * Every ack the endpoint accepted, in order, each signature checked against the host key the fleet
   * signed for that host (an ack that does not verify fails the test).
   */
  signedLog(): Ack[] {
    const keys = new Map<string, string>();
    for (const p of Object.values(installedRelease(this.stack.cpDir).plans))
      for (const [h, e] of Object.entries(p.hosts)) keys.set(h, e.hostKey);
    return this.stack.ackLog().map((a) => {
      const key = keys.get(a.signed.host) ?? this.stack.lab.hostKeyB64(a.signed.host);
      verifyAckSignature(a, a.signed.host, key);
      return a.signed;
    });
  }

  acksOf(host: string, pred: (a: Ack) => boolean = () => true): Ack[] {
    return this.signedLog().filter((a) => a.host === host && pred(a));
  }

  /** The host signed an ack of `kind` (for `target`, when given). */
  signed(host: string, kind: Ack['kind'], target?: string): boolean {
    return this.acksOf(host, (a) => a.kind === kind && (!target || a.target === target)).length > 0;
  }

  /** The host's latest signed ack says it runs `path`. */
  isOn(host: string, path: string): boolean {
    return this.acksOf(host).at(-1)?.current === path;
  }

  /** The rollout timeline of the installed release, from the signed log. */
  timeline(): Map<string, HostTimeline> {
    return rolloutTimeline(installedRelease(this.stack.cpDir).plans, this.signedLog());
  }

  /** The gates one `--once` run logged (decision events), in order. */
  gates(result: OnceResult): unknown[] {
    return result.events.filter((e) => e['event'] === 'decision').map((e) => e['gate']);
  }

  /** Every gate any of the host's runs so far logged. */
  gatesSeen(host: string): Set<unknown> {
    return new Set((this.history.get(host) ?? []).flatMap((r) => this.gates(r)));
  }

  /**
   * Each run of `hosts` from round `from` on, as its agent logged it (ms clock): when it decided what and
   * why, and when it switched and signed its healthy ack. Rounds run the agents side by side, so these
   * times are what orders their steps within a round (the acks carry whole seconds).
   */
  describeRuns(hosts: string[], from = 0): string {
    const lines: string[] = [];
    const rounds = Math.max(...hosts.map((h) => this.history.get(h)?.length ?? 0));
    for (let k = from; k < rounds; k++)
      for (const h of hosts) {
        const run = this.history.get(h)?.[k];
        if (!run) continue;
        const steps = run.events
          .filter((e) =>
            ['decision', 'switching', 'healthy', 'confirmed'].includes(`${e['event']}`),
          )
          .map((e) =>
            e['event'] === 'decision'
              ? `${e['time']} ${e['decision']}${e['gate'] ? ` [${e['gate']}]` : ''}: ${e['reason']}`
              : `${e['time']} ${e['event']}`,
          );
        lines.push(`round ${k} ${h}: ${steps.join('; ')}`);
      }
    return lines.join('\n');
  }

  async close(): Promise<void> {
    await this.stack.close();
  }

  // --- a compromised control plane: it serves host-signed acks of its own choosing ---

  /** Every accepted ack as the envelope object the endpoint received (what a bundle lists). */
  logEnvelopes(): { signed: Ack; envelope: Record<string, unknown> }[] {
    const bytes = readFileSync(join(this.stack.cpDir, '.ack-log', ACK_LOG_FILE));
    return parseAckLog(bytes).records.map((r) => {
      const envelope = JSON.parse(r.canonical) as Record<string, unknown>;
      return { signed: envelope['signed'] as Ack, envelope };
    });
  }

  private forgedWrites = 0;

  /**
   * Serves, for one wave, a bundle listing exactly `acks` (genuine host-signed envelopes of the
   * attacker's choosing) and, for each of those hosts, that ack as its latest-ack file. Written
   * atomically with an mtime no earlier write had, so nginx's ETag changes and agents fetch it.
   */
  serveForged(channel: string, wave: number, acks: Record<string, unknown>[]): void {
    const bundle = {
      type: 'ack-bundle',
      schemaVersion: 1,
      fleet: this.stack.lab.opts.fleetName,
      channel,
      wave,
      generatedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      acks,
    };
    const mtime = new Date(Date.now() + ++this.forgedWrites * 1000);
    const write = (path: string, text: string) => {
      writeFileSync(`${path}.forged`, text);
      utimesSync(`${path}.forged`, mtime, mtime);
      renameSync(`${path}.forged`, path);
    };
    write(join(this.stack.cpDir, ackBundlePath(channel, wave)), JSON.stringify(bundle));
    for (const a of acks)
      write(join(this.stack.cpDir, latestAckPath((a['signed'] as Ack).host)), JSON.stringify(a));
  }

  /** The acks the control plane serves in a wave's bundle right now. */
  servedBundle(channel: string, wave: number): Ack[] {
    const file = join(this.stack.cpDir, ackBundlePath(channel, wave));
    const bundle = JSON.parse(readFileSync(file, 'utf8')) as { acks: { signed: Ack }[] };
    return bundle.acks.map((a) => a.signed);
  }
}
