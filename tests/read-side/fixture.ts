// A real published tree (publishRelease over a generated fleet) plus host-signed ack chains written the
// way the ack endpoint writes them: each host's latest ack under acks/hosts/, and every ack in acks.log.
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ackDigest, signAck, type SignedAck } from '../../protocol/acks.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { b64, signingKeyFromSeed, type SigningKey } from '../../protocol/keys.ts';
import type { AckKind } from '../../protocol/schemas/ack.ts';
import type { ControlEvidence } from '../../protocol/schemas/compliance.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { ChannelPlan } from '../../protocol/schemas/release.ts';
import { publishRelease } from '../../publisher/publish.ts';
import { ackSegmentName, formatRecord, listAckLogSegments } from '../../protocol/ack-log.ts';
import { DAY, makeRoot } from '../support/tree-builder.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { runCli } from '../support/cli.ts';
import * as assert from 'uvu/assert';
import { claimedHost } from '../../read-side/acks.ts';
import type { TraceReport } from '../../read-side/trace.ts';

export const NOW = Date.parse('2030-03-01T12:00:00Z');
export const MIN = 60_000;

const key = (label: string) =>
  signingKeyFromSeed(
    label,
    new Uint8Array(createHash('sha256').update(`operator-tests/${label}`).digest()),
  );
const rootKey = key('root');
const releaseKey = key('release');
/** The fixture's release key (tests that amend signed documents re-sign with it). */
export const RELEASE_KEY = releaseKey;
export const ROOT = makeRoot({
  fleet: 'generated',
  issuedAt: NOW - 10 * DAY,
  rootKeys: [rootKey],
  releaseKeys: [{ key: releaseKey, validFrom: NOW - 10 * DAY, validUntil: NOW + 100 * DAY }],
});

const made: string[] = [];
export function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `nixfleet-operator-${label}-`));
  made.push(d);
  return d;
}
export function cleanupTempDirs(): void {
  for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
}

export interface Fixture {
  dir: string;
  tree: string;
  rootFile: string;
  logFile: string;
  plans: Record<string, ChannelPlan>;
  hostKeys: Record<string, SigningKey>;
  /** Hosts of a channel's wave, in plan order. */
  wave(channel: string, index: number): string[];
}

/** The fixture's fleet: 8 hosts, channels ch-0 -> ch-1 (channel edge), two waves each, 300 s soak. */
export function fixtureFleet(): ReturnType<typeof generateFleet> {
  return generateFleet({
    hosts: 8,
    channels: 2,
    wavesPerChannel: 2,
    seed: 'operator',
    chainChannels: true,
    soakSeconds: 300,
  });
}

/** fixtureFleet, published at NOW - 50 min (timestamps live 1 h). */
export function publishedFixture(label = 'fx'): Fixture {
  const dir = tempDir(label);
  const tree = join(dir, 'tree');
  const { fleet, hostKeys } = fixtureFleet();
  const result = publishRelease({
    cacheCheck: 'skip',
    treeDir: tree,
    fleet,
    releaseKeys: [releaseKey],
    roots: [ROOT],
    now: NOW - 50 * MIN,
  });
  const rootFile = join(dir, 'pinned-root.json');
  writeFileSync(rootFile, canonicalString(ROOT));
  const plans: Record<string, ChannelPlan> = {};
  for (const ch of Object.keys(result.rolloutIds)) {
    plans[ch] = (
      JSON.parse(
        readFileSync(join(tree, `releases/${result.version}/channels/${ch}.json`), 'utf8'),
      ) as { signed: ChannelPlan }
    ).signed;
  }
  return {
    dir,
    tree,
    rootFile,
    logFile: join(dir, 'acks.log'),
    plans,
    hostKeys,
    wave: (channel, index) => plans[channel]!.waves[index]!.hosts,
  };
}

export interface AckStep {
  kind: AckKind;
  /** ms */
  at: number;
  healthySince?: number;
  /** Default: the plan's target (the host already switched for activated/healthy/heartbeat). */
  current?: string | null;
  reason?: string;
  /** Runtime compliance results the host signs into this ack. */
  evidence?: ControlEvidence[];
}

/** Each fixture host's chain so far (its latest ack's seq and digest), as its agent remembers it. */
const chains = new WeakMap<Fixture, Map<string, { seq: number; prev: string }>>();

/**
 * The host's next postAcks signs its chain from seq 1 again, as an agent whose state was lost: the same
 * steps give the same bytes (records repeated in the log).
 */
export function restartChain(fx: Fixture, host: string): void {
  chains.get(fx)?.delete(host);
}

/**
 * Signs the next acks of a host's chain (seq after its latest, prev = digest of the previous envelope;
 * seq 1 and prev null for its first) for its plan's rollout, as its agent does, and writes them the
 * way the endpoint does: appended to the log, the last one as acks/hosts/<host>.json. With `signer`
 * (another key) the acks claim the chain's next numbers but do not become part of it.
 */
