// Evidence bundles for auditors (issue 13): the trust root chain, the signed release documents, every
// relevant host-signed ack (with its compliance evidence) and a manifest of digests, in one JSON file
// that verifies offline against a pinned root. Export and verify run the one release walk
// (verifyRelease): export over the tree, keeping the bytes of every file the walk verified, verify
// over the bundle, which must then hold exactly those files. Acks pass the one ack check (verifyAck,
// against the host key the release's manifest names) and each host's hash chain must be unbroken.
// Pure except the injected fetch; the disk and the ack log are read by read-side/evidence.ts.
import { ackDigest, readAck, verifyAck, type AckTrust, type SignedAck } from './acks.ts';
import { auditAckChains } from './ack-log.ts';
import { canonicalString, sha256Digest } from './canonical.ts';
import {
  AckChainBroken,
  Malformed,
  MixAndMatch,
  TooLarge,
  WrongFleet,
  WrongHost,
} from './errors.ts';
import { rootPath, TIMESTAMP_PATH } from './layout.ts';
import {
  EVIDENCE_BUNDLE_TYPE,
  EvidenceBundle,
  isoTime,
  parseIsoTime,
  parseWith,
  type Ack,
  type ComplianceMode,
  type HostManifest,
} from './schemas/index.ts';
import { parseStrictJson } from './strict-json.ts';
import { readRoot, verifyNextRoot, verifyPinnedRoot, type SignedRoot } from './trust-root.ts';
import { readTimestamp, verifyRelease, type Fetch, type VerifiedRelease } from './verify/index.ts';

/**
 * A bundle holds a fleet's history: 10,000 hosts with weeks of acks run to hundreds of megabytes. The
 * cap stays under V8's longest string (~512 MiB), which the bundle's text must fit in to be parsed.
 */
export const EVIDENCE_BUNDLE_MAX_BYTES = 500 * 1024 * 1024;

const decoder = new TextDecoder('utf-8', { fatal: true });

// ---------------------------------------------------------------------------------------------------
// The walk both sides run

/** What an export covers: one channel (its hosts, their plans and the plans they depend on) or the fleet. */
export interface EvidenceScope {
  channel: string | null;
  /** ms; acks from this instant on (plus one anchor ack before it per host), or null: every ack. */
  since: number | null;
}

/** A Fetch that reads each path once and serves the same bytes again: several walks see one snapshot. */
export function snapshotFetch(fetch: Fetch): Fetch {
  const held = new Map<string, Uint8Array | undefined>();
  return async (path, maxBytes) => {
    if (!held.has(path)) held.set(path, await fetch(path, maxBytes));
    const bytes = held.get(path);
    // A cached file is capped again for this read (a later reader may ask with a smaller limit).
    return bytes !== undefined && bytes.byteLength > maxBytes ? undefined : bytes;
  };
}

/** A Fetch that keeps the bytes of every file found: after a walk, exactly the files it verified. */
function recordingFetch(fetch: Fetch): { fetch: Fetch; read: Map<string, Uint8Array> } {
  const read = new Map<string, Uint8Array>();
  return {
    read,
    fetch: async (path, maxBytes) => {
      const bytes = await fetch(path, maxBytes);
      if (bytes !== undefined) read.set(path, bytes);
      return bytes;
    },
  };
}

/** An export asked for a channel the verified release does not have (a usage error, not a refusal). */
export class UnknownScopeChannel extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownScopeChannel';
  }
}

export interface EvidenceWalk {
  release: VerifiedRelease;
  /** Tree path -> bytes of every file verified, the walked root chain included (the pinned root too). */
  documents: Map<string, Uint8Array>;
}

/**
 * The release walk of an export: the whole fleet (every manifest, every plan), or one channel's hosts
 * with the plans they need. For a channel the hosts come from the verified index, so the index is
 * walked first and the hosts' walk, over the same snapshot, is the one recorded: the very walk
 * verifyEvidenceBundle repeats over the bundle.
 */
