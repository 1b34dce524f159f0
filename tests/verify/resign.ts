// Re-signs a built tree's current release after editing its documents, re-binding every parent (plans and
// budgets -> manifests -> index -> timestamp) to the new bytes. What a test edits is then the ONE
// inconsistency left in an otherwise genuine, fully signed release: the kind a buggy or malicious
// publisher holding the release key could produce, which only the verifier's cross-checks catch.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TIMESTAMP_PATH } from '../../protocol/layout.ts';
import type { FileRef } from '../../protocol/schemas/common.ts';
import type {
  ChannelPlan,
  DisruptionBudgets,
  HostManifest,
  ReleaseIndex,
} from '../../protocol/schemas/release.ts';
import type { Timestamp } from '../../protocol/schemas/timestamp.ts';
import type { SigningKey } from '../../protocol/keys.ts';
import { writeFile, writeSigned } from '../support/tree-builder.ts';
import { envelopeBytes } from '../../protocol/envelope.ts';
import type { SignedDocument } from '../../protocol/schemas/envelope.ts';

export interface ReleaseEdits {
  budgets?: (b: DisruptionBudgets) => void;
  plan?: (channel: string, p: ChannelPlan) => void;
  /** Applied after the manifest's references were re-bound, so an edited reference stays as edited. */
  manifest?: (host: string, m: HostManifest) => void;
  /** Applied after the index's references were re-bound. */
  index?: (i: ReleaseIndex) => void;
  timestamp?: (ts: Timestamp) => void;
  /** Signs one file some other way than with every release key (e.g. with a bad signature among good ones). */
  envelope?: (path: string, doc: unknown) => SignedDocument<unknown> | undefined;
  /** Other bytes for one file than its envelope's (e.g. with a BOM before them); its parents bind these. */
  bytes?: (path: string, bytes: Buffer) => Uint8Array | undefined;
}

const signedOf = <T>(dir: string, path: string): T =>
  (JSON.parse(readFileSync(join(dir, path), 'utf8')) as { signed: T }).signed;

/** Applies `edits` to the release the timestamp names, re-signs it with `signers`, and returns the new index. */
export function resignRelease(
  t: { dir: string; keys: { release: SigningKey[] } },
  edits: ReleaseEdits,
): ReleaseIndex {
  const { dir } = t;
  const signers = t.keys.release;
  const ts = signedOf<Timestamp>(dir, TIMESTAMP_PATH);
  const index = signedOf<ReleaseIndex>(dir, ts.release.index.path);
  const moved = new Map<string, FileRef>(); // path -> its new reference
  const rebind = (ref: FileRef): FileRef => moved.get(ref.path) ?? ref;
  const write = (path: string, doc: unknown): FileRef => {
    const env = edits.envelope?.(path, doc);
    const ref = env
      ? writeFile(dir, path, envelopeBytes(env))
      : writeSigned(dir, path, doc, signers);
    const bytes = edits.bytes?.(path, readFileSync(join(dir, path)));
    return bytes ? writeFile(dir, path, bytes) : ref;
  };

  const budgets = signedOf<DisruptionBudgets>(dir, index.budgets.path);
  edits.budgets?.(budgets);
  moved.set(index.budgets.path, write(index.budgets.path, budgets));

  for (const [channel, entry] of Object.entries(index.channels)) {
    const plan = signedOf<ChannelPlan>(dir, entry.plan.path);
    edits.plan?.(channel, plan);
    moved.set(entry.plan.path, write(entry.plan.path, plan));
  }

  for (const [host, entry] of Object.entries(index.hosts)) {
    const m = signedOf<HostManifest>(dir, entry.manifest.path);
    m.plan = rebind(m.plan);
    m.budgets = rebind(m.budgets);
    m.gatingPlans = m.gatingPlans.map((g) => ({ ...g, plan: rebind(g.plan) }));
    edits.manifest?.(host, m);
    moved.set(entry.manifest.path, write(entry.manifest.path, m));
  }

  index.budgets = rebind(index.budgets);
  for (const entry of Object.values(index.channels)) entry.plan = rebind(entry.plan);
  for (const entry of Object.values(index.hosts)) entry.manifest = rebind(entry.manifest);
  edits.index?.(index);
  ts.release.index = write(ts.release.index.path, index);
  edits.timestamp?.(ts);
  write(TIMESTAMP_PATH, ts);
  return index;
}
