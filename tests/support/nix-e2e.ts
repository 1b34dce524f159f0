// End-to-end helper for real NixOS-like hosts behind the real nginx: E2eStack (tests/support/e2e-stack.ts)
// whose agents are `nixfleet agent` processes each started inside its own mount namespace
// (NixTestHost.processWrap: its own /nix and /etc/nix/nix.conf, so its own store and system profile),
// with the `nix` activator. The binary cache ships inside the published tree (`<tree>/nix-cache/`, filled
// by `nix copy --to file://...?secret-key=` on the CI side) and reaches hosts through `cp sync` and nginx
// at `https://127.0.0.1:<port>/nix-cache` (no client certificate; Nix trusts the fleet CA through the
// activator's NIX_SSL_CERT_FILE = the agent's caFile).
// Each host's reboot command is the rebooting stub (NixTestHost.rebootingCommand, tests/support/
// stub-reboot.ts): it boots the host's default entry under a new boot id and stops the agent (SIGTERM);
// the test's next `nixfleet agent --once` run stands in for systemd's timer starting it after the boot.
// Publishing runs the real cache check (`publishReleaseChecked`) against that tree-shipped cache as
// `file://<tree>/nix-cache` (`--cache-check-at`): the https URL serves it only after the sync installs it.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { E2eStack } from './e2e-stack.ts';
import {
  cacheKey,
  makeCache,
  NixTestHost,
  testSystems,
  type CacheKey,
  type TestSystems,
} from './nix-hosts.ts';
import { labFleet, type ChannelSpec } from '../agent/lab-fleet.ts';
import { publishReleaseChecked, type PublishResult } from '../../publisher/publish.ts';
import type { FleetInput } from '../../publisher/fleet-schema.ts';
import type { AgentConfig } from '../../agent/config.ts';
import type { Probe } from '../../protocol/schemas/release.ts';
import type { StatusReport } from '../../read-side/status.ts';
import { runCli } from './cli.ts';

/** `nixfleet status --json` as parsed JSON (times are ISO strings there). */
export type StatusJson = StatusReport;

/**
 * The test systems' switch writes its verdict ("ok" / "unhealthy") to $NIXFLEET_TEST_HOST_DIR/health.
 * Shell builtins only (`read`, `test`): one process per probe, no `$(cat ...)` fork.
 */
export const HEALTH_PROBE: Probe = {
  kind: 'command',
  name: 'service-health',
  argv: ['sh', '-c', 'read -r v < "$NIXFLEET_TEST_HOST_DIR/health" && test "$v" = ok'],
  expectExit: 0,
  timeoutMs: 10_000,
};

export interface NixE2eOptions {
  hosts: string[];
  agent?: Partial<Omit<AgentConfig, 'activator'>>;
}

export class NixE2e {
  private constructor(
    readonly stack: E2eStack,
    readonly sys: TestSystems,
    /** The fleet's cache key, listed in root v1. */
    readonly key: CacheKey,
    readonly hosts: Map<string, NixTestHost>,
  ) {}

  /** Builds the test systems (once per run), the stack with `key` in root v1, and one Nix host per name. */
  static async create(opts: NixE2eOptions): Promise<NixE2e> {
    const sys = await testSystems();
    const key = await cacheKey(`fleet-cache-${Date.now() % 100_000}`);
    const hosts = new Map<string, NixTestHost>();
    const stack = await E2eStack.create({
      hosts: opts.hosts,
      cacheKeys: [key.publicKey],
      activator: (h) =>
        hosts.get(h)!.activatorConfig({ rebootCommand: NixTestHost.rebootingCommand() }),
      agentProcess: (h) => hosts.get(h)!.processWrap(),
      ...(opts.agent ? { agent: opts.agent } : {}),
    });
    for (const h of opts.hosts) hosts.set(h, new NixTestHost(join(stack.dir, 'nix-hosts', h)));
    return new NixE2e(stack, sys, key, hosts);
  }