export async function walkForEvidence(
  fetch: Fetch,
  pinned: SignedRoot,
  scope: Pick<EvidenceScope, 'channel'>,
  opts: { now: number; clockSkewSeconds?: number },
): Promise<EvidenceWalk> {
  const snapshot = snapshotFetch(fetch);
  const base = {
    trusted: pinned,
    now: opts.now,
    ...(opts.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: opts.clockSkewSeconds }),
  };
  let manifests: 'all' | string[] = 'all';
  if (scope.channel !== null) {
    const { index } = await verifyRelease({
      ...base,
      fetch: snapshot,
      manifests: [],
      plans: 'needed',
    });
    if (!index.channels[scope.channel])
      throw new UnknownScopeChannel(
        `release ${index.version} has no channel "${scope.channel}" (channels: ${Object.keys(index.channels).sort().join(', ')})`,
      );
    manifests = hostsOfChannel(index.hosts, scope.channel);
  }
  const recorder = recordingFetch(snapshot);
  const release = await verifyRelease({
    ...base,
    fetch: recorder.fetch,
    manifests,
    plans: scope.channel === null ? 'all' : 'needed',
  });
  const documents = new Map<string, Uint8Array>();
  // The pinned root is the walk's start, never fetched; the bundle carries the whole chain.
  documents.set(rootPath(pinned.signed.version), Buffer.from(canonicalString(pinned), 'utf8'));
  for (const [path, bytes] of recorder.read) documents.set(path, bytes);
  return { release, documents };
}

function hostsOfChannel(hosts: VerifiedRelease['index']['hosts'], channel: string): string[] {
  return Object.keys(hosts).filter((h) => hosts[h]!.channel === channel);
}

// ---------------------------------------------------------------------------------------------------
// Acks: which ones, and the chain rule

/** A host's acks from `since`: the last one before it is kept as the anchor the rest chain from. */
export function acksSince(acks: readonly SignedAck[], since: number | null): SignedAck[] {
  if (since === null) return [...acks];
  let from = 0;
  acks.forEach((a, i) => {
    if (parseIsoTime(a.signed.time) < since) from = i;
  });
  return acks.slice(from);
}

/**
 * One host's acks, oldest first, must be one unbroken hash chain: no fork, every seq present, each
 * `prev` the digest of the ack before. It starts at seq 1, or (with `since`) at an anchor signed before
 * `since`, so no ack of the period can be dropped from its head either. Throws AckChainBroken naming
 * `source` and the host.
 */
export function checkAckChain(
  host: string,
  acks: readonly SignedAck[],
  since: number | null,
  source: string,
): void {
  if (acks.length === 0) return;
  const links = acks.map((a) => ({
    host,
    seq: a.signed.seq,
    prev: a.signed.prev,
    digest: ackDigest(a),
  }));
  const audit = auditAckChains(links)[0]!;
  const first = acks.reduce((m, a) => (a.signed.seq < m.signed.seq ? a : m)).signed;
  // auditAckChains counts from seq 1: a chain held from seq k > 1 opens with the gap 1..k-1.
  const head = first.seq > 1 ? audit.gaps[0] : undefined;
  const anchored = since !== null && parseIsoTime(first.time) < since;
  if (head && !anchored)
    throw new AckChainBroken(
      source,
      `host ${host}: acks start at seq ${first.seq}, seq ${head.from}-${head.to} missing (a chain starts at seq 1, or with --since at an ack signed before it)`,
    );
  for (const g of head ? audit.gaps.slice(1) : audit.gaps)
    throw new AckChainBroken(
      source,
      `host ${host}: ${g.from === g.to ? `seq ${g.from} is` : `seq ${g.from}-${g.to} are`} missing between seq ${g.from - 1} and ${g.to + 1}`,
    );
  for (const f of audit.forks)
    throw new AckChainBroken(
      source,
      `host ${host}: two different acks carry seq ${f.seq} (${f.digests.join(', ')})`,
    );
  for (const b of audit.broken)
    throw new AckChainBroken(source, `host ${host}: seq ${b.seq}: ${b.reason}`);
}

// ---------------------------------------------------------------------------------------------------
// Export: the bundle from a walk and the acks

export interface AssembleEvidenceOptions {
  walk: EvidenceWalk;
  scope: EvidenceScope;
  /** Host -> its verified acks (oldest first, chain checked). */
  acks: ReadonlyMap<string, readonly SignedAck[]>;
  exportedAt: number;
}

