// Builds and signs the immutable documents of one release (pure: no I/O, no clock). Order matters because
// documents bind what they depend on by digest: budgets -> channel plans -> host manifests -> index.
// Documents are typed literals (`satisfies`), not zod-parsed at run time: parsing 10,000 manifests costs
// more than signing them. The publisher tests read every written file back through the schemas.
import {
  sha256Digest,
  signBytes,
  startBatchSigner,
  b64,
  type SigningKey,
  budgetsPath,
  channelPlanPath,
  hostManifestPath,
  releaseIndexPath,
  SCHEMA_VERSION,
  type FileRef,
  type ChannelPlan,
  type DisruptionBudgets,
  type HostManifest,
  type ReleaseIndex,
} from '../protocol/index.ts';
import { canonicalTemplate, fastCanonical, type CanonicalMemo } from './jcs.ts';
import type { Fleet } from './fleet-schema.ts';
import type { ResolvedFleet } from './waves.ts';
import { parseHostKey } from './host-key.ts';
import { channelCompliance, hostCompliance } from './compliance.ts';

export interface TreeFile {
  /** Tree-relative path. */
  path: string;
  bytes: Buffer;
}

export interface BuildReleaseInput {
  fleet: Fleet;
  resolved: ResolvedFleet;
  version: number;
  issuedAt: string;
  rootVersion: number;
  fleetDigest: string;
  source: string | null;
  keys: readonly SigningKey[];
  /** Called every few hundred signatures with (done, total). */
  onSigned?: (done: number, total: number) => void;
}

export interface BuiltRelease {
  files: TreeFile[];
  index: FileRef;
  /** The channel plans (by channel) and budgets as signed into `files`, for the diff against the
   * current release (reading them back from the bytes would only parse what was just serialised). */
  plans: Map<string, ChannelPlan>;
  budgets: DisruptionBudgets;
}

/**
 * Same bytes as envelopeBytes(signDocument(doc, keys)) but canonicalises the document once instead of
 * twice: JCS orders "signatures" before "signed" and "keyid" before "sig", and key ids (hex) and
 * signatures (base64) need no escaping. tests/publisher/documents.test.ts checks the equivalence.
 */
export function signedEnvelopeBytes(
  doc: unknown,
  keys: readonly SigningKey[],
  memo?: CanonicalMemo,
): Buffer {
  return envelopeOfCanonical(fastCanonical(doc, memo), keys);
}

/** The envelope of a document given as its canonical (JCS) text. */
function envelopeOfCanonical(signed: string, keys: readonly SigningKey[]): Buffer {
  const envelope = openEnvelope(signed, keys);
  return closeEnvelope(
    envelope,
    keys,
    keys.map((k) => signBytes(k.seed, envelope.message)),
  );
}

/** An envelope's buffer with the signed text (`message`) in its tail and room for the signatures before it. */
interface OpenEnvelope {
  out: Buffer;
  message: Buffer;
}

/**
 * One buffer for the whole envelope, the signed text encoded once into its tail: the prefix has a fixed
 * length (64-char key ids, 88-char base64 signatures), so the message can be signed in place.
 */
function openEnvelope(signed: string, keys: readonly SigningKey[]): OpenEnvelope {
  const prefixLength =
    ENVELOPE_OPEN.length +
    keys.length * SIGNATURE_ENTRY_LENGTH -
    (keys.length > 0 ? 1 : 0) +
    ENVELOPE_MIDDLE.length;
  const signedLength = Buffer.byteLength(signed, 'utf8');
  const out = Buffer.allocUnsafe(prefixLength + signedLength + 1);
  out.write(signed, prefixLength, 'utf8');
  return { out, message: out.subarray(prefixLength, prefixLength + signedLength) };
}

