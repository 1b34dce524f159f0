// `nixfleet evidence export` and the table `nixfleet evidence verify` prints. The export reads a tree
// (or a control plane directory) through the one release walk of an evidence bundle
// (protocol/evidence.ts walkForEvidence), the acks through the read side's one verified intake
// (readAckHistory: the ack log, then the tree), keeps the scope's hosts, checks each host's chain as
// the verifier will, and assembles the bundle. Bundle format and verification: protocol/evidence.ts.
import { existsSync } from 'node:fs';
import {
  acksSince,
  assembleEvidenceBundle,
  canonicalString,
  checkAckChain,
  diskTreeSource,
  servedRoot,
  Stale,
  TIMESTAMP_PATH,
  walkForEvidence,
  type EvidenceBundle,
  type EvidenceReport,
  type EvidenceScope,
  type SignedAck,
  type SignedRoot,
} from '../protocol/index.ts';
import {
  acksDirOf,
  defaultAckLogOf,
  readAckHistory,
  type AckRejection,
  type AckTrust,
} from './acks.ts';
import { oneLine, table } from './format.ts';

export interface ExportEvidenceOptions {
  /** A tree as `nixfleet publish` writes it, or a control plane directory (`current` -> the tree). */
  dir: string;
  pinnedRoot: SignedRoot;
  scope: EvidenceScope;
  /** ms: the instant the tree is verified at (as `nixfleet verify` does) and the bundle is dated. */
  now: number;
  clockSkewSeconds?: number;
  /** Ack logs to read (replicas as their union); default: the directory's own log, if it has one. */
  ackLogs?: readonly string[];
}

export interface EvidenceExport {
  bundle: EvidenceBundle;
  /** The logs read (none: only the tree's latest acks, which rarely form a whole chain). */
  logs: string[];
  /** Acks of the scope's hosts that did not verify: not in the bundle (listed for the operator). */
  rejected: AckRejection[];
}

/** Throws a VerificationError (the tree, or AckChainBroken: a host's history has a hole) or UnknownScopeChannel. */
export async function exportEvidence(o: ExportEvidenceOptions): Promise<EvidenceExport> {
  const treeRoot = servedRoot(o.dir);
  if (treeRoot === null || !existsSync(treeRoot))
    throw new Stale(TIMESTAMP_PATH, `no tree installed in ${o.dir}`);
  const walk = await walkForEvidence(
    diskTreeSource(treeRoot).fetch,
    o.pinnedRoot,
    { channel: o.scope.channel },
    {
      now: o.now,
      ...(o.clockSkewSeconds === undefined ? {} : { clockSkewSeconds: o.clockSkewSeconds }),
    },
  );
  // The keys an ack must be signed with are those the scope's verified manifests name.
  const hostKeys = new Map<string, string>();
  for (const [host, { manifest }] of walk.release.manifests) hostKeys.set(host, manifest.hostKey);
  const trust: AckTrust = { fleet: walk.release.root.signed.fleet, hostKeys };
  const logs = o.ackLogs
    ? [...o.ackLogs]
    : [defaultAckLogOf(o.dir)].filter((f): f is string => f !== null);
  const history = readAckHistory({
    acksDir: acksDirOf(o.dir),
    logFile: logs[0] ?? null,
    replicaLogs: logs.slice(1),
    trust,
  });
  const acks = new Map<string, SignedAck[]>();
  for (const [host, list] of chainsByHost(history.envelopes)) {
    const kept = acksSince(list, o.scope.since);
    checkAckChain(host, kept, o.scope.since, `acks of ${host}`);
    acks.set(host, kept);
  }
  return {
    bundle: assembleEvidenceBundle({ walk, scope: o.scope, acks, exportedAt: o.now }),
    logs,
    // Acks of hosts outside the scope are "unknown" to its trust: not a finding of this export.
    rejected: history.rejected.filter((r) => r.host === null || hostKeys.has(r.host)),
  };
}

/** Per host, its distinct acks (by canonical bytes: the log and the tree hold the same ones) in seq order. */
function chainsByHost(envelopes: readonly SignedAck[]): Map<string, SignedAck[]> {
  const byHost = new Map<string, Map<string, SignedAck>>();
  for (const a of envelopes) {
    let m = byHost.get(a.signed.host);
    if (!m) byHost.set(a.signed.host, (m = new Map()));
    m.set(canonicalString(a), a);
  }
  const out = new Map<string, SignedAck[]>();
  for (const host of [...byHost.keys()].sort())
    out.set(
      host,
      [...byHost.get(host)!.values()].sort((x, y) => x.signed.seq - y.signed.seq),
    );
  return out;
}

/** The verified bundle as text: what was verified, then one row per host and control. */
export function renderEvidenceReport(r: EvidenceReport): string {
  const controls = r.hosts.reduce((n, h) => n + h.controls.length, 0);
  const failing = r.hosts.reduce(
    (n, h) => n + h.controls.filter((c) => c.status === 'failing').length,
    0,
  );
  const lines = [
    `OK: evidence bundle ${r.file}: fleet "${r.fleet}", release ${r.release.version} (issued ${r.release.issuedAt}), verified as of ${r.verifiedAsOf}`,
    `  trust root v${r.root.version} (chain ${r.root.chain.join(' -> ')}); ${r.documents} signed documents, ${r.acks} host-signed acks of ${r.hosts.length} hosts, every digest matched`,
    `  scope: ${r.scope.channel === null ? 'whole fleet' : `channel ${r.scope.channel}`}, acks ${r.scope.since === null ? 'from seq 1' : `since ${r.scope.since}`}; exported ${r.exportedAt}`,
    `  controls: ${controls} (${failing} failing)`,
    '',
  ];
  const rows: string[][] = [];
  for (const h of r.hosts) {
    const mode = h.mode ?? '-';
    const revoked = h.revoked === null ? '' : ` [REVOKED: ${oneLine(h.revoked)}]`;
    if (h.controls.length === 0) {
      rows.push([
        h.host,
        h.channel,
        mode,
        '-',
        '-',
        '-',
        '-',
        '-',
        `no compliance controls${revoked}`,
      ]);
      continue;
    }
    for (const c of h.controls)
      rows.push([
        h.host,
        h.channel,
        mode,
        c.framework,
        c.control,
        c.kind,
        c.status === 'ok' ? 'ok' : c.status === 'failing' ? 'FAILING' : 'NO EVIDENCE',
        c.kind === 'static'
          ? `release ${r.release.version}`
          : c.time === undefined
            ? '-'
            : `${c.time} (ack seq ${c.ackSeq}, exit ${c.exitCode ?? 'none'})`,
        oneLine(c.evidence) + revoked,
      ]);
  }
  lines.push(
    ...table(
      ['HOST', 'CHANNEL', 'MODE', 'FRAMEWORK', 'CONTROL', 'KIND', 'RESULT', 'SIGNED', 'EVIDENCE'],
      rows,
    ),
  );
  return lines.join('\n');
}
