// Host-signed acks. Each host's acks form a hash chain: seq n carries the digest of ack n-1's
// canonical envelope, so the ack endpoint can reject forks and replays without holding any key.
import { z } from 'zod';
import {
  SchemaVersion,
  FleetName,
  HostName,
  IsoTime,
  Digest,
  StorePath,
  Version,
  PositiveInt,
} from './common.ts';
import { ControlEvidence } from './compliance.ts';

export const AckKind = z.enum([
  'started',
  'activated',
  'healthy',
  'heartbeat',
  'failed',
  'rolled-back',
  'deferred',
  'blocked',
]);
export type AckKind = z.infer<typeof AckKind>;

export const ProbeResult = z.strictObject({
  name: z.string().min(1).max(64),
  ok: z.boolean(),
  detail: z.string().max(256),
});

export const Ack = z
  .strictObject({
    type: z.literal('ack'),
    schemaVersion: SchemaVersion,
    fleet: FleetName,
    host: HostName,
    seq: PositiveInt,
    /** Digest of the previous ack's canonical envelope; null only for seq 1. */
    prev: Digest.nullable(),
    time: IsoTime,
    kind: AckKind,
    releaseVersion: Version,
    rolloutId: Digest.nullable(),
    target: StorePath.nullable(),
    current: StorePath.nullable(),
    /** Since when the host has been continuously healthy on `target` (healthy/heartbeat acks). */
    healthySince: IsoTime.nullable(),
    probes: z.array(ProbeResult).max(32),
    reason: z.string().max(512).nullable(),
    /** Runtime compliance controls' results (activated/healthy/failed acks of a compliance channel). */
    evidence: z.array(ControlEvidence).max(32).optional(),
  })
  .superRefine((a, ctx) => {
    if ((a.seq === 1) !== (a.prev === null))
      ctx.addIssue({
        code: 'custom',
        path: ['prev'],
        message: 'must be null exactly when seq is 1',
      });
  });
export type Ack = z.infer<typeof Ack>;

/** Unsigned container the ack endpoint publishes: each entry is a host-signed ack envelope. */
export const AckBundle = z.strictObject({
  type: z.literal('ack-bundle'),
  schemaVersion: SchemaVersion,
  fleet: FleetName,
  channel: z.string().max(63),
  wave: z.number().int().min(0),
  generatedAt: IsoTime,
  acks: z.array(
    z.strictObject({
      signed: z.record(z.string(), z.unknown()),
      signatures: z.array(z.unknown()).max(16),
    }),
  ),
});
export type AckBundle = z.infer<typeof AckBundle>;
