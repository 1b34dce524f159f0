// An evidence bundle for an auditor (issue 13): one JSON file, verifiable offline with nothing but a
// pinned trust root. It carries signed documents only as the exact bytes that were signed and verified
// (tree files as their text, acks as their canonical envelopes), and an unsigned digest manifest; no
// field of the bundle itself is trusted beyond naming what is inside it.
import { z } from 'zod';
import { ChannelName, Digest, FleetName, HostName, IsoTime } from './common.ts';

export const EVIDENCE_BUNDLE_TYPE = 'nixfleet-evidence-bundle';

/** Tree-relative paths as the release walk fetches them (root/<n>.json, releases/<v>/..., timestamp.json). */
const TreePath = z
  .string()
  .max(1024)
  .regex(/^[a-z0-9][a-z0-9._/-]*\.json$/, 'must be a tree-relative .json path');

export const EvidenceBundle = z.strictObject({
  type: z.literal(EVIDENCE_BUNDLE_TYPE),
  schemaVersion: z.literal(1),
  fleet: FleetName,
  /** When it was exported (unsigned: informational). */
  exportedAt: IsoTime,
  /** What the exporter was asked for: one channel or the whole fleet, acks from `since` (with one anchor before it). */
  scope: z.strictObject({ channel: ChannelName.nullable(), since: IsoTime.nullable() }),
  /** Tree path -> the file's text, byte for byte as published. */
  documents: z.record(TreePath, z.string()),
  /** Host -> its signed acks, oldest first, each the canonical JSON of the envelope (its bytes are its chain digest). */
  acks: z.record(HostName, z.array(z.string()).max(1_000_000)),
  /** `documents/<path>` and `acks/<host>/<seq>` -> sha256 of that entry's bytes: every entry, nothing else. */
  digests: z.record(z.string().max(1100), Digest),
});
export type EvidenceBundle = z.infer<typeof EvidenceBundle>;
