// Binding the operator's controls into the timestamp. `nixfleet control ...` writes an operator-signed
// controls-<n>.json into CI's tree directory; the next publish or refresh (the scheduled CI job) finds
// the highest version there, checks it against the operator role of the newest trust root and binds it
// by path, digest and length. CI holds no operator key: it can delay a control (not bind it), never
// forge one; and agents refuse a timestamp naming an older controls version than they have seen.
import { existsSync, linkSync, readFileSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  fsyncDir,
  writeFileAtomic,
  envelopeBytes,
  signDocument,
  type SigningKey,
  SCHEMA_VERSION,
  isoTime,
  parseIsoTime,
  parseWith,
  verifyOperatorSigned,
  sha256Digest,
  CONTROLS_FILE_PATTERN,
  controlsPath,
  LIMITS,
  type FileRef,
  Controls,
  noControls,
  type SignedDocument,
  type TrustRoot,
  type Timestamp,
  verifyControlsDocument,
  isVerificationError,
} from '../protocol/index.ts';
import { PublishRefused } from './errors.ts';

/** Highest n of the controls-<n>.json files in the tree directory (0 = none). */
export function highestControlsVersion(treeDir: string): number {
  return highestFileVersion(treeDir, CONTROLS_FILE_PATTERN);
}

/** Highest n of the top-level files matching `pattern` (its group 1 is n; 0 = none). */
export function highestFileVersion(treeDir: string, pattern: RegExp): number {
  if (!existsSync(treeDir)) return 0;
  let max = 0;
  for (const f of readdirSync(treeDir)) {
    const m = pattern.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/**
 * Reads and verifies a versioned, role-signed document of the tree directory (controls-<n>.json,
 * enrolment-<n>.json): size cap, `verify` (role signatures, fleet), and the version its name promises.
 */
export function readVersionedDocument<T extends { version: number }>(
  treeDir: string,
  file: string,
  version: number,
  o: { maxBytes: number; what: string; verify: (bytes: Buffer, file: string) => SignedDocument<T> },
): { env: SignedDocument<T>; bytes: Buffer; file: string } {
  const bytes = readFileSync(join(treeDir, file));
  if (bytes.length > o.maxBytes)
    throw new PublishRefused(`${file} is larger than ${o.maxBytes} bytes`);
  const env = o.verify(bytes, file);
  if (env.signed.version !== version)
    throw new PublishRefused(`${file} contains ${o.what} version ${env.signed.version}`);
  return { env, bytes, file };
}

/** Reads and verifies controls-<version>.json of the tree directory (operator role of `root`, fleet, version). */
export function readTreeControls(
  treeDir: string,
  version: number,
  root: TrustRoot,
): { env: SignedDocument<Controls>; bytes: Buffer; file: string } {
  return readVersionedDocument(treeDir, controlsPath(version), version, {
    maxBytes: LIMITS.controls,
    what: 'controls',
    verify: (bytes, file) => verifyControlsDocument(bytes, root, file),
  });
}

/**
 * The controls binding for the next timestamp: the newest controls-<n>.json, verified against the newest
 * root. Never older than what the current timestamp binds (agents would refuse it as a rollback).
 */
export function controlsBinding(
  treeDir: string,
  root: TrustRoot,
  current: Timestamp | undefined,
): { version: number; file: FileRef } | undefined {
  return boundDocumentBinding({
    treeDir,
    root,
    what: 'controls',
    role: 'operator',
    version: highestControlsVersion(treeDir),
    bound: current?.controls?.version ?? 0,
    pathOf: controlsPath,
    read: (version) => readTreeControls(treeDir, version, root),
  });
}

/**
 * The binding of a role-signed, versioned document (controls, enrolment nonces) for the next timestamp:
 * the newest version in the tree, verified against the newest root, never older than what the current
 * timestamp binds (agents would refuse it as a rollback).
 */
export function boundDocumentBinding(o: {
  treeDir: string;
  root: TrustRoot;
  what: string;
  role: string;
  version: number;
  bound: number;
  pathOf: (version: number) => string;
  read: (version: number) => { bytes: Uint8Array; file: string };
}): { version: number; file: FileRef } | undefined {
  if (o.version === 0 && o.bound === 0) return undefined;
  if (o.version < o.bound)
    throw new PublishRefused(
      `the tree's newest ${o.what} are v${o.version}, but timestamp.json already binds v${o.bound}; restore ${o.pathOf(o.bound)}`,
    );
  try {
    const { bytes, file } = o.read(o.version);
    return {
      version: o.version,
      file: { path: file, digest: sha256Digest(bytes), length: bytes.length },
    };
  } catch (e) {
    if (isVerificationError(e))
      throw new PublishRefused(
        `${e.file} does not verify against the ${o.role} role of trust root ` +
          `v${o.root.version} (${e.code}: ${e.detail}); refusing to bind it (remove it, or ` +
          `sign a newer ${o.what} version)`,
      );
    throw e;
  }
}

/** What an operator edits: the controls in force, without the envelope fields. */
export type ControlsBody = Pick<
  Controls,
  'paused' | 'resumedHalts' | 'retries' | 'quarantineClears'
>;

export interface WriteControlsOptions {
  treeDir: string;
  /** The newest verified trust root (its operator role must accept `keys`). */
  root: TrustRoot;
  /** Operator keys: at least the root's operatorThreshold of them. */
  keys: readonly SigningKey[];
  now: number;
  /** The change: gets the controls now in force (a copy) and `now` as ISO, returns the new ones. */
  edit: (current: ControlsBody, at: string) => ControlsBody;
}

export interface WriteControlsResult {
  version: number;
  file: string;
  controls: Controls;
  previousVersion: number;
}

/** The controls in force in the tree directory (newest controls-<n>.json, verified), or none. */
export function currentTreeControls(
  treeDir: string,
  root: TrustRoot,
): { version: number; controls: Controls | null } {
  const version = highestControlsVersion(treeDir);
  if (version === 0) return { version, controls: null };
  return { version, controls: readTreeControls(treeDir, version, root).env.signed };
}

/**
 * `nixfleet control ...`: signs the next controls version with operator keys and writes it as a new,
 * immutable controls-<n+1>.json. Refused (typed error, nothing written) when the keys do not meet the
 * operator threshold, when the root has no operator role, or when another operator wrote n+1 meanwhile.
 */
export function writeControls(o: WriteControlsOptions): WriteControlsResult {
  const { version: previousVersion, controls: previous } = currentTreeControls(o.treeDir, o.root);
  const at = isoTime(o.now);
  if (previous && parseIsoTime(previous.issuedAt) > o.now)
    throw new PublishRefused(
      `controls v${previousVersion} were issued at ${previous.issuedAt}, after now (${at}); is the clock wrong?`,
    );
  const base = previous ?? noControls(o.root.fleet);
  const body = o.edit(
    structuredClone({
      paused: base.paused,
      resumedHalts: base.resumedHalts,
      retries: base.retries,
      quarantineClears: base.quarantineClears,
    }),
    at,
  );
  const version = previousVersion + 1;
  const file = controlsPath(version);
  const doc = parseWith(
    Controls,
    {
      type: 'controls',
      schemaVersion: SCHEMA_VERSION,
      fleet: o.root.fleet,
      version,
      issuedAt: at,
      ...body,
    },
    file,
  );
  const env = signDocument(doc, o.keys);
  // Check what agents will check before anything is written (threshold, role, key windows).
  verifyOperatorSigned(env, o.root, file);
  const bytes = envelopeBytes(env);
  writeNewFile(join(o.treeDir, file), bytes);
  return { version, file, controls: doc, previousVersion };
}

/** Atomic and exclusive: the file appears complete or not at all, and an existing one is never replaced. */
export function writeNewFile(path: string, bytes: Uint8Array): void {
  const tmp = join(
    dirname(path),
    `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  writeFileAtomic(tmp, bytes);
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST')
      throw new PublishRefused(
        `${basename(path)} already exists: another version was signed at the same time; run the command again`,
      );
    throw e;
  } finally {
    unlinkSync(tmp);
  }
  fsyncDir(dirname(path));
}
