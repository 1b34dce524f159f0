// The operator's read side against a control plane URL (`nixfleet status --url`): the same documents an
// agent fetches, over the same mTLS client (agent/http-client.ts), verified by the same release walk
// (protocol/verify) against the operator's pinned root. The control plane is not trusted: it only
// transports signed documents and host-signed acks, and everything it serves is verified exactly as it
// would be from a directory. Read-only: nothing is ever posted.
//
// Acks: the per-wave bundles (one request per wave, each holding the latest ack of every host of the
// wave), then the latest-ack file of any host no bundle covered.
import { readFileSync } from 'node:fs';
import {
  readAckBundle,
  isVerificationError,
  ackBundlePath,
  latestAckPath,
  LIMITS,
  type SignedRoot,
  type TreeSource,
} from '../protocol/index.ts';
import { HttpClient, NotFound, Unreachable } from '../agent/index.ts';
import { AckCollector, type VerifiedAcks } from './acks.ts';
import {
  ackTrustOf,
  fleetStateOf,
  releaseForOperator,
  type FleetState,
  type FleetStateOptions,
} from './load.ts';
import { releaseAllowingStaleFrom, type VerifiedRelease } from './release.ts';

export interface RemoteOptions {
  /** The control plane's base URL (https://cp.example:8443/). */
  url: string;
  /** PEM files: the fleet CA, the operator's client certificate and key. */
  caFile: string;
  certFile: string;
  keyFile: string;
  timeoutMs?: number;
  retries?: number;
}

/**
 * The control plane refused to serve a document the view needs (HTTP 403): typically a host (OU=agent)
 * certificate, which may not read other hosts' manifests. Nothing partial is shown: the view needs an
 * operator certificate.
 */
export class RemoteAccessDenied extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(
      `the control plane refused ${path} (${detail}): the operator view reads every ` +
        `host's manifest and needs an operator certificate (OU=operator, \`nixfleet ` +
        `pki issue-operator\`)`,
    );
    this.name = 'RemoteAccessDenied';
  }
}

/** The control plane could not be reached or answered unexpectedly (after the client's retries). */
export class RemoteUnavailable extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'RemoteUnavailable';
  }
}

export function openRemote(o: RemoteOptions): HttpClient {
  return new HttpClient({
    baseUrl: o.url,
    ca: readFileSync(o.caFile),
    cert: readFileSync(o.certFile),
    key: readFileSync(o.keyFile),
    certFile: o.certFile,
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    ...(o.retries === undefined ? {} : { retries: o.retries }),
  });
}

/** GET a tree file: undefined when absent (404), RemoteAccessDenied on 403, RemoteUnavailable otherwise. */
async function get(
  client: HttpClient,
  path: string,
  maxBytes: number,
): Promise<Uint8Array | undefined> {
  try {
    return await client.get(path, maxBytes, { conditional: false });
  } catch (e) {
    if (e instanceof NotFound) return undefined;
    if (e instanceof Unreachable && e.status === 403) throw new RemoteAccessDenied(path, e.message);
    if (e instanceof Unreachable) throw new RemoteUnavailable(path, e.message);
    throw e;
  }
}

/** The tree as the release walk reads it. No listing over HTTP: the unlisted-manifests finding is disk-only. */
export function remoteTreeSource(client: HttpClient): TreeSource {
  return { fetch: (path, maxBytes) => get(client, path, maxBytes) };
}

/** Every ack the operator view needs, verified against the release's host keys like any other intake. */
export async function readRemoteAcks(
  client: HttpClient,
  release: VerifiedRelease,
): Promise<VerifiedAcks> {
  const collector = new AckCollector(ackTrustOf(release));
  const covered = new Set<string>();
  for (const plan of Object.values(release.plans)) {
    for (const w of plan.waves) {
      const path = ackBundlePath(plan.channel, w.index);
      const bytes = await get(client, path, LIMITS.ackBundle);
      if (bytes === undefined) continue;
      try {
        for (const a of readAckBundle(bytes, path)) collector.add(a.canonical, a.source);
      } catch (e) {
        if (!isVerificationError(e)) throw e;
        collector.rejected.push({ source: path, host: null, code: e.code, reason: e.detail });
        continue;
      }
      // A bundle is unsigned: it only saves requests. A host counts as covered once its ack verified.
      for (const h of w.hosts) covered.add(h);
    }
  }
  const verifiedHosts = new Set(collector.result().acks.map((a) => a.host));
  for (const host of [...release.hostKeys.keys()].sort()) {
    if (covered.has(host) && verifiedHosts.has(host)) continue;
    const path = latestAckPath(host);
    const bytes = await get(client, path, LIMITS.ack);
    if (bytes !== undefined) collector.add(bytes, path, host);
  }
  return collector.result();
}

/** loadFleetState against a control plane: verify the tree it serves, read and verify the acks, evaluate. */
export async function loadRemoteFleetState(
  o: RemoteOptions,
  pinnedRoot: SignedRoot,
  opts: FleetStateOptions,
): Promise<FleetState> {
  const client = openRemote(o);
  try {
    const { release, stale } = releaseForOperator(
      await releaseAllowingStaleFrom(remoteTreeSource(client), o.url, pinnedRoot, opts),
    );
    return fleetStateOf(release, stale, await readRemoteAcks(client, release), opts);
  } finally {
    client.close();
  }
}
