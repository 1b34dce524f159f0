// A real published tree (publishRelease over a generated fleet) plus host-signed acks written where the
// ack endpoint writes them (acks/hosts/<host>.json and the append-only .ack-log/acks.log), in a rollout
// state that exercises every part of the dashboard:
//   ch-0: wave 0 soaked; wave 1 one host soaking, one activating, one pending (eligible)
//   ch-1: wave 0's host rolled back (hostile free text in its reason and probe detail) -> halted
//   ch-2: gated by ch-0 (channel edge), every host pending
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
  type Dirent,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { publishRelease } from '../../publisher/publish.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { DAY, makeRoot } from '../support/tree-builder.ts';
import { signingKeyFromSeed, type SigningKey } from '../../protocol/keys.ts';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalString } from '../../protocol/canonical.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import { channelPlanPath } from '../../protocol/layout.ts';
import { readChannelPlan } from '../../protocol/verify/documents.ts';
import { SCHEMA_VERSION, isoTime } from '../../protocol/schemas/common.ts';
import type { Ack } from '../../protocol/schemas/ack.ts';
import type { ChannelPlan } from '../../protocol/schemas/release.ts';
import type { SignedRoot } from '../../protocol/trust-root.ts';
import { formatRecord } from '../../protocol/ack-log.ts';

export const T0 = Date.parse('2030-03-01T10:00:00Z');
/** The instant the fixture's dashboard describes. */
export const NOW = T0 + 30 * 60_000;
export const MIN = 60_000;
export const HOSTILE_REASON = 'probe said <script>alert("pwned")</script> & \'bye\'';
export const HOSTILE_DETAIL = '<img src=x onerror=alert(1)>';

const key = (label: string): SigningKey =>
  signingKeyFromSeed(
    label,
    new Uint8Array(createHash('sha256').update(`site-gen/${label}`).digest()),
  );

export interface SiteFixture {
  dir: string;
  treeDir: string;
  outDir: string;
  root: SignedRoot;
  rootFile: string;
  plans: Record<string, ChannelPlan>;
  hostKeys: Record<string, SigningKey>;
  /** Host names by role in the scenario. */
  roles: {
    soaked: string;
    soaking: string;
    activating: string;
    eligible: string;
    failed: string;
    haltedPending: string;
    gated: string;
  };
  chains: Map<string, AckWriter>;
  cleanup(): void;
}

/** One host's ack chain, written as the ack endpoint would write it. */
export class AckWriter {
  private seq = 0;
  private prev: string | null = null;
  constructor(
    readonly fixtureTree: string,
    readonly host: string,
    readonly key: SigningKey,
    readonly fleet: string,
  ) {}

  write(
    fields: Partial<Ack> & { at: number; kind: Ack['kind'] },
    opts: { log?: boolean } = {},
  ): SignedAck {
    const { at, ...rest } = fields;
    const ack: Ack = {
      type: 'ack',
      schemaVersion: SCHEMA_VERSION,
      fleet: this.fleet,
      host: this.host,
      seq: this.seq + 1,
      prev: this.prev,
      time: isoTime(at),
      releaseVersion: 1,
      rolloutId: null,
      target: null,
      current: null,
      healthySince: null,
      probes: [],
      reason: null,
      ...rest,
    };
    const signed = signAck(ack, this.key);
    this.seq = ack.seq;
    this.prev = ackDigest(signed);
    mkdirSync(join(this.fixtureTree, 'acks', 'hosts'), { recursive: true });
    writeFileSync(
      join(this.fixtureTree, 'acks', 'hosts', `${this.host}.json`),
      envelopeBytes(signed),
    );
    if (opts.log ?? true) {
      mkdirSync(join(this.fixtureTree, '.ack-log'), { recursive: true });
      writeFileSync(
        join(this.fixtureTree, '.ack-log', 'acks.log'),
        formatRecord({ digest: ackDigest(signed), canonical: canonicalString(signed) }),
        { flag: 'a' },
      );
    }
    return signed;
  }
}

