// The operator's controls document, as the timestamp binds it: operator-role signature (never the
// release key's), fleet, exact bytes, the version the timestamp names, and never older than a version
// this client has already seen (a replayed "resume" or an un-paused channel is a rollback attempt).
import { readEnvelope } from '../document.ts';
import { LIMITS } from '../limits.ts';
import { TIMESTAMP_PATH } from '../layout.ts';
import { Controls, type SignedDocument, type TrustRoot, type Timestamp } from '../schemas/index.ts';
import { verifyOperatorSigned } from '../trust-root.ts';
import { requireBoundVersion, requireFleet, requireNotFutureDated } from './documents.ts';

export const readControls = (b: Uint8Array, file: string) =>
  readEnvelope(b, Controls, { file, maxBytes: LIMITS.controls, expectType: 'controls' });

/** A controls document on its own: operator signature, fleet, not issued after `now` + skew. */
export function verifyControlsDocument(
  bytes: Uint8Array,
  root: TrustRoot,
  file: string,
  now?: number,
  clockSkewSeconds = 300,
): SignedDocument<Controls> {
  const env = readControls(bytes, file);
  verifyOperatorSigned(env, root, file, bytes);
  requireFleet(env.signed, root, file);
  if (now !== undefined) requireNotFutureDated(env.signed.issuedAt, now, clockSkewSeconds, file);
  return env;
}

/** The controls the timestamp binds (call only when `ts.controls` is set). */
export function verifyControls(
  bytes: Uint8Array,
  ts: Timestamp,
  root: TrustRoot,
  highestSeen: number,
  now: number,
  clockSkewSeconds: number,
): SignedDocument<Controls> {
  const ref = ts.controls!;
  const file = ref.file.path;
  const env = verifyControlsDocument(bytes, root, file, now, clockSkewSeconds);
  requireBoundVersion(bytes, env.signed, ref, highestSeen, file, TIMESTAMP_PATH);
  return env;
}