/** Writes the signatures (one per key, in the keys' order) before the signed text and closes the object. */
function closeEnvelope(
  { out, message }: OpenEnvelope,
  keys: readonly SigningKey[],
  signatures: readonly Uint8Array[],
): Buffer {
  const signedLength = message.length;
  const entries = keys
    .map((k, i) => `{"keyid":"${k.keyid}","sig":"${b64(signatures[i]!)}"}`)
    .join(',');
  const prefix = ENVELOPE_OPEN + entries + ENVELOPE_MIDDLE;
  if (prefix.length !== out.length - signedLength - 1)
    throw new Error('internal: unexpected signature entry length');
  out.write(prefix, 0, 'latin1');
  out[out.length - 1] = 0x7d; // '}'
  return out;
}
const ENVELOPE_OPEN = '{"signatures":[';
const ENVELOPE_MIDDLE = '],"signed":';
/** `{"keyid":"<64 hex>","sig":"<88 base64>"},` */
const SIGNATURE_ENTRY_LENGTH = '{"keyid":"","sig":""},'.length + 64 + 88;

export function fileRef(path: string, bytes: Buffer): FileRef {
  return { path, digest: sha256Digest(bytes), length: bytes.length };
}

/** `{ [key]: value }`, or nothing when value is undefined (an optional field stays absent, not null). */
function optional<K extends string, V>(key: K, value: V | undefined): { [k in K]?: V } {
  return value === undefined ? {} : ({ [key]: value } as { [k in K]?: V });
}

function rawHostKey(text: string): string {
  const r = parseHostKey(text);
  if (!r.ok) throw new Error(`host key was not validated: ${r.reason}`);
  return r.base64;
}

export function buildRelease(input: BuildReleaseInput): BuiltRelease {
  const r = startRelease(input);
  const signed = signUpToManifests(r);
  const listed: ListedManifest[] = [];
  const refs: FileRef[] = [];
  for (const m of signed.manifests) {
    listed.push({ host: m.host, channel: m.channel });
    refs.push(r.addSigned(m.path, envelopeOfCanonical(m.text, input.keys)));
  }
  return signIndex(signed, listed, refs);
}

/** Where buildReleaseConcurrent hands each host manifest as soon as all its signatures are in. */
export interface ManifestSink {
  /** One signed manifest (they come in no particular order). */
  write(file: TreeFile): void;
  /** Every manifest was handed over; the index is signed next. */
  end(): void;
}

/**
 * The same release, byte for byte, with the host manifests (all but a handful of the signatures) signed
 * on a second thread (protocol/ed25519.ts startBatchSigner) while this one serialises the next manifests.
 * Everything else is signed in line, as in buildRelease. Each manifest is closed, digested and handed to
 * `sink` as soon as its signatures are in, while the signing goes on (`nixfleet publish` writes it into
 * the release's temp directory then): that work is shared between the threads like the signing.
 */
export async function buildReleaseConcurrent(
  input: BuildReleaseInput,
  sink?: ManifestSink,
): Promise<BuiltRelease> {
  const { keys } = input;
  const r = startRelease(input);
  /** Every manifest in signing order: its path and its envelope, open until its signatures are in. */
  const opened: { path: string; envelope: OpenEnvelope }[] = [];
  const refs: FileRef[] = [];
  /** Runs of signatures (by the position of their first message) waiting for the other keys' runs. */
  const partial = new Map<number, { arrived: number; byKey: (readonly Uint8Array[])[] }>();
  const onSigned = (key: number) => (first: number, signatures: readonly Uint8Array[]) => {
    let run = partial.get(first);
    if (!run) partial.set(first, (run = { arrived: 0, byKey: [] }));
    run.byKey[key] = signatures;
    if (++run.arrived < keys.length) return;
    partial.delete(first);
    const { byKey } = run;
    for (let i = 0; i < signatures.length; i++) {
      const { path, envelope } = opened[first + i]!;
      const bytes = closeEnvelope(
        envelope,
        keys,
        byKey.map((s) => s[i]!),
      );
      refs[first + i] = r.addSigned(path, bytes);
      sink?.write({ path, bytes });
    }
  };
  // Started before the budgets and plans are signed: the thread boots meanwhile.
  const signers = keys.map((k, i) => startBatchSigner(k.seed, undefined, onSigned(i)));
  try {
    const signed = signUpToManifests(r);
    const listed: ListedManifest[] = [];
    for (const m of signed.manifests) {
      listed.push({ host: m.host, channel: m.channel });
      const envelope = openEnvelope(m.text, keys);
      opened.push({ path: m.path, envelope });
      for (const s of signers) s.add(envelope.message);
      // Now and then the signing thread's answers are let in, so that it is handed its next chunk
      // (and this thread writes the signed ones) while the rest is serialised.
      if (listed.length % YIELD_EVERY === 0) await new Promise<void>((go) => setImmediate(go));
    }
    await Promise.all(signers.map((s) => s.finish()));
    sink?.end();
    return signIndex(signed, listed, refs);
  } finally {
    // A build that failed half-way must not leave a thread keeping the process alive.
    for (const s of signers) s.close();
  }
}