export function createSiteFixture(opts: { hosts?: number; ackLog?: boolean } = {}): SiteFixture {
  const dir = mkdtempSync(join(tmpdir(), 'nixfleet-site-'));
  const treeDir = join(dir, 'tree');
  const rootKey = key('root');
  const releaseKey = key('release');
  const root = makeRoot({
    fleet: 'generated',
    issuedAt: T0 - 10 * DAY,
    rootKeys: [rootKey],
    releaseKeys: [{ key: releaseKey, validFrom: T0 - 10 * DAY, validUntil: T0 + 100 * DAY }],
  });
  const rootFile = join(dir, 'root-1.json');
  writeFileSync(rootFile, envelopeBytes(root));
  const { fleet, hostKeys } = generateFleet({
    hosts: opts.hosts ?? 12,
    channels: 3,
    wavesPerChannel: 2,
    seed: 'site-gen',
    soakSeconds: 600,
  });
  fleet.channelEdges = [{ before: 'ch-0', after: 'ch-2' }];
  publishRelease({
    cacheCheck: 'skip',
    treeDir,
    fleet,
    releaseKeys: [releaseKey],
    roots: [root],
    now: T0,
  });

  const plans: Record<string, ChannelPlan> = {};
  for (const ch of ['ch-0', 'ch-1', 'ch-2'])
    plans[ch] = readChannelPlan(readFileSync(join(treeDir, channelPlanPath(1, ch))), ch).signed;
  const chains = new Map<string, AckWriter>();
  const writer = (h: string) => {
    let w = chains.get(h);
    if (!w) chains.set(h, (w = new AckWriter(treeDir, h, hostKeys[h]!, 'generated')));
    return w;
  };
  const p0 = plans['ch-0']!;
  const p1 = plans['ch-1']!;
  const p2 = plans['ch-2']!;
  const old = (h: string) => `/nix/store/${'0'.repeat(32)}-nixos-system-${h}-old`;
  const mine = (p: ChannelPlan, h: string) => ({
    rolloutId: p.rolloutId,
    target: p.hosts[h]!.target,
  });
  const log = { log: opts.ackLog ?? true };

  // Every host first says it is alive and waiting (a presence heartbeat).
  for (const p of [p0, p1, p2])
    for (const h of Object.keys(p.hosts).sort())
      writer(h).write(
        { at: T0 + MIN, kind: 'heartbeat', current: old(h), reason: 'waiting for its turn' },
        log,
      );

  const [soaked] = p0.waves[0]!.hosts;
  const [soaking, activating, eligible] = p0.waves[1]!.hosts;
  const [failed] = p1.waves[0]!.hosts;
  const [haltedPending] = p1.waves[1]!.hosts;
  const [gated] = p2.waves[0]!.hosts;
  if (!soaked || !soaking || !activating || !eligible || !failed || !haltedPending || !gated)
    throw new Error('fixture fleet too small');

  const s = writer(soaked);
  s.write({ at: T0 + 2 * MIN, kind: 'started', ...mine(p0, soaked), current: old(soaked) }, log);
  s.write(
    { at: T0 + 3 * MIN, kind: 'activated', ...mine(p0, soaked), current: p0.hosts[soaked]!.target },
    log,
  );
  s.write(
    {
      at: T0 + 4 * MIN,
      kind: 'healthy',
      ...mine(p0, soaked),
      current: p0.hosts[soaked]!.target,
      healthySince: isoTime(T0 + 4 * MIN),
    },
    log,
  );
  s.write(
    {
      at: NOW - 30_000,
      kind: 'heartbeat',
      ...mine(p0, soaked),
      current: p0.hosts[soaked]!.target,
      healthySince: isoTime(T0 + 4 * MIN),
    },
    log,
  );

  const k = writer(soaking);
  k.write({ at: NOW - 8 * MIN, kind: 'started', ...mine(p0, soaking), current: old(soaking) }, log);
  k.write(
    {
      at: NOW - 7 * MIN,
      kind: 'activated',
      ...mine(p0, soaking),
      current: p0.hosts[soaking]!.target,
    },
    log,
  );
  k.write(
    {
      at: NOW - 5 * MIN,
      kind: 'healthy',
      ...mine(p0, soaking),
      current: p0.hosts[soaking]!.target,
      healthySince: isoTime(NOW - 5 * MIN),
    },
    log,
  );
  k.write(
    {
      at: NOW - 20_000,
      kind: 'heartbeat',
      ...mine(p0, soaking),
      current: p0.hosts[soaking]!.target,
      healthySince: isoTime(NOW - 5 * MIN),
    },
    log,
  );

  writer(activating).write(
    { at: NOW - MIN, kind: 'started', ...mine(p0, activating), current: old(activating) },
    log,
  );
  writer(eligible).write(
    {
      at: NOW - 2 * MIN,
      kind: 'heartbeat',
      current: old(eligible),
      reason: 'waiting for its turn',
    },
    log,
  );

  const f = writer(failed);
  f.write({ at: T0 + 5 * MIN, kind: 'started', ...mine(p1, failed), current: old(failed) }, log);
  f.write(
    { at: T0 + 6 * MIN, kind: 'activated', ...mine(p1, failed), current: p1.hosts[failed]!.target },
    log,
  );
  f.write(
    {
      at: T0 + 11 * MIN,
      kind: 'rolled-back',
      ...mine(p1, failed),
      current: old(failed),
      reason: HOSTILE_REASON,
      probes: [{ name: 'http-ok', ok: false, detail: HOSTILE_DETAIL }],
    },
    log,
  );

  for (const p of [p1, p2]) {
    for (const h of Object.keys(p.hosts).sort()) {
      if (h === failed) continue;
      writer(h).write(
        { at: NOW - 3 * MIN, kind: 'heartbeat', current: old(h), reason: 'waiting for its turn' },
        log,
      );
    }
  }

  return {
    dir,
    treeDir,
    outDir: join(dir, 'site'),
    root,
    rootFile,
    plans,
    hostKeys,
    roles: { soaked, soaking, activating, eligible, failed, haltedPending, gated },
    chains,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Reads every file of a built site (relative path -> content). */
export function readSite(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    for (const e of readdirSyncSorted(join(dir, rel))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else out.set(r, readFileSync(join(dir, r), 'utf8'));
    }
  };
  walk('');
  return out;
}

function readdirSyncSorted(dir: string): Dirent[] {
  return readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1));
}

/** The detail page (site-relative path) holding `host`'s section, found by its anchor. */
export function hostPagePath(site: ReadonlyMap<string, string>, host: string): string {
  const marker = `<section class="host" id="h-${host}">`;
  const hits = [...site].filter(([k, v]) => k.startsWith('hosts/') && v.includes(marker));
  if (hits.length !== 1) throw new Error(`host ${host}: ${hits.length} detail pages hold it`);
  return hits[0]![0];
}

/** `host`'s section of the site (a directory or a readSite map): its detail, without the page around it. */
export function hostSection(site: string | ReadonlyMap<string, string>, host: string): string {
  const pages = typeof site === 'string' ? readSite(site) : site;
  const text = pages.get(hostPagePath(pages, host))!;
  const start = text.indexOf(`<section class="host" id="h-${host}">`);
  return text.slice(start, text.indexOf('</section>', start) + '</section>'.length);
}
