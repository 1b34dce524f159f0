// The auditor's verifier: the release walk over every host of the current release (everything an agent
// checks, for all of them, plus the release index that binds the whole release), turned into a report.
// Needs only a way to read the tree and a pinned root; the disk is read by the caller's Fetch.
import { isoTime } from '../schemas/index.ts';
import { hostManifestPath } from '../layout.ts';
import type { SignedRoot } from '../trust-root.ts';
import type { Fetch } from './fetcher.ts';
import {
  verifyRelease,
  type ManifestSignatures,
  type VerifiedDocumentMemo,
  type VerifiedFileType,
  type VerifiedRelease,
} from './release.ts';

export interface DocumentResult {
  file: string;
  type: VerifiedFileType;
  result: 'ok' | 'revoked';
  detail?: string;
}

export interface TreeReport {
  /** False when the tree verified but holds findings an auditor must look at (unlisted manifests). */
  ok: boolean;
  fleet: string;
  verifiedAt: string;
  root: { version: number; expires: string; chain: number[] };
  timestamp: { issuedAt: string; expires: string };
  release: { version: number; issuedAt: string; hosts: number; channels: string[] };
  revocations: { version: number; hosts: number; closures: number };
  documents: DocumentResult[];
  /** Hosts (or their targets) the revocations list names: an agent would refuse them. */
  revokedHosts: { host: string; file: string; detail: string }[];
  /** Manifest files of the current release that the index does not list. */
  unlistedManifests: string[];
}

export interface VerifyTreeOptions {
  now: number;
  clockSkewSeconds?: number;
  /**
   * Which host manifests to verify (default 'all', the audit). A view that shows no manifest (the
   * operator's fleet status) or one host's passes fewer; the report then covers only those, and the
   * unlisted-manifests finding (which needs every listed one) is left to the full audit.
   */
  manifests?: 'all' | readonly string[];
  /** Release documents verified by earlier walks (release.ts VerifiedDocumentMemo); an audit passes none. */
  memo?: VerifiedDocumentMemo;
  /** release.ts VerifyReleaseOptions.manifestSignatures: an audit keeps the default, 'each'. */
  manifestSignatures?: ManifestSignatures;
}

/** Where the auditor reads the tree: a Fetch, and the listing of a release's manifest directory. */
export interface TreeSource {
  fetch: Fetch;
  /** File names in releases/<version>/hosts/ (dotfiles excluded), for the unlisted-manifests finding. */
  listManifests?: (version: number) => readonly string[] | Promise<readonly string[]>;
}

export async function verifyTree(
  source: TreeSource,
  pinnedRoot: SignedRoot,
  opts: VerifyTreeOptions,
): Promise<TreeReport> {
  return (await auditTree(source, pinnedRoot, opts)).report;
}

/** verifyTree plus the verified documents its report is about (the operator's read side uses both). */
export async function auditTree(
  source: TreeSource,
  pinnedRoot: SignedRoot,
  opts: VerifyTreeOptions,
): Promise<{ report: TreeReport; release: VerifiedRelease }> {
  const release = await verifyRelease({
    fetch: source.fetch,
    trusted: pinnedRoot,
    now: opts.now,
    manifests: opts.manifests ?? 'all',
    plans: 'all',
    memo: opts.memo,
    clockSkewSeconds: opts.clockSkewSeconds,
    manifestSignatures: opts.manifestSignatures,
  });
  const root = release.root.signed;
  const ts = release.timestamp.signed;
  const revocations = release.revocations.signed;
  const version = ts.release.version;
  const revokedHosts: TreeReport['revokedHosts'] = [];
  const documents: DocumentResult[] = release.files.map(({ file, type }) => ({
    file,
    type,
    result: 'ok',
  }));
  const byFile = new Map(documents.map((d) => [d.file, d]));
  for (const [host, { revoked }] of release.manifests) {
    if (revoked === undefined) continue;
    const doc = byFile.get(hostManifestPath(version, host))!;
    doc.result = 'revoked';
    doc.detail = revoked;
    revokedHosts.push({ host, file: doc.file, detail: revoked });
  }
  const listed = new Set([...release.manifests.keys()].map((h) => `${h}.json`));
  const present =
    source.listManifests && (opts.manifests ?? 'all') === 'all'
      ? await source.listManifests(version)
      : [];
  const unlistedManifests = present
    .filter((f) => !listed.has(f))
    .map((f) => `releases/${version}/hosts/${f}`);
  const report: TreeReport = {
    ok: unlistedManifests.length === 0,
    fleet: root.fleet,
    verifiedAt: isoTime(opts.now),
    root: {
      version: root.version,
      expires: root.expires,
      chain: release.chain.map((r) => r.signed.version),
    },
    timestamp: { issuedAt: ts.issuedAt, expires: ts.expires },
    release: {
      version,
      issuedAt: release.index.issuedAt,
      hosts: Object.keys(release.index.hosts).length,
      channels: Object.keys(release.plans),
    },
    revocations: {
      version: revocations.version,
      hosts: revocations.hosts.length,
      closures: revocations.closures.length,
    },
    documents,
    revokedHosts,
    unlistedManifests,
  };
  return { report, release };
}