/** Manifests serialised between two looks at the signing thread's answers (about 2 ms of work). */
const YIELD_EVERY = 128;

/**
 * The documents before the index, in dependency order (each binds the ones before it by digest): the
 * budgets and plans signed, then the host manifests' texts, serialised one by one as the caller takes
 * them (and signs them, or starts their signing elsewhere).
 */
function signUpToManifests(r: ReleaseInProgress): {
  r: ReleaseInProgress;
  budgets: { ref: FileRef; doc: DisruptionBudgets };
  plans: { refs: Map<string, FileRef>; docs: Map<string, ChannelPlan> };
  manifests: Iterable<ManifestText>;
} {
  const budgets = signBudgets(r);
  const plans = signChannelPlans(r);
  return { r, budgets, plans, manifests: hostManifests(r, plans.refs, budgets.ref) };
}

/**
 * The index that binds every document; `listed`: the manifests in the order they were serialised,
 * `refs`: their references (added to the files), in the same order.
 */
function signIndex(
  { r, budgets, plans }: ReturnType<typeof signUpToManifests>,
  listed: readonly ListedManifest[],
  refs: readonly FileRef[],
): BuiltRelease {
  const index = signReleaseIndex(r, plans.refs, budgets.ref, indexHosts(r, listed, refs));
  return { files: r.files, index, plans: plans.docs, budgets: budgets.doc };
}

/** One release being signed: its input, the fields every document repeats, and the files signed so far. */
interface ReleaseInProgress {
  input: BuildReleaseInput;
  common: {
    schemaVersion: typeof SCHEMA_VERSION;
    fleet: string;
    releaseVersion: number;
    issuedAt: string;
  };
  /** Host -> raw Ed25519 host key (base64), as plans and manifests carry it. */
  hostKeys: Map<string, string>;
  files: TreeFile[];
  /** Canonical texts of objects already serialised (shared sub-objects, references, host entries). */
  memo: CanonicalMemo;
  /** Signs `doc`, adds it to `files` and returns the reference later documents bind. */
  sign: (path: string, doc: unknown) => FileRef;
  /** Adds a signed envelope to `files` and returns its reference. */
  addSigned: (path: string, bytes: Buffer) => FileRef;
}

/** How many files the release has: a manifest per host, a plan per channel, the budgets, the index. */
export function releaseFileCount({ fleet, resolved }: BuildReleaseInput): number {
  return Object.keys(fleet.hosts).length + Object.keys(resolved.channels).length + 2;
}

