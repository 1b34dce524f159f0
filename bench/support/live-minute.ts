// A live fleet for the operator bench: the fixture advanced by one minute of its own schedule
// (bench/support/operator-schedule.ts), as the ack endpoint would have written that minute, and put
// back as it was afterwards.
//
// The minute: every host whose schedule at `now` + 60 s has more acks than at `now` posts them (in the
// generated fixture: the hosts of the last wave still in their soak, one heartbeat each), signed with
// the host's key as the generator signs them (hostKeyFor(OPERATOR_FLEET_SEED, host): the fixture keeps
// no keys, the generator derives them from its seed) and chained to the host's latest ack on disk.
// Applying it does what the endpoint does with accepted acks: the records appended to the log, then
// each host's `acks/hosts/<h>.json` and its wave's bundle replaced by a rename, as the endpoint's
// AckPublisher flushes them.
//
// Put back, kill -9 included: before anything changes, the files about to be replaced are hard-linked
// into DIR/live-saved/ and DIR/live-minute.json records them with the log's length (written
// atomically). restoreLiveMinute renames each saved file back, truncates the log's current segment to that length and
// removes the record last, so a run killed at any point is undone by the next one (liveMinute starts
// with it). The restored files are the original inodes, but a rename moves their change time: a view's
// cache sees them as changed (they are the very files the minute replaces, so the next minute's look
// reads them anyway).
import {
  appendFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  truncateSync,
  statSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { ackDigest } from '../../protocol/acks.ts';
import { ackLogDir, ackLogPath } from '../../protocol/control-plane-dir.ts';
import { canonicalString, sha256Digest } from '../../protocol/canonical.ts';
import { formatRecord, listAckLogSegments } from '../../protocol/ack-log.ts';
import { ackBundlePath, latestAckPath, readAck, writeFileAtomic } from '../../protocol/index.ts';
import type { SignedRoot } from '../../protocol/index.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import { bundleJson } from '../../control-plane/ack-publisher.ts';
import { loadVerifiedReleaseView, type ReleaseView } from '../../control-plane/release-view.ts';
import { MIN, hostSchedule, scheduledAcks, waveSlots } from './operator-schedule.ts';

const RECORD = 'live-minute.json';
const SAVED = 'live-saved';

export interface WaveRef {
  channel: string;
  wave: number;
}

export interface LiveMinute {
  /** The instant a minute after the fixture's (ISO): the views' `--now` once it is applied. */
  now: string;
  /** Hosts that post in the minute, and their acks (canonical envelopes, in order). */
  acks: Map<string, string[]>;
  /** The waves whose bundles the minute rewrites. */
  bundles: WaveRef[];
  /** Writes the minute into the fixture's tree (the fixture must be as generated). */
  apply(): void;
  /**
   * The minute as `n` writes, to be done in order over a stretch of time (a live fleet's rate): the
   * first also saves what the minute replaces, each writes its share of the hosts as apply does (their
   * log records, then their latest-ack files), the last also the bundles. Put back by restore.
   */
  applyInSteps(n: number): (() => void)[];
  /** Puts the fixture back as it was before apply (nothing to do when it is). */
  restore(): void;
}

/**
 * The minute after `now` of the fixture in `dir` (tree at `tree`), computed from the release the
 * fixture's tree holds and the latest ack each posting host has on disk. A fixture left advanced by
 * a killed run is put back first.
 */
export async function liveMinute(
  dir: string,
  tree: string,
  root: SignedRoot,
  now: string,
): Promise<LiveMinute> {
  restoreLiveMinute(dir, tree);
  const from = Date.parse(now);
  const to = from + MIN;
  const { view } = await loadVerifiedReleaseView(tree, root, from);
  const acks = minuteAcks(tree, view, from, to);
  const waves = new Map<string, WaveRef>();
  for (const host of acks.keys()) {
    const { channel, wave } = view.hosts.get(host)!;
    waves.set(ackBundlePath(channel, wave), { channel, wave });
  }
  const bundles = [...waves.values()];
  return {
    now: isoTime(to),
    acks,
    bundles,
    apply: () => {
      for (const step of minuteSteps(dir, tree, view, to, acks, bundles, 1)) step();
    },
    applyInSteps: (n) => minuteSteps(dir, tree, view, to, acks, bundles, n),
    restore: () => restoreLiveMinute(dir, tree),
  };
}

/** The acks each host's schedule adds between `from` and `to`, chained to its latest ack on disk. */
function minuteAcks(
  tree: string,
  view: ReleaseView,
  from: number,
  to: number,
): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const slot of waveSlots(view.plans)) {
    slot.hosts.forEach((host, i) => {
      const before = hostSchedule(slot, i, from);
      const after = hostSchedule(slot, i, to);
      if (before === null || after === null || after.steps.length <= before.steps.length) return;
      const file = join(tree, latestAckPath(host));
      const latest = readAck(readFileSync(file), file);
      const last = before.steps.at(-1)!;
      if (latest.signed.seq !== before.steps.length || latest.signed.time !== isoTime(last.at))
        throw new Error(
          `${file}: seq ${latest.signed.seq} at ${latest.signed.time}, but the schedule has seq ` +
            `${before.steps.length} at ${isoTime(last.at)}: the fixture is not as generated`,
        );
      const next = scheduledAcks(slot, host, after, before.steps.length, ackDigest(latest));
      out.set(host, next.map(canonicalString));
    });
  }
  return out;
}

