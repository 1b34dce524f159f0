// revocations.json: signed by the release key, bound by the timestamp (so it can be neither withheld
// separately nor rolled back). Revoked hosts lose their client certificate and their acks stop counting;
// revoked closures are never activated.
import { z } from 'zod';
import {
  SchemaVersion,
  FleetName,
  Version,
  IsoTime,
  HostName,
  StorePath,
  KeyId,
} from './common.ts';

export const Revocations = z.strictObject({
  type: z.literal('revocations'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  version: Version,
  issuedAt: IsoTime,
  hosts: z.array(
    z.strictObject({
      host: HostName,
      /** Host key id whose acks are no longer accepted; null = every key of this host. */
      keyid: KeyId.nullable(),
      /** TLS client certificate serial (hex, as `openssl x509 -serial`) to refuse; null = none known. */
      certSerial: z
        .string()
        .regex(/^[0-9A-F]{1,40}$/, 'must be an uppercase hex serial')
        .nullable(),
      reason: z.string().max(512),
      revokedAt: IsoTime,
    }),
  ),
  closures: z.array(
    z.strictObject({ storePath: StorePath, reason: z.string().max(512), revokedAt: IsoTime }),
  ),
});
export type Revocations = z.infer<typeof Revocations>;
