// The trust root chain. An agent ships with one pinned root and walks forward version by version:
// root n+1 is accepted only if it has version exactly n+1, names the same fleet, and is signed by a
// threshold of root n's root keys AND a threshold of its own root keys (so neither the old nor the new
// key set alone can move the chain). The newest root then says which release keys are valid when, and
// `rejectBefore` refuses every release-signed document issued before a compromise.
import { readEnvelope } from './document.ts';
import { signDocument, signedTextOf, verifyEnvelope } from './envelope.ts';
import {
  Expired,
  MixAndMatch,
  Revoked,
  ThresholdNotMet,
  UnknownKey,
  VerificationError,
} from './errors.ts';
import { b64, unb64, type PublicKey, type SigningKey } from './keys.ts';
import { LIMITS } from './limits.ts';
import { rootPath } from './layout.ts';
import {
  TrustRoot,
  SCHEMA_VERSION,
  parseIsoTime,
  type SignedDocument,
  parseWith,
} from './schemas/index.ts';

export type SignedRoot = SignedDocument<TrustRoot>;

/** A chain longer than this is refused rather than walked (endless-data defence). */
export const MAX_ROOT_CHAIN_STEPS = 1024;

export interface ReleaseKeyGrant {
  key: PublicKey;
  /** RFC 3339 UTC, second precision. */
  validFrom: string;
  validUntil: string;
}

export interface CreateRootOptions {
  fleet: string;
  version: number;
  issuedAt: string;
  expires: string;
  rootKeys: readonly PublicKey[];
  rootThreshold: number;
  releaseKeys: readonly ReleaseKeyGrant[];
  releaseThreshold: number;
  /** Nix binary-cache public keys, `name:base64`. */
  cacheKeys: readonly string[];
  rejectBefore?: string | null;
  /** The operator role (signs controls only); omitted = no controls are accepted under this root. */
  operatorKeys?: readonly ReleaseKeyGrant[];
  operatorThreshold?: number;
  /** The enrolment role (signs enrolment tokens and nonce documents only); omitted = no enrolment. */
  enrolmentKeys?: readonly ReleaseKeyGrant[];
  enrolmentThreshold?: number;
}

const windowedKey = (g: ReleaseKeyGrant) => ({
  keyid: g.key.keyid,
  publicKey: b64(g.key.publicKey),
  name: g.key.name,
  validFrom: g.validFrom,
  validUntil: g.validUntil,
});

/** Builds an unsigned root document; schema violations are Malformed naming the field. */
export function createRoot(o: CreateRootOptions): TrustRoot {
  return parseWith(
    TrustRoot,
    {
      type: 'root',
      schemaVersion: SCHEMA_VERSION,
      fleet: o.fleet,
      version: o.version,
      issuedAt: o.issuedAt,
      expires: o.expires,
      rootKeys: o.rootKeys.map((k) => ({
        keyid: k.keyid,
        publicKey: b64(k.publicKey),
        name: k.name,
      })),
      rootThreshold: o.rootThreshold,
      releaseKeys: o.releaseKeys.map(windowedKey),
      releaseThreshold: o.releaseThreshold,
      cacheKeys: [...o.cacheKeys],
      rejectBefore: o.rejectBefore ?? null,
      ...(o.operatorKeys && o.operatorKeys.length > 0
        ? {
            operatorKeys: o.operatorKeys.map(windowedKey),
            operatorThreshold: o.operatorThreshold ?? 1,
          }
        : {}),
      ...(o.enrolmentKeys && o.enrolmentKeys.length > 0
        ? {
            enrolmentKeys: o.enrolmentKeys.map(windowedKey),
            enrolmentThreshold: o.enrolmentThreshold ?? 1,
          }
        : {}),
    },
    `root v${o.version}`,
  );
}

/**
 * Signs a root. For version 1 pass its own root keys; for a rotation pass a threshold of the previous
 * root's keys plus a threshold of the new root's keys (one key in both sets signs once).
 */
