// Gives hosts of a published tree a signed `compliance` section (protocol/schemas/compliance.ts), as a
// publisher that evaluates compliance frameworks would sign it: each amended manifest is re-signed by
// the release key, then the index (which binds the manifests by digest) and the timestamp (which binds
// the index). Issue times are kept, so the release stays the same release with the same freshness.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Digest } from '../../protocol/canonical.ts';
import { envelopeBytes, signDocument } from '../../protocol/envelope.ts';
import type { SigningKey } from '../../protocol/keys.ts';
import { TIMESTAMP_PATH } from '../../protocol/layout.ts';
import type { FileRef } from '../../protocol/schemas/common.ts';
import type { HostCompliance } from '../../protocol/schemas/compliance.ts';
import type { SignedDocument } from '../../protocol/schemas/envelope.ts';
import type { HostManifest, ReleaseIndex } from '../../protocol/schemas/release.ts';
import type { Timestamp } from '../../protocol/schemas/timestamp.ts';

function resign<T>(treeDir: string, path: string, edit: (doc: T) => T, key: SigningKey): FileRef {
  const env = JSON.parse(readFileSync(join(treeDir, path), 'utf8')) as SignedDocument<T>;
  const bytes = envelopeBytes(signDocument(edit(env.signed), [key]));
  writeFileSync(join(treeDir, path), bytes);
  return { path, digest: sha256Digest(bytes), length: bytes.byteLength };
}

/** Sets (or with undefined removes) the compliance section of each named host's manifest of the current release. */
export function setCompliance(
  treeDir: string,
  releaseKey: SigningKey,
  byHost: Record<string, HostCompliance | undefined>,
): void {
  const ts = (
    JSON.parse(readFileSync(join(treeDir, TIMESTAMP_PATH), 'utf8')) as SignedDocument<Timestamp>
  ).signed;
  const indexPath = ts.release.index.path;
  const refs = new Map<string, FileRef>();
  const index = (
    JSON.parse(readFileSync(join(treeDir, indexPath), 'utf8')) as SignedDocument<ReleaseIndex>
  ).signed;
  for (const [host, compliance] of Object.entries(byHost)) {
    const path = index.hosts[host]!.manifest.path;
    refs.set(
      host,
      resign<HostManifest>(
        treeDir,
        path,
        (m) => {
          const { compliance: _old, ...rest } = m;
          return compliance === undefined ? rest : { ...rest, compliance };
        },
        releaseKey,
      ),
    );
  }
  const indexRef = resign<ReleaseIndex>(
    treeDir,
    indexPath,
    (i) => ({
      ...i,
      hosts: Object.fromEntries(
        Object.entries(i.hosts).map(([h, e]) => [h, { ...e, manifest: refs.get(h) ?? e.manifest }]),
      ),
    }),
    releaseKey,
  );
  resign<Timestamp>(
    treeDir,
    TIMESTAMP_PATH,
    (t) => ({ ...t, release: { ...t.release, index: indexRef } }),
    releaseKey,
  );
}