/**
 * The minute as `n` steps: the first saves what the minute replaces (see the top), each writes its share
 * of the hosts (log records, then files), the last the bundles.
 */
function minuteSteps(
  dir: string,
  tree: string,
  view: ReleaseView,
  to: number,
  acks: Map<string, string[]>,
  bundles: readonly WaveRef[],
  n: number,
): (() => void)[] {
  const hosts = [...acks.keys()];
  const share = (i: number) =>
    hosts.slice(Math.floor((i * hosts.length) / n), Math.floor(((i + 1) * hosts.length) / n));
  return Array.from({ length: n }, (_, i) => () => {
    if (i === 0) saveReplaced(dir, tree, acks, bundles);
    writeHosts(tree, acks, share(i));
    if (i === n - 1) writeBundles(tree, view, to, acks, bundles);
  });
}

/** Records and hard-links what the minute replaces, so that restoreLiveMinute can put it back. */
function saveReplaced(
  dir: string,
  tree: string,
  acks: Map<string, string[]>,
  bundles: readonly WaveRef[],
): void {
  // A second minute over the first would record the advanced tree as the one to put back.
  if (existsSync(join(dir, RECORD))) throw new Error(`${dir}: a minute is applied already`);
  const log = currentSegment(tree);
  const replaced = [
    ...[...acks.keys()].map(latestAckPath),
    ...bundles.map((b) => ackBundlePath(b.channel, b.wave)),
  ];
  writeFileAtomic(
    join(dir, RECORD),
    JSON.stringify({ log: relative(tree, log), logBytes: statSync(log).size, replaced }),
  );
  for (const rel of replaced) {
    const saved = join(dir, SAVED, rel);
    mkdirSync(dirname(saved), { recursive: true });
    rmSync(saved, { force: true });
    linkSync(join(tree, rel), saved);
  }
}

/** The log's current segment (the last one), where the endpoint appends. */
const currentSegment = (tree: string): string => listAckLogSegments(ackLogDir(tree)).at(-1)!.file;

/** Replaces a file as the endpoint's AckPublisher does: by a rename, its mtime moved forward. */
const replace = (tree: string, rel: string, text: string): void =>
  writeFileAtomic(join(tree, rel), text, { advanceMtime: true, durable: false });

/** `hosts`' acks of the minute: appended to the log, then each host's latest-ack file replaced. */
function writeHosts(tree: string, acks: Map<string, string[]>, hosts: readonly string[]): void {
  const records: Buffer[] = [];
  for (const host of hosts)
    for (const canonical of acks.get(host)!)
      records.push(formatRecord({ digest: sha256Digest(canonical), canonical }));
  appendFileSync(currentSegment(tree), Buffer.concat(records));
  for (const host of hosts) replace(tree, latestAckPath(host), acks.get(host)!.at(-1)!);
}

/** The bundles of the minute's waves (the other members' acks as their files hold them). */
function writeBundles(
  tree: string,
  view: ReleaseView,
  to: number,
  acks: Map<string, string[]>,
  bundles: readonly WaveRef[],
): void {
  const latest = (host: string): string | undefined => {
    const posted = acks.get(host);
    if (posted !== undefined) return posted.at(-1);
    const file = join(tree, latestAckPath(host));
    return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
  };
  for (const { channel, wave } of bundles) {
    const members = view.waves.get(channel)![wave]!;
    replace(
      tree,
      ackBundlePath(channel, wave),
      bundleJson(view.fleet, channel, wave, isoTime(to), members, latest),
    );
  }
}

/** Undoes an applied minute (see the top); does nothing when none is recorded in `dir`. */
export function restoreLiveMinute(dir: string, tree: string): void {
  const record = join(dir, RECORD);
  if (!existsSync(record)) return;
  const { log, logBytes, replaced } = JSON.parse(readFileSync(record, 'utf8')) as {
    /** The segment the minute appended to (a record from before segments: acks.log). */
    log?: string;
    logBytes: number;
    replaced: string[];
  };
  for (const rel of replaced) {
    const saved = join(dir, SAVED, rel);
    if (existsSync(saved)) renameSync(saved, join(tree, rel));
    // A rename onto a link of the same file does nothing and leaves the link.
    rmSync(saved, { force: true });
  }
  truncateSync(log === undefined ? ackLogPath(tree) : join(tree, log), logBytes);
  // A write the kill interrupted leaves its temporary file (writeFileAtomic's `.<name>.*.tmp`).
  for (const d of new Set(replaced.map((rel) => dirname(join(tree, rel)))))
    for (const f of readdirSync(d))
      if (f.startsWith('.') && f.endsWith('.tmp')) rmSync(join(d, f), { force: true });
  rmSync(join(dir, SAVED), { recursive: true, force: true });
  rmSync(record);
}
