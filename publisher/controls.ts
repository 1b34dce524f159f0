// Binding the operator's controls into the timestamp. `nixfleet control ...` writes an operator-signed
// controls-<n>.json into CI's tree directory; the next publish or refresh (the scheduled CI job) finds
// the highest version there, checks it against the operator role of the newest trust root and binds it
// by path, digest and length. CI holds no operator key: it can delay a control (not bind it), never
// forge one; and agents refuse a timestamp naming an older controls version than they have seen.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Digest } from '../protocol/canonical.ts';
import { CONTROLS_FILE_PATTERN, controlsPath } from '../protocol/layout.ts';
import { LIMITS } from '../protocol/limits.ts';
import type { FileRef } from '../protocol/schemas/common.ts';
import type { Controls } from '../protocol/schemas/controls.ts';
import type { SignedDocument } from '../protocol/schemas/envelope.ts';
import type { TrustRoot } from '../protocol/schemas/root.ts';
import type { Timestamp } from '../protocol/schemas/timestamp.ts';
import { verifyControlsDocument } from '../protocol/verify/controls.ts';
import { isVerificationError } from '../protocol/errors.ts';
import { PublishRefused } from './errors.ts';

/** Highest n of the controls-<n>.json files in the tree directory (0 = none). */
export function highestControlsVersion(treeDir: string): number {
  if (!existsSync(treeDir)) return 0;
  let max = 0;
  for (const f of readdirSync(treeDir)) {
    const m = CONTROLS_FILE_PATTERN.exec(f);
    if (m) max = Math.max(max, Number(m[1]));
  }
  return max;
}

/** Reads and verifies controls-<version>.json of the tree directory (operator role of `root`, fleet, version). */
export function readTreeControls(treeDir: string, version: number, root: TrustRoot): { env: SignedDocument<Controls>; bytes: Buffer; file: string } {
  const file = controlsPath(version);
  const bytes = readFileSync(join(treeDir, file));
  if (bytes.length > LIMITS.controls) throw new PublishRefused(`${file} is larger than ${LIMITS.controls} bytes`);
  const env = verifyControlsDocument(bytes, root, file);
  if (env.signed.version !== version) throw new PublishRefused(`${file} contains controls version ${env.signed.version}`);
  return { env, bytes, file };
}

/**
 * The controls binding for the next timestamp: the newest controls-<n>.json, verified against the newest
 * root. Never older than what the current timestamp binds (agents would refuse it as a rollback).
 */
export function controlsBinding(treeDir: string, root: TrustRoot, current: Timestamp | undefined): { version: number; file: FileRef } | undefined {
  const version = highestControlsVersion(treeDir);
  const bound = current?.controls?.version ?? 0;
  if (version === 0 && bound === 0) return undefined;
  if (version < bound) throw new PublishRefused(`the tree's newest controls are v${version}, but timestamp.json already binds v${bound}; restore ${controlsPath(bound)}`);
  try {
    const { bytes, file } = readTreeControls(treeDir, version, root);
    return { version, file: { path: file, digest: sha256Digest(bytes), length: bytes.length } };
  } catch (e) {
    if (isVerificationError(e)) throw new PublishRefused(`${e.file} does not verify against the operator role of trust root v${root.version} (${e.code}: ${e.detail}); refusing to bind it (remove it, or sign a newer controls version)`);
    throw e;
  }
}