export function postAcks(
  fx: Fixture,
  host: string,
  steps: AckStep[],
  signer?: SigningKey,
): SignedAck[] {
  const plan = Object.values(fx.plans).find((p) => p.hosts[host] !== undefined)!;
  const entry = plan.hosts[host]!;
  const k = signer ?? fx.hostKeys[host]!;
  const out: SignedAck[] = [];
  const chain = chains.get(fx) ?? new Map<string, { seq: number; prev: string }>();
  chains.set(fx, chain);
  const latest = chain.get(host);
  let prev: string | null = latest?.prev ?? null;
  const first = (latest?.seq ?? 0) + 1;
  steps.forEach((s, i) => {
    const switched =
      s.kind !== 'started' &&
      s.kind !== 'failed' &&
      s.kind !== 'rolled-back' &&
      s.kind !== 'deferred' &&
      s.kind !== 'blocked';
    const ack = signAck(
      {
        type: 'ack',
        schemaVersion: 1,
        fleet: 'generated',
        host,
        seq: first + i,
        prev,
        time: isoTime(s.at),
        kind: s.kind,
        releaseVersion: plan.releaseVersion,
        rolloutId: plan.rolloutId,
        target: entry.target,
        current: s.current !== undefined ? s.current : switched ? entry.target : null,
        healthySince: s.healthySince !== undefined ? isoTime(s.healthySince) : null,
        probes: [],
        reason: s.reason ?? null,
        ...(s.evidence ? { evidence: s.evidence } : {}),
      },
      k,
    );
    prev = ackDigest(ack);
    // Another key's acks (a forgery, a host posting as another) are not the host's own chain.
    if (signer === undefined) chain.set(host, { seq: first + i, prev });
    out.push(ack);
  });
  // Into the log's current segment (its last), as the endpoint appends.
  const log = listAckLogSegments(fx.logFile).at(-1)?.file ?? fx.logFile;
  for (const a of out) {
    const canonical = canonicalString(a);
    appendFileSync(log, formatRecord({ digest: sha256Digest(canonical), canonical }));
  }
  const last = out[out.length - 1];
  if (last) {
    mkdirSync(join(fx.tree, 'acks', 'hosts'), { recursive: true });
    writeFileSync(join(fx.tree, 'acks', 'hosts', `${host}.json`), canonicalString(last));
  }
  return out;
}

/**
 * A full, successful lifecycle for a host that started at `t0`: started, activated (+30 s), healthy
 * (+1 min), then a heartbeat every minute up to `until` (default: one at +8 min, past a 300 s soak).
 */
export function lifecycle(t0: number, until = t0 + 8 * MIN): AckStep[] {
  const healthyAt = t0 + MIN;
  const steps: AckStep[] = [
    { kind: 'started', at: t0 },
    { kind: 'activated', at: t0 + 30_000 },
    { kind: 'healthy', at: healthyAt, healthySince: healthyAt },
  ];
  for (let t = healthyAt + MIN; t <= until; t += MIN)
    steps.push({ kind: 'heartbeat', at: t, healthySince: healthyAt });
  return steps;
}

export const OLD_SYSTEM = '/nix/store/0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a-nixos-system-old';

/** Presence heartbeats of a host still on its old system (a pending host that keeps polling), the last at `until`. */
export function waiting(from: number, until: number, every = 5 * MIN): AckStep[] {
  const steps: AckStep[] = [];
  for (let t = from; t < until; t += every)
    steps.push({ kind: 'heartbeat', at: t, current: OLD_SYSTEM });
  steps.push({ kind: 'heartbeat', at: until, current: OLD_SYSTEM });
  return steps;
}

/** Minutes before NOW at which each group of chainedRollout's hosts stops acking. */
export interface RolloutEnds {
  /** ch-0 wave 0 [a]. */
  first: number;
  /** ch-0 wave 1. */
  ch0: number;
  /** ch-1 wave 0. */
  ch1: number;
  /** ch-1 wave 1, still polling (held by the earlier waves). */
  polling: number;
}

/**
 * A chained rollout over publishedFixture: ch-0 (gates ch-1) completes, wave 0 [a] then wave 1; ch-1
 * wave 0 then starts and soaks; ch-1 wave 1 polls. Each host's latest ack is a heartbeat.
 */
export function chainedRollout(label: string, ends: RolloutEnds): Fixture {
  const fx = publishedFixture(label);
  const [a] = fx.wave('ch-0', 0);
  postAcks(fx, a!, lifecycle(NOW - 34 * MIN, NOW - ends.first * MIN));
  for (const h of fx.wave('ch-0', 1))
    postAcks(fx, h, [
      ...waiting(NOW - 34 * MIN, NOW - 27 * MIN),
      ...lifecycle(NOW - 26 * MIN, NOW - ends.ch0 * MIN),
    ]);
  for (const h of fx.wave('ch-1', 0))
    postAcks(fx, h, [
      ...waiting(NOW - 34 * MIN, NOW - 18 * MIN),
      ...lifecycle(NOW - 17 * MIN, NOW - ends.ch1 * MIN),
    ]);
  for (const h of fx.wave('ch-1', 1))
    postAcks(fx, h, waiting(NOW - 34 * MIN, NOW - ends.polling * MIN));
  return fx;
}