export function signRoot(root: TrustRoot, keys: readonly SigningKey[]): SignedRoot {
  const unique = [...new Map(keys.map((k) => [k.keyid, k])).values()];
  return signDocument(root, unique);
}

export function readRoot(bytes: Uint8Array | string, file: string): SignedRoot {
  return readEnvelope(bytes, TrustRoot, { file, maxBytes: LIMITS.root, expectType: 'root' });
}

export function rootKeyMap(root: TrustRoot): Map<string, PublicKey> {
  return new Map(
    root.rootKeys.map((k) => [
      k.keyid,
      { name: k.name, keyid: k.keyid, publicKey: unb64(k.publicKey) },
    ]),
  );
}

/**
 * Threshold of `signer`'s root keys over `env`. A root signed by none of those keys is a threshold
 * failure of that key set (the signers it needs are known), so UnknownKey becomes ThresholdNotMet.
 */
function requireRootThreshold(env: SignedRoot, signer: TrustRoot, file: string): void {
  try {
    verifyEnvelope(env, {
      file,
      keys: rootKeyMap(signer),
      threshold: signer.rootThreshold,
      role: `root v${signer.version}`,
    });
  } catch (e) {
    if (e instanceof UnknownKey)
      throw new ThresholdNotMet(
        file,
        `0 of the required ${signer.rootThreshold} root v${signer.version} signatures`,
      );
    throw e;
  }
}

/** The pinned root must at least carry a threshold of its own signatures (catches a corrupted pin). */
export function verifyPinnedRoot(pinned: SignedRoot, file = 'pinned root'): void {
  requireRootThreshold(pinned, pinned.signed, file);
}

/** One step of the chain: `next` (already read from `file`) must succeed `current`. */
export function verifyNextRoot(current: SignedRoot, next: SignedRoot, file: string): SignedRoot {
  const want = current.signed.version + 1;
  if (next.signed.version !== want)
    throw new MixAndMatch(file, `contains root version ${next.signed.version}, expected ${want}`);
  if (next.signed.fleet !== current.signed.fleet)
    throw new MixAndMatch(
      file,
      `root for fleet "${next.signed.fleet}", expected "${current.signed.fleet}"`,
    );
  requireRootThreshold(next, current.signed, file);
  requireRootThreshold(next, next.signed, file);
  return next;
}

export function requireRootNotExpired(root: SignedRoot, now: number, file: string): void {
  if (parseIsoTime(root.signed.expires) <= now)
    throw new Expired(file, `trust root v${root.signed.version} expired at ${root.signed.expires}`);
}

/**
 * The one root-chain walker. Walks from the pinned (or last trusted) root forward through
 * root/<n+1>.json until `loadNext` returns undefined. The final root must not be expired unless `now` is
 * null (rotation is how an expired root gets replaced); intermediate roots may be (an agent catching up
 * after a long sleep). Async callers fetch the candidates first (`fetchRootChain` in protocol/verify).
 */
export function verifyRootChain(
  pinned: SignedRoot,
  loadNext: (version: number) => Uint8Array | undefined,
  now: number | null,
  pinnedFile = 'pinned root',
): { root: SignedRoot; chain: SignedRoot[] } {
  verifyPinnedRoot(pinned, pinnedFile);
  const chain = [pinned];
  let current = pinned;
  for (let step = 0; ; step++) {
    const version = current.signed.version + 1;
    const bytes = loadNext(version);
    if (bytes === undefined) break;
    const file = rootPath(version);
    if (step >= MAX_ROOT_CHAIN_STEPS)
      throw new MixAndMatch(file, `root chain longer than ${MAX_ROOT_CHAIN_STEPS} steps`);
    current = verifyNextRoot(current, readRoot(bytes, file), file);
    chain.push(current);
  }
  if (now !== null) requireRootNotExpired(current, now, rootPath(current.signed.version));
  return { root: current, chain };
}