const documentKey = (path: string) => `documents/${path}`;
const ackKey = (host: string, seq: number) => `acks/${host}/${seq}`;

export function assembleEvidenceBundle(o: AssembleEvidenceOptions): EvidenceBundle {
  const documents: Record<string, string> = {};
  const digests: Record<string, string> = {};
  for (const [path, bytes] of [...o.walk.documents].sort(([a], [b]) => (a < b ? -1 : 1))) {
    // Verified files passed strict intake (valid UTF-8), so their text is their bytes exactly.
    documents[path] = decoder.decode(bytes);
    digests[documentKey(path)] = sha256Digest(bytes);
  }
  const acks: Record<string, string[]> = {};
  for (const host of [...o.acks.keys()].sort()) {
    acks[host] = o.acks.get(host)!.map((a) => {
      digests[ackKey(host, a.signed.seq)] = ackDigest(a);
      return canonicalString(a);
    });
  }
  return {
    type: EVIDENCE_BUNDLE_TYPE,
    schemaVersion: 1,
    fleet: o.walk.release.root.signed.fleet,
    exportedAt: isoTime(o.exportedAt),
    scope: {
      channel: o.scope.channel,
      since: o.scope.since === null ? null : isoTime(o.scope.since),
    },
    documents,
    acks,
    digests,
  };
}

// ---------------------------------------------------------------------------------------------------
// Verify

export interface EvidenceControl {
  framework: string;
  control: string;
  /** static: CI's result, signed in the release; runtime: the host's latest signed result. */
  kind: 'static' | 'runtime';
  status: 'ok' | 'failing' | 'no-evidence';
  /** The static control's evidence, or the runtime output's excerpt. */
  evidence: string;
  /** Runtime only, from the ack that carried the result. */
  exitCode?: number | null;
  outputDigest?: string;
  time?: string;
  ackSeq?: number;
  releaseVersion?: number;
}

export interface EvidenceHost {
  host: string;
  channel: string;
  /** The revocations name the host or its target (reported, as `nixfleet verify` does). */
  revoked: string | null;
  /** null: the host's channel names no compliance framework. */
  mode: ComplianceMode | null;
  frameworks: string[];
  acks: { count: number; firstSeq: number; lastSeq: number } | null;
  controls: EvidenceControl[];
}

export interface EvidenceReport {
  ok: true;
  file: string;
  fleet: string;
  exportedAt: string;
  /** The instant the release was verified as of (the bundle's signed timestamp's issuedAt, or --now). */
  verifiedAsOf: string;
  scope: EvidenceBundle['scope'];
  root: { version: number; chain: number[] };
  release: { version: number; issuedAt: string; timestampIssuedAt: string };
  documents: number;
  acks: number;
  hosts: EvidenceHost[];
}

export interface VerifyEvidenceOptions {
  /** Verify the release as of this instant; default: the bundle's timestamp's issuedAt (see below). */
  now?: number;
  clockSkewSeconds?: number;
}

/** Strict intake of a bundle: size cap, strict JSON, schema (TooLarge / Malformed naming `file`). */
export function readEvidenceBundle(bytes: Uint8Array | string, file: string): EvidenceBundle {
  return parseWith(
    EvidenceBundle,
    parseStrictJson(bytes, { file, maxBytes: EVIDENCE_BUNDLE_MAX_BYTES }),
    file,
  );
}

/**
 * Verifies a bundle offline against the auditor's pinned root, in this order: intake; the fleet; the
 * digest manifest (every entry's bytes, nothing missing or extra); the roots below the pinned one chain
 * to it; the release walk over the bundle (root chain, every signature, binding and fleet); the scope's
 * every host present; no document the walk did not verify; every ack verified against the host key its
 * manifest names and each host's chain unbroken. Throws the first refusal (a VerificationError naming
 * the bundle entry, host or ack); returns the per-host, per-control report.
 *
 * The release is verified as of its timestamp's signing time: an auditor reads a bundle long after the
 * timestamp expired, and what matters is that the documents were validly signed then (keys in their
 * windows, the root's rejectBefore honoured), not that the fleet is still fresh.
 */