function startRelease(input: BuildReleaseInput): ReleaseInProgress {
  const { fleet, version, issuedAt } = input;
  const files: TreeFile[] = [];
  const total = releaseFileCount(input);
  let done = 0;
  // Shared sub-objects (plan refs, budgets ref, probes) are canonicalised once, not once per host.
  // A Map, not a WeakMap: it dies with the build anyway, and 20,000 weak entries (ephemerons) cost
  // the garbage collector more than they could ever free.
  const memo = new Map<object, string>();
  const addSigned = (path: string, bytes: Buffer): FileRef => {
    files.push({ path, bytes });
    done++;
    if (input.onSigned && (done % 250 === 0 || done === total)) input.onSigned(done, total);
    const ref = fileRef(path, bytes);
    // The index lists every manifest's reference: its text is known now, without a key sort.
    memo.set(ref, fileRefText(ref));
    return ref;
  };
  const sign = (path: string, doc: unknown) =>
    addSigned(path, envelopeOfCanonical(fastCanonical(doc, memo), input.keys));
  return {
    input,
    common: {
      schemaVersion: SCHEMA_VERSION,
      fleet: fleet.fleet,
      releaseVersion: version,
      issuedAt,
    },
    hostKeys: new Map(
      Object.entries(fleet.hosts).map(([name, h]) => [name, rawHostKey(h.hostKey)]),
    ),
    files,
    memo,
    sign,
    addSigned,
  };
}

const fileRefText = canonicalTemplate<FileRef>({}, ['path', 'digest', 'length']);

function signBudgets({ input: { resolved, version }, common, sign }: ReleaseInProgress): {
  ref: FileRef;
  doc: DisruptionBudgets;
} {
  const doc = {
    type: 'disruption-budgets',
    ...common,
    budgets: resolved.budgets.map((b) => ({
      id: b.id,
      selector: b.selector,
      maxInFlight: b.maxInFlight,
      maxInFlightPct: b.maxInFlightPct,
      hosts: b.hosts,
    })),
  } satisfies DisruptionBudgets;
  return { ref: sign(budgetsPath(version), doc), doc };
}

/** Channel -> its signed plan's reference, and the plan itself. */
type PlanHost = ChannelPlan['hosts'][string];
const planHostText = canonicalTemplate<PlanHost>({}, ['target', 'hostKey', 'wave']);

function signChannelPlans({
  input: { fleet, resolved, version },
  common,
  hostKeys,
  memo,
  sign,
}: ReleaseInProgress): { refs: Map<string, FileRef>; docs: Map<string, ChannelPlan> } {
  const refs = new Map<string, FileRef>();
  const docs = new Map<string, ChannelPlan>();
  for (const ch of Object.values(resolved.channels)) {
    const c = fleet.channels[ch.name]!;
    const hosts: Record<string, PlanHost> = {};
    for (const w of ch.waves)
      for (const h of w.hosts) {
        const entry = { target: fleet.hosts[h]!.target, hostKey: hostKeys.get(h)!, wave: w.index };
        memo.set(entry, planHostText(entry));
        hosts[h] = entry;
      }
    const plan = {
      type: 'channel-plan',
      ...common,
      channel: ch.name,
      rolloutId: ch.rolloutId,
      strategy: ch.strategy,
      onFailure: ch.onFailure,
      freshnessSeconds: c.freshnessSeconds,
      signingIntervalSeconds: c.signingIntervalSeconds,
      confirmDeadlineSeconds: c.confirmDeadlineSeconds,
      heartbeatSeconds: c.heartbeatSeconds,
      offlineWindowSeconds: c.offlineWindowSeconds,
      maintenanceWindows: c.maintenanceWindows,
      reboot: ch.reboot,
      deferredHosts: ch.deferredHosts,
      waves: ch.waves.map((w) => ({
        index: w.index,
        soakSeconds: w.soakSeconds,
        failureThreshold: w.failureThreshold,
        offlineExcuseLimit: w.offlineExcuseLimit,
        hosts: w.hosts,
      })),
      hosts,
      hostEdges: ch.hostEdges,
      gatedBy: ch.gatedBy,
      ...optional('compliance', channelCompliance(fleet, ch.name)),
    } satisfies ChannelPlan;
    refs.set(ch.name, sign(channelPlanPath(version, ch.name), plan));
    docs.set(ch.name, plan);
  }
  return { refs, docs };
}

/** The members in which one channel's host manifests differ; the rest is the same for all of them. */
type OwnManifest = Pick<
  HostManifest,
  'host' | 'system' | 'machineId' | 'hostKey' | 'wave' | 'target' | 'compliance'
