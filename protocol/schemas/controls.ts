// controls-<n>.json: the operator's signed controls (DESIGN.md section 2 extended: an operator role of
// the trust root, separate from the CI release key). A state document, not an event: each version
// carries every control in force, so the newest one alone says what holds. Bound by the timestamp like
// the revocations (so it can be neither withheld separately nor replayed), and agents remember the
// highest version seen. Every entry carries the instant it was signed: a control only ever acts on
// evidence (failures, quarantines) from before that instant, so a control left in the document never
// excuses a later failure.
import { z } from 'zod';
import {
  SchemaVersion,
  FleetName,
  Version,
  IsoTime,
  HostName,
  ChannelName,
  Digest,
  StorePath,
} from './common.ts';

const Reason = z.string().max(512);

export const Controls = z
  .strictObject({
    type: z.literal('controls'),
    schemaVersion: SchemaVersion,
    fleet: FleetName,
    version: Version,
    issuedAt: IsoTime,
    /** Channels whose hosts start nothing new (confirmations and rollbacks in flight continue). */
    paused: z
      .array(z.strictObject({ channel: ChannelName, since: IsoTime, reason: Reason }))
      .max(1024),
    /** A halted rollout resumes: failures signed (or started) up to `acceptedAt` no longer count towards the halt. */
    resumedHalts: z
      .array(
        z.strictObject({
          channel: ChannelName,
          rolloutId: Digest,
          acceptedAt: IsoTime,
          reason: Reason,
        }),
      )
      .max(1024),
    /** The host may try this rollout again: its failure reported up to `at` no longer counts, its quarantine of the target is lifted. */
    retries: z
      .array(z.strictObject({ host: HostName, rolloutId: Digest, at: IsoTime, reason: Reason }))
      .max(4096),
    /** Agents drop local quarantine entries that began before `at` (host null = every host, target null = every target). */
    quarantineClears: z
      .array(
        z.strictObject({
          host: HostName.nullable(),
          target: StorePath.nullable(),
          at: IsoTime,
          reason: Reason,
        }),
      )
      .max(4096),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.paused.forEach((p, i) => {
      if (seen.has(p.channel))
        ctx.addIssue({
          code: 'custom',
          path: ['paused', i, 'channel'],
          message: `channel "${p.channel}" is listed twice`,
        });
      seen.add(p.channel);
    });
  });
export type Controls = z.infer<typeof Controls>;

/** An empty controls state (what a root without any controls document means). */
export function noControls(fleet: string): Omit<Controls, 'version' | 'issuedAt'> {
  return {
    type: 'controls',
    schemaVersion: 1,
    fleet,
    paused: [],
    resumedHalts: [],
    retries: [],
    quarantineClears: [],
  };
}