export async function verifyEvidenceBundle(
  bytes: Uint8Array | string,
  file: string,
  pinned: SignedRoot,
  opts: VerifyEvidenceOptions = {},
): Promise<EvidenceReport> {
  const bundle = readEvidenceBundle(bytes, file);
  requireBundleFleet(bundle, pinned, file);
  const held = readBundleAcks(bundle, file);
  checkDigestManifest(bundle, held, file);
  checkRootsBelowPinned(bundle, pinned, file);
  const timestampIssuedAt = unverifiedTimestampTime(bundle, file);
  const asOf = opts.now ?? timestampIssuedAt;
  const served = bundleFetch(bundle);
  const release = await verifyRelease({
    fetch: served.fetch,
    trusted: pinned,
    now: asOf,
    manifests: manifestHostsOf(bundle),
    plans: bundle.scope.channel === null ? 'all' : 'needed',
    ...(opts.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: opts.clockSkewSeconds }),
  });
  checkScopeCovered(bundle, release, file);
  checkEveryDocumentVerified(bundle, served.read, pinned, file);
  const acks = verifyBundleAcks(bundle, held, release, file);
  return evidenceReport(bundle, file, release, acks, asOf);
}

function requireBundleFleet(bundle: EvidenceBundle, pinned: SignedRoot, file: string): void {
  if (bundle.fleet !== pinned.signed.fleet)
    throw new WrongFleet(
      file,
      `the bundle is for fleet "${bundle.fleet}", the pinned root for "${pinned.signed.fleet}"`,
    );
}

/** The unsigned manifest names every entry with the sha256 of its bytes, and nothing else. */
/** Each host's acks, read strictly once (canonical form, listed under their own host); not verified yet. */
function readBundleAcks(bundle: EvidenceBundle, file: string): Map<string, SignedAck[]> {
  const out = new Map<string, SignedAck[]>();
  for (const [host, list] of Object.entries(bundle.acks))
    out.set(
      host,
      list.map((text, i) => {
        const source = `${file}: acks/${host}[${i}]`;
        const ack = readAck(text, source);
        // Its bytes are what the digest manifest and the next ack's `prev` name: only the canonical form.
        if (canonicalString(ack) !== text)
          throw new Malformed(source, 'is not the canonical JSON of its envelope');
        if (ack.signed.host !== host)
          throw new WrongHost(source, `ack of host ${ack.signed.host} listed under ${host}`);
        return ack;
      }),
    );
  return out;
}

function checkDigestManifest(
  bundle: EvidenceBundle,
  held: ReadonlyMap<string, readonly SignedAck[]>,
  file: string,
): void {
  const expected = new Map<string, string>();
  for (const [path, text] of Object.entries(bundle.documents))
    expected.set(documentKey(path), sha256Digest(Buffer.from(text, 'utf8')));
  for (const [host, list] of held)
    for (const ack of list) {
      const key = ackKey(host, ack.signed.seq);
      if (expected.has(key))
        throw new AckChainBroken(
          `${file}: ${key}`,
          `host ${host}: two acks carry seq ${ack.signed.seq}`,
        );
      // The canonical text's digest, which the intake guaranteed is the listed text's.
      expected.set(key, ackDigest(ack));
    }
  for (const [key, digest] of expected) {
    const listed = bundle.digests[key];
    if (listed === undefined)
      throw new MixAndMatch(`${file}: ${key}`, "is not in the bundle's digest manifest");
    if (listed !== digest)
      throw new MixAndMatch(
        `${file}: ${key}`,
        `has digest ${digest}, the bundle's digest manifest says ${listed}`,
      );
  }
  for (const key of Object.keys(bundle.digests))
    if (!expected.has(key))
      throw new MixAndMatch(
        `${file}: ${key}`,
        "is in the bundle's digest manifest, but the bundle does not hold it",
      );
}