/** Release keys whose validity window contains `at` (validFrom <= at < validUntil). */
export function releaseKeysValidAt(root: TrustRoot, at: number): Map<string, PublicKey> {
  const out = new Map<string, PublicKey>();
  for (const k of root.releaseKeys) {
    if (parseIsoTime(k.validFrom) <= at && at < parseIsoTime(k.validUntil))
      out.set(k.keyid, { name: k.name, keyid: k.keyid, publicKey: unb64(k.publicKey) });
  }
  return out;
}

function allReleaseKeys(root: TrustRoot): Map<string, PublicKey> {
  return new Map(
    root.releaseKeys.map((k) => [
      k.keyid,
      { name: k.name, keyid: k.keyid, publicKey: unb64(k.publicKey) },
    ]),
  );
}

/**
 * Verifies a document signed by release keys (timestamp, revocations, release documents):
 * - issued before the root's `rejectBefore` -> Revoked (the compromise switch revokes every such signature);
 * - a threshold of release keys whose window contains the document's issuedAt;
 * - signed only by release keys of this root whose window does NOT contain issuedAt -> Expired, naming
 *   the key and its window (a retired or not-yet-valid key);
 * - signed by no release key of this root -> UnknownKey; too few -> ThresholdNotMet; a forged signature
 *   by a listed key -> BadSignature.
 * `alsoValidAt` additionally requires the keys to be valid at that instant (the timestamp passes `now`,
 * so a retired key cannot keep a backdated timestamp alive). `fileBytes`, when given, lets the
 * signature be checked over the file's own canonical text instead of re-canonicalising (see envelope.ts).
 */
export function verifyReleaseSigned(
  env: SignedDocument<{ issuedAt: string }>,
  root: TrustRoot,
  file: string,
  alsoValidAt?: number,
  fileBytes?: Uint8Array,
): string[] {
  const issuedAt = parseIsoTime(env.signed.issuedAt);
  if (root.rejectBefore !== null && issuedAt < parseIsoTime(root.rejectBefore)) {
    throw new Revoked(
      file,
      `issued at ${env.signed.issuedAt}, before the trust root's rejectBefore ${root.rejectBefore}`,
    );
  }
  let keys = releaseKeysValidAt(root, issuedAt);
  if (alsoValidAt !== undefined) {
    const atNow = releaseKeysValidAt(root, alsoValidAt);
    keys = new Map([...keys].filter(([id]) => atNow.has(id)));
  }
  const role = 'release';
  const signedText = fileBytes ? signedTextOf(fileBytes, env.signatures) : undefined;
  try {
    return verifyEnvelope(env, { file, keys, threshold: root.releaseThreshold, role, signedText });
  } catch (e) {
    if (!(e instanceof UnknownKey || e instanceof ThresholdNotMet)) throw e;
    const outsideWindow = explainWindow(env, root, file, issuedAt, alsoValidAt);
    throw outsideWindow ?? e;
  }
}

/** If the signatures would count with the windows ignored, the failure is a key used outside its window. */
function explainWindow(
  env: SignedDocument<{ issuedAt: string }>,
  root: TrustRoot,
  file: string,
  issuedAt: number,
  alsoValidAt: number | undefined,
): VerificationError | undefined {
  let signers: string[];
  try {
    signers = verifyEnvelope(env, {
      file,
      keys: allReleaseKeys(root),
      threshold: 1,
      role: 'release',
    });
  } catch (e) {
    if (e instanceof UnknownKey) return undefined;
    throw e;
  }
  const valid = (k: TrustRoot['releaseKeys'][number], at: number) =>
    parseIsoTime(k.validFrom) <= at && at < parseIsoTime(k.validUntil);
  const bad = root.releaseKeys.filter(
    (k) =>
      signers.includes(k.keyid) &&
      (!valid(k, issuedAt) || (alsoValidAt !== undefined && !valid(k, alsoValidAt))),
  );
  if (bad.length === 0) return undefined;
  const k = bad[0]!;
  const when = !valid(k, issuedAt)
    ? `issuedAt ${env.signed.issuedAt}`
    : `verification time ${new Date(alsoValidAt!).toISOString()}`;
  return new Expired(
    file,
    `signed by release key "${k.name}" (${k.keyid.slice(0, 16)}) valid from ${k.validFrom} until ${k.validUntil}, which does not include the ${when}`,
  );
}

