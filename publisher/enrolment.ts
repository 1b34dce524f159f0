// Minting and withdrawing enrolment tokens (`nixfleet enrol token | withdraw`), on the operator's side
// with the enrolment key(s) of the trust root. A token is a signed, bearer, one-time document for one
// host and its host key; the nonces still allowed live in enrolment-<n>.json, one immutable file per
// version written into CI's tree directory, which CI's next refresh (or publish) binds into the
// timestamp like the operator's controls. So a minted token works once that timestamp is served, and a
// withdrawn one stops working the same way; the endpoint refuses a nonce it already used on its own.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import {
  envelopeBytes,
  signDocument,
  type SigningKey,
  SCHEMA_VERSION,
  isoTime,
  parseIsoTime,
  parseWith,
  verifyEnrolmentSigned,
  enrolmentPath,
  ENROLMENT_FILE_PATTERN,
  LIMITS,
  EnrolmentNonces,
  EnrolmentToken,
  MAX_TOKEN_LIFETIME_SECONDS,
  type FileRef,
  type SignedDocument,
  type Timestamp,
  type TrustRoot,
  verifyEnrolmentDocument,
} from '../protocol/index.ts';
import { PublishRefused } from './errors.ts';
import {
  boundDocumentBinding,
  highestFileVersion,
  readVersionedDocument,
  writeNewFile,
} from './controls.ts';

type Nonces = EnrolmentNonces['nonces'];

/** Reads and verifies enrolment-<version>.json of the tree directory (enrolment role of `root`, fleet, version). */
export function readTreeEnrolment(
  treeDir: string,
  version: number,
  root: TrustRoot,
): { env: SignedDocument<EnrolmentNonces>; bytes: Buffer; file: string } {
  return readVersionedDocument(treeDir, enrolmentPath(version), version, {
    maxBytes: LIMITS.enrolment,
    what: 'enrolment',
    verify: (bytes, file) => verifyEnrolmentDocument(bytes, root, file),
  });
}

/** The enrolment binding for the next timestamp (publish and refresh), like the controls'. */
export function enrolmentBinding(
  treeDir: string,
  root: TrustRoot,
  current: Timestamp | undefined,
): { version: number; file: FileRef } | undefined {
  return boundDocumentBinding({
    treeDir,
    root,
    what: 'enrolment nonces',
    role: 'enrolment',
    version: highestFileVersion(treeDir, ENROLMENT_FILE_PATTERN),
    bound: current?.enrolment?.version ?? 0,
    pathOf: enrolmentPath,
    read: (version) => readTreeEnrolment(treeDir, version, root),
  });
}

/** The nonces in force in the tree directory (newest enrolment-<n>.json, verified), or none. */
export function currentTreeNonces(
  treeDir: string,
  root: TrustRoot,
): { version: number; nonces: Nonces; issuedAt: string | null } {
  const version = highestFileVersion(treeDir, ENROLMENT_FILE_PATTERN);
  if (version === 0) return { version, nonces: [], issuedAt: null };
  const doc = readTreeEnrolment(treeDir, version, root).env.signed;
  return { version, nonces: doc.nonces, issuedAt: doc.issuedAt };
}

interface SignOptions {
  treeDir: string;
  /** The newest verified trust root (its enrolment role must accept `keys`). */
  root: TrustRoot;
  /** Enrolment keys: at least the root's enrolmentThreshold of them. */
  keys: readonly SigningKey[];
  now: number;
}

/** Signs the next nonce document (expired nonces pruned) and writes it exclusively. */
function writeNonces(
  o: SignOptions,
  edit: (nonces: Nonces) => Nonces,
): { version: number; file: string } {
  const current = currentTreeNonces(o.treeDir, o.root);
  if (current.issuedAt !== null && parseIsoTime(current.issuedAt) > o.now)
    throw new PublishRefused(
      `${enrolmentPath(current.version)} was issued at ${current.issuedAt}, after now (${isoTime(o.now)}); is the clock wrong?`,
    );
  const live = current.nonces.filter((n) => parseIsoTime(n.expires) > o.now);
  const version = current.version + 1;
  const file = enrolmentPath(version);
  const doc = parseWith(
    EnrolmentNonces,
    {
      type: 'enrolment',
      schemaVersion: SCHEMA_VERSION,
      fleet: o.root.fleet,
      version,
      issuedAt: isoTime(o.now),
      nonces: edit(live),
    },
    file,
  );
  const env = signDocument(doc, o.keys);
  // What the endpoint will check, before anything is written (role, threshold, key windows).
  verifyEnrolmentSigned(env, o.root, file);
  writeNewFile(join(o.treeDir, file), envelopeBytes(env));
  return { version, file };
}

export interface MintOptions extends SignOptions {
  host: string;
  /** keyid of the host key the signed release lists for `host`. */
  hostKeyId: string;
  /** ms since the epoch; at most MAX_TOKEN_LIFETIME_SECONDS after `now`. */
  expires: number;
}

export interface MintResult {
  token: SignedDocument<EnrolmentToken>;
  version: number;
  file: string;
}

/** Mints a token: adds a fresh random nonce to the next nonce document, then signs the token naming it. */
export function mintEnrolmentToken(o: MintOptions): MintResult {
  if (o.expires <= o.now || o.expires - o.now > MAX_TOKEN_LIFETIME_SECONDS * 1000)
    throw new PublishRefused(
      `--expires ${isoTime(o.expires)}: a token must expire after now and within ${MAX_TOKEN_LIFETIME_SECONDS / 86_400} days`,
    );
  const nonce = randomBytes(32).toString('hex');
  const expires = isoTime(o.expires);
  const token = parseWith(
    EnrolmentToken,
    {
      type: 'enrolment-token',
      schemaVersion: SCHEMA_VERSION,
      fleet: o.root.fleet,
      host: o.host,
      hostKeyId: o.hostKeyId,
      nonce,
      issuedAt: isoTime(o.now),
      expires,
    },
    'enrolment token',
  );
  const env = signDocument(token, o.keys);
  verifyEnrolmentSigned(env, o.root, 'enrolment token');
  const written = writeNonces(o, (live) => [...live, { nonce, host: o.host, expires }]);
  return { token: env, ...written };
}

export interface WithdrawOptions extends SignOptions {
  /** Nonces to withdraw; or every nonce of `host`. */
  nonces?: readonly string[];
  host?: string;
}

/** Withdraws nonces (by nonce or by host): the next nonce document no longer lists them. */
export function withdrawEnrolmentNonces(o: WithdrawOptions): {
  version: number;
  file: string;
  withdrawn: Nonces;
} {
  const current = currentTreeNonces(o.treeDir, o.root).nonces;
  const hit = (n: Nonces[number]) => (o.nonces ?? []).includes(n.nonce) || n.host === o.host;
  const withdrawn = current.filter(hit);
  if (withdrawn.length === 0)
    throw new PublishRefused(
      `no allowed nonce matches ${o.host !== undefined ? `host "${o.host}"` : (o.nonces ?? []).join(', ')}: nothing to withdraw`,
    );
  return { ...writeNonces(o, (live) => live.filter((n) => !hit(n))), withdrawn };
}
