// The signed revocations document. Each version is written once to revocations-<v>.json (immutable) and
// the timestamp binds that file; `revocations.json` is a copy of the current one for tools that want a
// fixed name, written after the timestamp. Rewriting a single mutable revocations.json before the
// timestamp would leave a window in which a killed publisher breaks the binding of the previous
// timestamp; immutable versioned files have no such window.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  canonicalString,
  readEnvelope,
  envelopeBytes,
  signDocument,
  type SigningKey,
  LIMITS,
  SCHEMA_VERSION,
  parseIsoTime,
  type FileRef,
  type SignedDocument,
  Revocations,
  type Timestamp,
  sha256Digest,
} from '../protocol/index.ts';
import type { Fleet } from './fleet-schema.ts';
import type { TreeFile } from './documents.ts';

export const versionedRevocationsPath = (version: number): string => `revocations-${version}.json`;

export interface PlannedRevocations {
  version: number;
  ref: FileRef;
  /** Present when a new version must be written; absent when the previous document is reused. */
  file?: TreeFile;
}

/** The previous revocations document bound by the current timestamp, if readable and matching. */
export function readBoundRevocations(
  treeDir: string,
  ts: Timestamp | undefined,
): SignedDocument<Revocations> | undefined {
  if (!ts) return undefined;
  const path = join(treeDir, ts.revocations.file.path);
  if (!existsSync(path)) return undefined;
  const bytes = readFileSync(path);
  if (sha256Digest(bytes) !== ts.revocations.file.digest) return undefined;
  return readEnvelope(bytes, Revocations, {
    file: ts.revocations.file.path,
    maxBytes: LIMITS.revocations,
    expectType: 'revocations',
  });
}

const hostKey = (h: { host: string; keyid: string | null; certSerial: string | null }) =>
  `${h.host}\u0000${h.keyid ?? ''}\u0000${h.certSerial ?? ''}`;

/**
 * `lastVersion`: the revocations version the current timestamp names (0 for a new tree); never reused.
 * `rejectBefore`: the trust root's; a previous document issued before it is re-signed, never reused.
 */
export function planRevocations(
  fleet: Fleet,
  previous: { doc: SignedDocument<Revocations>; ref: FileRef } | undefined,
  lastVersion: number,
  issuedAt: string,
  keys: readonly SigningKey[],
  rejectBefore: string | null = null,
): PlannedRevocations {
  const prevHosts = new Map((previous?.doc.signed.hosts ?? []).map((h) => [hostKey(h), h]));
  const prevClosures = new Map((previous?.doc.signed.closures ?? []).map((c) => [c.storePath, c]));
  const hosts = fleet.revoked.hosts
    .map((h) => {
      const entry = {
        host: h.host,
        keyid: h.keyid ?? null,
        certSerial: h.certSerial ?? null,
        reason: h.reason,
      };
      return {
        ...entry,
        revokedAt: h.revokedAt ?? prevHosts.get(hostKey(entry))?.revokedAt ?? issuedAt,
      };
    })
    .sort((a, b) => (hostKey(a) < hostKey(b) ? -1 : hostKey(a) > hostKey(b) ? 1 : 0));
  const closures = fleet.revoked.closures
    .map((c) => ({
      storePath: c.storePath,
      reason: c.reason,
      revokedAt: c.revokedAt ?? prevClosures.get(c.storePath)?.revokedAt ?? issuedAt,
    }))
    .sort((a, b) => (a.storePath < b.storePath ? -1 : a.storePath > b.storePath ? 1 : 0));

  // Reuse the previous document only if it carries exactly our signatures: after a release key rotation
  // the old signatures would no longer verify against the new trust root.
  const sameSigners =
    previous !== undefined &&
    canonicalString(previous.doc.signatures.map((x) => x.keyid).sort()) ===
      canonicalString(keys.map((k) => k.keyid).sort());
  // Nor if it was signed before the root's rejectBefore (a compromise switch): every verifier refuses it
  // (Revoked), so reusing it would make each later release unverifiable.
  const notRejected =
    previous !== undefined &&
    (rejectBefore === null ||
      parseIsoTime(previous.doc.signed.issuedAt) >= parseIsoTime(rejectBefore));
  if (
    previous &&
    sameSigners &&
    notRejected &&
    canonicalString({ hosts, closures }) ===
      canonicalString({ hosts: previous.doc.signed.hosts, closures: previous.doc.signed.closures })
  ) {
    return { version: previous.doc.signed.version, ref: previous.ref };
  }
  const version = Math.max(previous?.doc.signed.version ?? 0, lastVersion) + 1;
  const doc = Revocations.parse({
    type: 'revocations',
    schemaVersion: SCHEMA_VERSION,
    fleet: fleet.fleet,
    version,
    issuedAt,
    hosts,
    closures,
  });
  const bytes = envelopeBytes(signDocument(doc, keys));
  const path = versionedRevocationsPath(version);
  return {
    version,
    ref: { path, digest: sha256Digest(bytes), length: bytes.length },
    file: { path, bytes },
  };
}
