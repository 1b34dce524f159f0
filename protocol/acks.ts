// Host-signed acks: signing, reading, the chain digest, and the ONE check every reader makes before
// believing an ack (verifyAck). Shared by the agent (signs its own, verifies peers'), the ack endpoint
// (checks chain + signature, holds no key) and the operator read side (status, trace, dashboard).
import { canonicalBytes, canonicalString, sha256Digest } from './canonical.ts';
import { readEnvelope } from './document.ts';
import { signDocument, verifyEnvelope } from './envelope.ts';
import { BadSignature, UnknownHost, WrongFleet, WrongHost } from './errors.ts';
import { keyIdOf, unb64, type SigningKey } from './keys.ts';
import { LIMITS } from './limits.ts';
import {
  Ack,
  AckBundle,
  type SignedDocument,
  parseWith,
  type ChannelPlan,
} from './schemas/index.ts';
import { parseStrictJson } from './strict-json.ts';

export type SignedAck = SignedDocument<Ack>;

export function signAck(ack: Ack, hostKey: SigningKey): SignedAck {
  return signDocument(Ack.parse(ack), [hostKey]);
}

/** Digest that the next ack's `prev` must carry: SHA-256 of the canonical envelope bytes. */
export function ackDigest(ack: SignedAck): string {
  return sha256Digest(canonicalBytes(ack));
}

/** Strict intake of one ack envelope (size cap, strict JSON, schema). No signature check yet. */
export function readAck(bytes: Uint8Array | string, file = 'ack'): SignedAck {
  return readEnvelope(bytes, Ack, { file, maxBytes: LIMITS.ack, expectType: 'ack' });
}

/**
 * Verifies that `ack` is signed by `hostKeyB64` (the host key named in the signed release) and is
 * about `expectedHost`. Throws WrongHost or BadSignature/UnknownKey.
 */
export function verifyAckSignature(
  ack: SignedAck,
  expectedHost: string,
  hostKeyB64: string,
  file = 'ack',
): void {
  if (ack.signed.host !== expectedHost)
    throw new WrongHost(file, `ack is for host ${ack.signed.host}, expected ${expectedHost}`);
  const publicKey = unb64(hostKeyB64);
  const keyid = keyIdOf(publicKey);
  if (ack.signatures.length !== 1)
    throw new BadSignature(file, 'an ack carries exactly one signature (the host key)');
  verifyEnvelope(ack, {
    file,
    keys: new Map([[keyid, { name: expectedHost, keyid, publicKey }]]),
    threshold: 1,
    role: `host ${expectedHost}`,
  });
}

/** The parts of a verified release an ack is checked against. */
export interface AckTrust {
  /** The fleet of the verified trust root / release: an ack of any other fleet is foreign. */
  fleet: string;
  /** Host -> base64 host key from the signed channel plans: the only keys an ack may be signed with. */
  hostKeys: ReadonlyMap<string, string>;
}

/** Host -> base64 host key of every host in the plans (a record by channel, or a list). */
export function hostKeysOfPlans(
  plans: Readonly<Record<string, ChannelPlan>> | readonly ChannelPlan[],
): Map<string, string> {
  const keys = new Map<string, string>();
  // for...in, not Object.entries: no [key, value] array per host (~2x faster over 10,000 hosts; plans
  // are plain parsed objects, nothing inherited is enumerable).
  for (const p of Object.values(plans))
    for (const host in p.hosts) keys.set(host, p.hosts[host]!.hostKey);
  return keys;
}

/**
 * What an ack claims about itself, checked against the release before any signature work: its fleet,
 * then that a signed plan names its host. Returns that host's key. Throws WrongFleet or UnknownHost
 * naming `source`. Split from verifyAck only so a reader that checks signatures in one batch
 * (read-side/acks.ts) makes the same checks in the same order.
 */
export function checkAckClaims(
  ack: { signed: Pick<SignedAck['signed'], 'fleet' | 'host'> },
  trust: AckTrust,
  source: string,
): string {
  const { fleet, host } = ack.signed;
  if (fleet !== trust.fleet)
    throw new WrongFleet(
      source,
      `ack is for fleet "${fleet}", the verified release is for "${trust.fleet}"`,
    );
  const hostKey = trust.hostKeys.get(host);
  if (hostKey === undefined)
    throw new UnknownHost(source, `host "${host}" is in no channel plan of the verified release`);
  return hostKey;
}

/**
 * The one ack check: the ack is of this fleet, its host is in a signed plan, and it carries exactly
 * one valid signature by that host's key. Throws WrongFleet, UnknownHost, BadSignature or UnknownKey,
 * each naming `source` (where the ack was found). Chain rules (seq, prev) are the caller's: the
 * endpoint enforces the hash chain, agents refuse a peer's regression.
 */
export function verifyAck(ack: SignedAck, trust: AckTrust, source: string): void {
  verifyAckSignature(ack, ack.signed.host, checkAckClaims(ack, trust, source), source);
}

/** One entry of a bundle: where it was found (`file#index`) and its canonical JSON, ready for readAck. */
export interface BundledAck {
  source: string;
  canonical: string;
}

/**
 * Strict intake of a per-wave ack bundle (acks/channels/<ch>/wave-<i>.json). The bundle is unsigned:
 * only its entries count, each to be read and verified on its own.
 */
export function readAckBundle(bytes: Uint8Array | string, file: string): BundledAck[] {
  const bundle = parseWith(
    AckBundle,
    parseStrictJson(bytes, { file, maxBytes: LIMITS.ackBundle }),
    file,
  );
  return bundle.acks.map((a, i) => ({ source: `${file}#${i}`, canonical: canonicalString(a) }));
}