/** Runs `nixfleet ARGV` in-process (fast), capturing stdout and stderr. */
export const run = runCli;

/** `nixfleet trace --host HOST --json` over the fixture's log at NOW; `cacheDir` null: `--no-cache`. */
export async function traceHost(
  fx: Fixture,
  host: string,
  cacheDir: string | null,
): Promise<TraceReport> {
  const r = await run(
    'trace',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--acks-log',
    fx.logFile,
    '--now',
    isoTime(NOW),
    '--host',
    host,
    '--json',
    ...(cacheDir === null ? ['--no-cache'] : ['--cache-dir', cacheDir]),
  );
  assert.is(r.code, 0, r.err);
  return JSON.parse(r.out) as TraceReport;
}

/**
 * Rewrites the first heartbeat record of `host` in the log, its signed time one second later: the
 * frame digest matches the new bytes, the signature does not, and the log keeps its length (so only
 * the prefix digest can tell).
 */
export function tamperLogRecord(fx: Fixture, host: string): number {
  const before = readFileSync(fx.logFile);
  const lines = before.toString('utf8').split('\n');
  const i = lines.findIndex(
    (l) =>
      l.length > 72 &&
      claimedHost(Buffer.from(l.slice(72))) === host &&
      l.includes('"kind":"heartbeat"'),
  );
  assert.ok(i >= 0, `a heartbeat record of ${host}`);
  const forged = lines[i]!.slice(72).replace(/("time":"[0-9T:-]+:)00Z"/, '$101Z"');
  assert.is.not(forged, lines[i]!.slice(72));
  lines[i] = formatRecord({ digest: sha256Digest(forged), canonical: forged })
    .toString('utf8')
    .trimEnd();
  writeFileSync(fx.logFile, lines.join('\n'));
  assert.is(readFileSync(fx.logFile).length, before.length);
  return i + 1;
}

/** An ack's (or a bundle's first entry's) text with the first character of its signature changed. */
export function withFlippedSignature(text: string): string {
  return text.replace(/"sig":"(.)/, (_m, c: string) => `"sig":"${c === 'A' ? 'B' : 'A'}`);
}

/**
 * The first signature character of a file of acks (a latest-ack file, a wave bundle) changed in place:
 * the same size and inode, the modification time put back (give the file a whole-second one first:
 * utimes cannot restore nanoseconds), so only its change time, which no program can set, tells the
 * rewrite.
 */
export function rewriteSignatureInPlace(file: string): void {
  const before = statSync(file);
  writeFileSync(file, withFlippedSignature(readFileSync(file, 'utf8')));
  utimesSync(file, before.atime, before.mtime);
  const after = statSync(file);
  assert.is(after.ino, before.ino);
  assert.is(after.size, before.size);
  assert.is(after.mtimeMs, before.mtimeMs);
}

/** A new release (2) of the fixture's fleet with `host`'s key replaced. */
export function rekeyingRelease(fx: Fixture, host: string): void {
  const { fleet } = fixtureFleet();
  const hosts = (fleet as { hosts: Record<string, { hostKey: string }> }).hosts;
  const seed = new Uint8Array(createHash('sha256').update(`a new key of ${host}`).digest());
  hosts[host]!.hostKey = b64(signingKeyFromSeed(host, seed).publicKey);
  publishRelease({
    cacheCheck: 'skip',
    treeDir: fx.tree,
    fleet,
    releaseKeys: [RELEASE_KEY],
    roots: [ROOT],
    now: NOW - 10 * MIN,
  });
}

/**
 * The fixture's log (one file) cut into segments in `dir` (default the log's own directory, whose
 * segment 0 is the log itself), as the endpoint rolls them: segment k + 1 starts at record `starts[k]`.
 * Returns the segment files, oldest first.
 */
export function cutLogInto(
  fx: Fixture,
  starts: readonly number[],
  dir = dirname(fx.logFile),
): string[] {
  const lines = readFileSync(fx.logFile, 'utf8').split('\n').slice(0, -1);
  const bounds = [0, ...starts, lines.length];
  return bounds.slice(0, -1).map((from, k) => {
    const file = join(dir, ackSegmentName(k));
    writeFileSync(
      file,
      lines
        .slice(from, bounds[k + 1])
        .map((l) => `${l}\n`)
        .join(''),
    );
    return file;
  });
}

/** How many records the fixture's log (one file) holds. */
export function logRecordCount(fx: Fixture): number {
  return readFileSync(fx.logFile, 'utf8').split('\n').length - 1;
}