  host(name: string): NixTestHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no nix test host ${name}`);
    return h;
  }

  /** What hosts fetch from: the control plane's /nix-cache/ through nginx. */
  get cacheUrl(): string {
    return `${this.stack.url}nix-cache`;
  }

  /** The CI side's copy of the cache (inside the CI tree; `cp sync` installs it). */
  get ciCacheDir(): string {
    return join(this.stack.lab.treeDir, 'nix-cache');
  }

  /** Every host runs `path` as generation 1 (its closure from a signed file:// cache outside the tree). */
  async seed(path: string): Promise<void> {
    const seedCache = await makeCache(join(this.stack.dir, 'seed-cache'), [path], this.key);
    await Promise.all(
      [...this.hosts.values()].map(async (h) => {
        const [r] = await h.driver([
          { op: 'seed', target: path, cache: seedCache, key: this.key.publicKey },
        ]);
        if (!r?.ok || h.profileGeneration() !== 1)
          throw new Error(`seeding ${h.dir} failed: ${JSON.stringify(r)}`);
      }),
    );
  }

  /** CI: `nix copy --to file://<tree>/nix-cache?secret-key=...` (null key: unsigned). */
  async push(
    paths: string[],
    key: CacheKey | null,
    opts: { compression?: 'xz' | 'none' } = {},
  ): Promise<void> {
    mkdirSync(this.ciCacheDir, { recursive: true });
    await makeCache(this.ciCacheDir, paths, key, opts);
  }

  /** A fleet of lab channels whose hosts fetch from the nginx-served cache and probe the test service. */
  fleet(
    channels: Record<string, ChannelSpec>,
    opts: { chain?: boolean; budget?: number } = {},
  ): FleetInput {
    const fleet = labFleet(this.stack.lab, channels, opts);
    for (const p of Object.values(fleet.policies)) p.probes = [HEALTH_PROBE];
    return { ...fleet, cacheUrl: this.cacheUrl };
  }

  /**
   * CI: `nixfleet publish` with the real cache check, then `cp sync` (when the control plane runs).
   * `now`: when CI signs it (default the clock), e.g. in the past so a host whose clock is behind still
   * sees a release signed before its own time.
   */
  async publish(fleet: FleetInput, now = Date.now()): Promise<PublishResult> {
    const lab = this.stack.lab;
    const r = await publishReleaseChecked({
      treeDir: lab.treeDir,
      fleet,
      releaseKeys: [lab.releaseKey],
      trustDir: lab.trustDir,
      now,
      cacheCheck: { checkAt: `file://${this.ciCacheDir}` },
    });
    if (this.stack.nginx) await this.stack.sync();
    return r;
  }

  /**
   * CI publishing WITHOUT the cache check (`--no-cache-check`), then `cp sync`. Only for the negative
   * cases: the publisher's check would refuse the release before any host could.
   */
  async publishUnchecked(fleet: FleetInput): Promise<PublishResult> {
    const r = this.stack.lab.publish(fleet);
    if (this.stack.nginx) await this.stack.sync();
    return r;
  }

  /** `nixfleet status --json` over the control plane's tree and acks, as an operator runs it. */
  async status(opts: { now?: number; host?: string } = {}): Promise<StatusJson> {
    const argv = ['status', '--tree', this.stack.cpDir, '--root', this.stack.lab.rootFile];
    argv.push('--no-cache', '--json');
    if (opts.now !== undefined) argv.push('--now', new Date(opts.now).toISOString());
    if (opts.host) argv.push('--host', opts.host);
    const r = await runCli(...argv);
    if (r.code !== 0) throw new Error(`nixfleet status exited ${r.code}:\n${r.err}\n${r.out}`);
    return JSON.parse(r.out) as StatusJson;
  }

  async close(): Promise<void> {
    await this.stack.close();
  }
}