type WindowedKey = TrustRoot['releaseKeys'][number];

function keysValidAt(keys: readonly WindowedKey[], at: number): Map<string, PublicKey> {
  const out = new Map<string, PublicKey>();
  for (const k of keys) {
    if (parseIsoTime(k.validFrom) <= at && at < parseIsoTime(k.validUntil))
      out.set(k.keyid, { name: k.name, keyid: k.keyid, publicKey: unb64(k.publicKey) });
  }
  return out;
}

/**
 * Verifies a document signed by the operator role (controls): a threshold of operator keys whose window
 * contains the document's issuedAt. A root without the role accepts no controls (UnknownKey); a
 * document signed by release keys (CI) is UnknownKey too: CI cannot pause, resume or retry anything.
 * An operator key used outside its window -> Expired naming the key.
 */
export function verifyOperatorSigned(
  env: SignedDocument<{ issuedAt: string }>,
  root: TrustRoot,
  file: string,
  fileBytes?: Uint8Array,
): string[] {
  return verifyRoleSigned(env, root, file, 'operator', fileBytes);
}

/**
 * Verifies a document signed by the enrolment role (enrolment tokens, enrolment-<n>.json), with the
 * same rules as the operator role: a root without the role enrols nobody (UnknownKey), and neither
 * release nor operator signatures count.
 */
export function verifyEnrolmentSigned(
  env: SignedDocument<{ issuedAt: string }>,
  root: TrustRoot,
  file: string,
  fileBytes?: Uint8Array,
): string[] {
  return verifyRoleSigned(env, root, file, 'enrolment', fileBytes);
}

/** What each separate role of the root may sign (named in the refusal of a root without the role). */
const ROLE_SIGNS = { operator: 'controls', enrolment: 'enrolment tokens' } as const;
type SeparateRole = keyof typeof ROLE_SIGNS;

function roleOf(
  root: TrustRoot,
  role: SeparateRole,
): { keys: WindowedKey[]; threshold: number } | undefined {
  const keys = role === 'operator' ? root.operatorKeys : root.enrolmentKeys;
  const threshold = role === 'operator' ? root.operatorThreshold : root.enrolmentThreshold;
  return keys === undefined || threshold === undefined ? undefined : { keys, threshold };
}

function verifyRoleSigned(
  env: SignedDocument<{ issuedAt: string }>,
  root: TrustRoot,
  file: string,
  role: SeparateRole,
  fileBytes?: Uint8Array,
): string[] {
  const grant = roleOf(root, role);
  if (grant === undefined) {
    throw new UnknownKey(
      file,
      `trust root v${root.version} has no ${role} role, so no ${ROLE_SIGNS[role]} are accepted`,
    );
  }
  const issuedAt = parseIsoTime(env.signed.issuedAt);
  const signedText = fileBytes ? signedTextOf(fileBytes, env.signatures) : undefined;
  try {
    return verifyEnvelope(env, {
      file,
      keys: keysValidAt(grant.keys, issuedAt),
      threshold: grant.threshold,
      role,
      signedText,
    });
  } catch (e) {
    if (!(e instanceof UnknownKey || e instanceof ThresholdNotMet)) throw e;
    const all = new Map(
      grant.keys.map((k) => [
        k.keyid,
        { name: k.name, keyid: k.keyid, publicKey: unb64(k.publicKey) },
      ]),
    );
    let signers: string[];
    try {
      signers = verifyEnvelope(env, { file, keys: all, threshold: 1, role });
    } catch {
      throw e;
    }
    const k = grant.keys.find((x) => signers.includes(x.keyid) && !keysValidAt([x], issuedAt).size);
    if (k === undefined) throw e;
    throw new Expired(
      file,
      `signed by ${role} key "${k.name}" (${k.keyid.slice(0, 16)}) valid ` +
        `from ${k.validFrom} until ${k.validUntil}, which does not include the ` +
        `issuedAt ${env.signed.issuedAt}`,
    );
  }
}