/** Roots older than the auditor's pinned one: each must be followed by the next, up to exactly the pinned root. */
function checkRootsBelowPinned(bundle: EvidenceBundle, pinned: SignedRoot, file: string): void {
  const pinnedVersion = pinned.signed.version;
  const pinnedPath = rootPath(pinnedVersion);
  const held = bundle.documents[pinnedPath];
  if (held === undefined)
    throw new MixAndMatch(
      `${file}: ${pinnedPath}`,
      `is missing: the bundle must carry the trust root chain from v1, through the pinned v${pinnedVersion}`,
    );
  if (canonicalString(readRoot(held, `${file}: ${pinnedPath}`)) !== canonicalString(pinned))
    throw new MixAndMatch(
      `${file}: ${pinnedPath}`,
      `differs from the pinned root v${pinnedVersion}: the bundle is from another trust root`,
    );
  let below: SignedRoot | undefined;
  for (let v = 1; v < pinnedVersion; v++) {
    const text = bundle.documents[rootPath(v)];
    if (text === undefined) {
      if (below !== undefined)
        throw new MixAndMatch(`${file}: ${rootPath(v)}`, 'is missing from the root chain');
      continue;
    }
    const root = readRoot(text, `${file}: ${rootPath(v)}`);
    if (below === undefined) verifyPinnedRoot(root, `${file}: ${rootPath(v)}`);
    else verifyNextRoot(below, root, `${file}: ${rootPath(v)}`);
    below = root;
  }
  if (below !== undefined) verifyNextRoot(below, pinned, `${file}: ${pinnedPath}`);
}

/** The instant to verify as of, read from the timestamp before it is verified (which happens next). */
function unverifiedTimestampTime(bundle: EvidenceBundle, file: string): number {
  const text = bundle.documents[TIMESTAMP_PATH];
  if (text === undefined)
    throw new MixAndMatch(`${file}: ${TIMESTAMP_PATH}`, 'is missing from the bundle');
  return parseIsoTime(readTimestamp(Buffer.from(text, 'utf8'), TIMESTAMP_PATH).signed.issuedAt);
}

/** The bundle as the walk's Fetch; `read` records which documents the walk verified. */
function bundleFetch(bundle: EvidenceBundle): { fetch: Fetch; read: Set<string> } {
  const read = new Set<string>();
  return {
    read,
    fetch: async (path, maxBytes) => {
      if (!Object.hasOwn(bundle.documents, path)) return undefined;
      const bytes = Buffer.from(bundle.documents[path]!, 'utf8');
      if (bytes.byteLength > maxBytes)
        throw new TooLarge(path, `${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`);
      read.add(path);
      return bytes;
    },
  };
}

const MANIFEST_PATH = /^releases\/[0-9]+\/hosts\/([a-z0-9][a-z0-9-]{0,62})\.json$/;

function manifestHostsOf(bundle: EvidenceBundle): string[] {
  const hosts: string[] = [];
  for (const path of Object.keys(bundle.documents)) {
    const m = MANIFEST_PATH.exec(path);
    if (m) hosts.push(m[1]!);
  }
  return hosts.sort();
}

/** Every host of the scope (the channel's, or the release's) has its verified manifest in the bundle. */
function checkScopeCovered(bundle: EvidenceBundle, release: VerifiedRelease, file: string): void {
  const channel = bundle.scope.channel;
  if (channel !== null && !release.index.channels[channel])
    throw new MixAndMatch(
      file,
      `scope names channel "${channel}", which release ${release.index.version} does not have`,
    );
  for (const [host, entry] of Object.entries(release.index.hosts)) {
    if (channel !== null && entry.channel !== channel) continue;
    if (!release.manifests.has(host))
      throw new MixAndMatch(
        `${file}: ${entry.manifest.path}`,
        `is missing, but the release index binds it${channel === null ? '' : ` for channel "${channel}"`}`,
      );
  }
}

/** A document the walk did not verify proves nothing and must not ride along as if it did. */
function checkEveryDocumentVerified(
  bundle: EvidenceBundle,
  read: ReadonlySet<string>,
  pinned: SignedRoot,
  file: string,
): void {
  for (const path of Object.keys(bundle.documents)) {
    if (read.has(path)) continue;
    const root = /^root\/([0-9]+)\.json$/.exec(path);
    if (root && Number(root[1]) <= pinned.signed.version) continue; // checked against the pinned root
    throw new MixAndMatch(
      `${file}: ${path}`,
      'is in the bundle, but no verified document of the release binds it',
    );
  }
}

interface HostAcks {
  acks: SignedAck[];
}