>;
const OWN_MANIFEST_KEYS = [
  'host',
  'system',
  'machineId',
  'hostKey',
  'wave',
  'target',
  'compliance',
] as const satisfies readonly (keyof OwnManifest)[];

type IndexHost = ReleaseIndex['hosts'][string];
const indexHostText = canonicalTemplate<IndexHost>({}, ['channel', 'manifest']);

/** One host's manifest as the index lists it. */
interface ListedManifest {
  host: string;
  channel: string;
}

/** One host's manifest: where it goes, and its canonical (JCS) text, to be signed. */
interface ManifestText extends ListedManifest {
  path: string;
  text: string;
}

/**
 * Every host's manifest text and path, one at a time as the caller takes them, in channel and wave order. A channel's manifests are serialised through one template (canonicalTemplate): the ~15
 * members they share are serialised once per channel, not once per host (~0.1 s of a 10,000-host publish).
 */
function* hostManifests(
  { input: { fleet, resolved, version }, common, hostKeys, memo }: ReleaseInProgress,
  plans: Map<string, FileRef>,
  budgets: FileRef,
): Generator<ManifestText> {
  for (const ch of Object.values(resolved.channels)) {
    const c = fleet.channels[ch.name]!;
    const policy = fleet.policies[ch.policy]!;
    const shared = {
      type: 'host-manifest',
      ...common,
      channel: ch.name,
      rolloutId: ch.rolloutId,
      plan: plans.get(ch.name)!,
      gatingPlans: ch.gatedBy.map((g) => ({ channel: g, plan: plans.get(g)! })),
      budgets,
      probes: policy.probes,
      healthyPassesRequired: policy.healthyPassesRequired,
      confirmDeadlineSeconds: c.confirmDeadlineSeconds,
      cacheUrl: fleet.cacheUrl ?? null,
    } satisfies Omit<HostManifest, keyof OwnManifest>;
    const manifestText = canonicalTemplate<OwnManifest>(shared, OWN_MANIFEST_KEYS, memo);
    for (const w of ch.waves) {
      for (const name of w.hosts) {
        const h = fleet.hosts[name]!;
        const own = {
          host: name,
          system: h.system,
          machineId: h.machineId ?? null,
          hostKey: hostKeys.get(name)!,
          wave: w.index,
          target: h.target,
          ...optional('compliance', hostCompliance(fleet, name)),
        } satisfies OwnManifest;
        const path = hostManifestPath(version, name);
        yield { host: name, channel: ch.name, path, text: manifestText(own) };
      }
    }
  }
}

/** Host -> its channel and manifest reference (`refs`, in the manifests' order), as the index lists them. */
function indexHosts(
  { memo }: ReleaseInProgress,
  listed: readonly ListedManifest[],
  refs: readonly FileRef[],
): Record<string, IndexHost> {
  const hosts: Record<string, IndexHost> = {};
  listed.forEach((m, i) => {
    const entry = { channel: m.channel, manifest: refs[i]! };
    memo.set(entry, indexHostText(entry));
    hosts[m.host] = entry;
  });
  return hosts;
}

function signReleaseIndex(
  { input, sign }: ReleaseInProgress,
  plans: Map<string, FileRef>,
  budgets: FileRef,
  hosts: Record<string, IndexHost>,
): FileRef {
  const { fleet, resolved, version, issuedAt } = input;
  const channels: Record<string, { rolloutId: string; plan: FileRef; hostCount: number }> = {};
  for (const ch of Object.values(resolved.channels)) {
    channels[ch.name] = {
      rolloutId: ch.rolloutId,
      plan: plans.get(ch.name)!,
      hostCount: ch.waves.reduce((n, w) => n + w.hosts.length, 0),
    };
  }
  return sign(releaseIndexPath(version), {
    type: 'release',
    schemaVersion: SCHEMA_VERSION,
    fleet: fleet.fleet,
    version,
    issuedAt,
    rootVersion: input.rootVersion,
    fleetDigest: input.fleetDigest,
    source: input.source,
    channels,
    hosts,
    budgets,
  } satisfies ReleaseIndex);
}
