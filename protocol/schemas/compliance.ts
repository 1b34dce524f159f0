// Compliance: named frameworks of controls a channel must meet (issue 13). Two halves of one contract:
// - what the release signs per host (`HostCompliance`, in the host manifest): the channel's mode, the
//   static controls' results as CI evaluated them, and the runtime controls the agent must run;
// - what a host signs back (`ControlEvidence`, in its acks): each runtime control's result, with a digest
//   of its whole output and a short excerpt, so an auditor can match evidence to a command's output.
import { z } from 'zod';
import { Digest } from './common.ts';

/** Framework and control ids: lowercase, short, stable (they appear in evidence bundles for years). */
export const ComplianceId = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,62}$/,
    'must be lowercase letters, digits, ".", "_" or "-" (1-63 chars)',
  );

/**
 * `enforce`: a failing static control refuses the release; a failing runtime control fails the activation.
 * `permissive`: failures are recorded (signed release, signed acks) and shown, nothing is refused.
 */
export const ComplianceMode = z.enum(['enforce', 'permissive']);
export type ComplianceMode = z.infer<typeof ComplianceMode>;

/** An excerpt is for a human reading a table, the digest is the proof: 256 characters is enough to recognise output. */
export const EXCERPT_MAX = 256;

/** A static control's result as CI evaluated it from the host's configuration (signed in the manifest). */
export const StaticControlResult = z.strictObject({
  framework: ComplianceId,
  control: ComplianceId,
  ok: z.boolean(),
  /** What was found, e.g. `services.openssh.settings.PasswordAuthentication = false`. */
  evidence: z.string().max(EXCERPT_MAX),
});
export type StaticControlResult = z.infer<typeof StaticControlResult>;

/** A runtime control the agent runs after activation: argv executed directly (never through a shell). */
export const RuntimeControl = z.strictObject({
  framework: ComplianceId,
  control: ComplianceId,
  argv: z.array(z.string().max(4096)).min(1).max(64),
  expectExit: z.number().int().min(0).max(255),
  timeoutMs: z.number().int().min(1).max(600_000),
});
export type RuntimeControl = z.infer<typeof RuntimeControl>;

/** The compliance part of a host manifest; absent when the host's channel names no framework. */
export const HostCompliance = z.strictObject({
  mode: ComplianceMode,
  frameworks: z.array(ComplianceId).min(1).max(32),
  static: z.array(StaticControlResult).max(256),
  runtime: z.array(RuntimeControl).max(32),
});
export type HostCompliance = z.infer<typeof HostCompliance>;

/** One runtime control's result, signed by the host inside an ack. */
export const ControlEvidence = z.strictObject({
  framework: ComplianceId,
  control: ComplianceId,
  ok: z.boolean(),
  /** null when the command did not exit (timed out, could not be started, killed by a signal). */
  exitCode: z.number().int().min(0).max(255).nullable(),
  /** sha256 of the control's whole stdout+stderr as captured (before truncation to the excerpt). */
  outputDigest: Digest,
  excerpt: z.string().max(EXCERPT_MAX),
});
export type ControlEvidence = z.infer<typeof ControlEvidence>;

/**
 * The compliance part of a channel plan: what every host of the channel must show in its acks. In the
 * plan (not only in each manifest) because the reconciler judges a peer's soak from the plan: in an
 * `enforce` channel a healthy ack counts as a soak proof only with passing evidence for each of these.
 */
export const ChannelCompliance = z.strictObject({
  mode: ComplianceMode,
  frameworks: z.array(ComplianceId).min(1).max(32),
  runtime: z.array(RuntimeControl).max(32),
});
export type ChannelCompliance = z.infer<typeof ChannelCompliance>;
