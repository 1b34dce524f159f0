// What a client remembers between runs so that nothing older than what it has seen is accepted again.
// Callers persist it as JSON (atomically) after every successful updateTrust.
import { z } from 'zod';
import { TrustRoot, SignatureEntry, IsoTime, NonNegativeInt, parseWith } from '../schemas/index.ts';
import { parseStrictJson } from '../strict-json.ts';
import type { SignedRoot } from '../trust-root.ts';

export const ClientState = z.strictObject({
  type: z.literal('nixfleet-client-state'),
  schemaVersion: z.literal(1),
  /** The newest root envelope verified so far (starts as the pinned root). */
  trustedRoot: z.strictObject({
    signed: TrustRoot,
    signatures: z.array(SignatureEntry).min(1).max(16),
  }),
  /** 0 = none seen yet. */
  highestReleaseVersion: NonNegativeInt,
  highestTimestampIssuedAt: IsoTime.nullable(),
  highestRevocationsVersion: NonNegativeInt,
  /** Absent in state files written before controls existed: none seen. */
  highestControlsVersion: NonNegativeInt.default(0),
  /** Absent in state files written before enrolment existed: none seen. */
  highestEnrolmentVersion: NonNegativeInt.default(0),
});
export type ClientState = z.infer<typeof ClientState>;

export function initialClientState(pinnedRoot: SignedRoot): ClientState {
  return ClientState.parse({
    type: 'nixfleet-client-state',
    schemaVersion: 1,
    trustedRoot: pinnedRoot,
    highestReleaseVersion: 0,
    highestTimestampIssuedAt: null,
    highestRevocationsVersion: 0,
    highestControlsVersion: 0,
    highestEnrolmentVersion: 0,
  });
}

export function parseClientState(bytes: Uint8Array | string, file: string): ClientState {
  return parseWith(ClientState, parseStrictJson(bytes, { file, maxBytes: 256 * 1024 }), file);
}