/** Every ack: canonical, verifyAck against the manifest's host key, one unbroken chain per host. */
function verifyBundleAcks(
  bundle: EvidenceBundle,
  held: ReadonlyMap<string, readonly SignedAck[]>,
  release: VerifiedRelease,
  file: string,
): Map<string, HostAcks> {
  const hostKeys = new Map<string, string>();
  for (const [host, { manifest }] of release.manifests) hostKeys.set(host, manifest.hostKey);
  const trust: AckTrust = { fleet: release.root.signed.fleet, hostKeys };
  const since = bundle.scope.since === null ? null : parseIsoTime(bundle.scope.since);
  const out = new Map<string, HostAcks>();
  for (const [host, acks] of held) {
    // UnknownHost for a host whose manifest the bundle lacks: no key of the release to check it with.
    acks.forEach((ack, i) =>
      verifyAck(ack, trust, `${file}: acks/${host}[${i}] (seq ${ack.signed.seq})`),
    );
    checkAckChain(host, acks, since, `${file}: acks/${host}`);
    out.set(host, { acks: [...acks].sort((a, b) => a.signed.seq - b.signed.seq) });
  }
  return out;
}

function evidenceReport(
  bundle: EvidenceBundle,
  file: string,
  release: VerifiedRelease,
  acks: ReadonlyMap<string, HostAcks>,
  asOf: number,
): EvidenceReport {
  const hosts: EvidenceHost[] = [];
  for (const [host, { manifest, revoked }] of [...release.manifests].sort(([a], [b]) =>
    a < b ? -1 : 1,
  )) {
    const held = acks.get(host)?.acks ?? [];
    hosts.push({
      host,
      channel: manifest.channel,
      revoked: revoked ?? null,
      mode: manifest.compliance?.mode ?? null,
      frameworks: manifest.compliance?.frameworks ?? [],
      acks:
        held.length === 0
          ? null
          : { count: held.length, firstSeq: held[0]!.signed.seq, lastSeq: held.at(-1)!.signed.seq },
      controls: controlsOf(
        manifest,
        held.map((a) => a.signed),
      ),
    });
  }
  return {
    ok: true,
    file,
    fleet: bundle.fleet,
    exportedAt: bundle.exportedAt,
    verifiedAsOf: isoTime(asOf),
    scope: bundle.scope,
    root: {
      version: release.root.signed.version,
      chain: release.chain.map((r) => r.signed.version),
    },
    release: {
      version: release.index.version,
      issuedAt: release.index.issuedAt,
      timestampIssuedAt: release.timestamp.signed.issuedAt,
    },
    documents: Object.keys(bundle.documents).length,
    acks: [...acks.values()].reduce((n, h) => n + h.acks.length, 0),
    hosts,
  };
}

/**
 * A host's controls: the static results the release signed, then each runtime control the release
 * names with the latest result the host signed for it (newest ack carrying it), or no evidence yet.
 */
export function controlsOf(
  manifest: Pick<HostManifest, 'compliance'>,
  acksOldestFirst: readonly Pick<Ack, 'time' | 'seq' | 'releaseVersion' | 'evidence'>[],
): EvidenceControl[] {
  const c = manifest.compliance;
  if (!c) return [];
  const out: EvidenceControl[] = c.static.map((s) => ({
    framework: s.framework,
    control: s.control,
    kind: 'static' as const,
    status: s.ok ? ('ok' as const) : ('failing' as const),
    evidence: s.evidence,
  }));
  for (const r of c.runtime) {
    let found: EvidenceControl | undefined;
    for (let i = acksOldestFirst.length - 1; i >= 0 && !found; i--) {
      const a = acksOldestFirst[i]!;
      const e = a.evidence?.find((x) => x.framework === r.framework && x.control === r.control);
      if (e)
        found = {
          framework: r.framework,
          control: r.control,
          kind: 'runtime',
          status: e.ok ? 'ok' : 'failing',
          evidence: e.excerpt,
          exitCode: e.exitCode,
          outputDigest: e.outputDigest,
          time: a.time,
          ackSeq: a.seq,
          releaseVersion: a.releaseVersion,
        };
    }
    out.push(
      found ?? {
        framework: r.framework,
        control: r.control,
        kind: 'runtime',
        status: 'no-evidence',
        evidence: '',
      },
    );
  }
  return out;
}
