// timestamp.json: the only mutable entry point. Short expiry, re-signed on a schedule. Binds the
// current release index, the current revocations and (once an operator signed any) the current
// controls and enrolment nonces by exact digest and length.
import { z } from 'zod';
import { SchemaVersion, FleetName, Version, IsoTime, FileRef } from './common.ts';

export const Timestamp = z.strictObject({
  type: z.literal('timestamp'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  issuedAt: IsoTime,
  expires: IsoTime,
  /** The trust root version the signer used; an agent behind this must walk its root chain forward first. */
  rootVersion: Version,
  release: z.strictObject({ version: Version, index: FileRef }),
  revocations: z.strictObject({ version: Version, file: FileRef }),
  /** The newest operator-signed controls document; absent until the first control is signed. */
  controls: z.strictObject({ version: Version, file: FileRef }).optional(),
  /** The newest enrolment nonce document (enrolment-<n>.json); absent until the first token is minted. */
  enrolment: z.strictObject({ version: Version, file: FileRef }).optional(),
});
export type Timestamp = z.infer<typeof Timestamp>;
