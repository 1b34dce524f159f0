// Trust root: signed by the org root keys (offline). Names the valid release keys (with validity
// windows, for rotation with overlap), the Nix binary-cache keys, thresholds, expiry, and the
// `rejectBefore` compromise switch, and optionally an operator role (keys + threshold + windows) whose
// only power is signing controls documents (pause, resume, retry, clear quarantine; see controls.ts).
// A root without the role allows no controls. Likewise an optional enrolment role (keys + threshold +
// windows) whose only power is signing enrolment tokens and the enrolment nonce documents (enrolment.ts);
// a root without it allows no enrolment. Version n+1 must be signed by a threshold of version n's root keys
// AND a threshold of its own.
import { z } from 'zod';
import {
  SchemaVersion,
  FleetName,
  Version,
  IsoTime,
  KeyId,
  Base64Key32,
  NixPublicKey,
  PositiveInt,
} from './common.ts';

export const RootKey = z.strictObject({
  keyid: KeyId,
  publicKey: Base64Key32,
  name: z.string().max(64),
});
export const ReleaseKey = z.strictObject({
  keyid: KeyId,
  publicKey: Base64Key32,
  name: z.string().max(64),
  validFrom: IsoTime,
  validUntil: IsoTime,
});

export const TrustRoot = z
  .strictObject({
    type: z.literal('root'),
    schemaVersion: SchemaVersion,
    fleet: FleetName,
    version: Version,
    issuedAt: IsoTime,
    expires: IsoTime,
    rootKeys: z.array(RootKey).min(1).max(16),
    rootThreshold: PositiveInt,
    releaseKeys: z.array(ReleaseKey).min(1).max(16),
    releaseThreshold: PositiveInt,
    cacheKeys: z.array(NixPublicKey).max(16),
    /** Operator role: signs controls-<n>.json only. Absent = no controls are accepted (older roots). */
    operatorKeys: z.array(ReleaseKey).min(1).max(16).optional(),
    operatorThreshold: PositiveInt.optional(),
    /** Enrolment role: signs enrolment tokens and enrolment-<n>.json only. Absent = no enrolment. */
    enrolmentKeys: z.array(ReleaseKey).min(1).max(16).optional(),
    enrolmentThreshold: PositiveInt.optional(),
    /** Release-key signed documents issued before this instant are refused (compromise switch). */
    rejectBefore: IsoTime.nullable(),
  })
  .superRefine((r, ctx) => {
    if (r.rootThreshold > r.rootKeys.length)
      ctx.addIssue({
        code: 'custom',
        path: ['rootThreshold'],
        message: `is ${r.rootThreshold} but only ${r.rootKeys.length} root keys are listed`,
      });
    if (r.releaseThreshold > r.releaseKeys.length)
      ctx.addIssue({
        code: 'custom',
        path: ['releaseThreshold'],
        message: `is ${r.releaseThreshold} but only ${r.releaseKeys.length} release keys are listed`,
      });
    if (new Set(r.rootKeys.map((k) => k.keyid)).size !== r.rootKeys.length)
      ctx.addIssue({ code: 'custom', path: ['rootKeys'], message: 'lists a key twice' });
    if (new Set(r.releaseKeys.map((k) => k.keyid)).size !== r.releaseKeys.length)
      ctx.addIssue({ code: 'custom', path: ['releaseKeys'], message: 'lists a key twice' });
    if ((r.operatorKeys === undefined) !== (r.operatorThreshold === undefined))
      ctx.addIssue({
        code: 'custom',
        path: ['operatorThreshold'],
        message: 'operatorKeys and operatorThreshold come together',
      });
    if (r.operatorKeys !== undefined && r.operatorThreshold !== undefined) {
      if (r.operatorThreshold > r.operatorKeys.length)
        ctx.addIssue({
          code: 'custom',
          path: ['operatorThreshold'],
          message: `is ${r.operatorThreshold} but only ${r.operatorKeys.length} operator keys are listed`,
        });
      if (new Set(r.operatorKeys.map((k) => k.keyid)).size !== r.operatorKeys.length)
        ctx.addIssue({ code: 'custom', path: ['operatorKeys'], message: 'lists a key twice' });
      // One key, one role: a release key that could also sign controls would let CI (which holds it) pause or resume alone.
      const release = new Set(r.releaseKeys.map((k) => k.keyid));
      r.operatorKeys.forEach((k, i) => {
        if (release.has(k.keyid))
          ctx.addIssue({
            code: 'custom',
            path: ['operatorKeys', i],
            message: 'is also a release key; the operator role needs its own keys',
          });
        if (Date.parse(k.validUntil) <= Date.parse(k.validFrom))
          ctx.addIssue({
            code: 'custom',
            path: ['operatorKeys', i, 'validUntil'],
            message: 'must be after validFrom',
          });
      });
    }
    checkEnrolmentRole(r, ctx);
    r.releaseKeys.forEach((k, i) => {
      if (Date.parse(k.validUntil) <= Date.parse(k.validFrom))
        ctx.addIssue({
          code: 'custom',
          path: ['releaseKeys', i, 'validUntil'],
          message: 'must be after validFrom',
        });
    });
  });
export type TrustRoot = z.infer<typeof TrustRoot>;

type RootShape = {
  releaseKeys: { keyid: string }[];
  operatorKeys?: { keyid: string }[] | undefined;
  enrolmentKeys?: { keyid: string; validFrom: string; validUntil: string }[] | undefined;
  enrolmentThreshold?: number | undefined;
};

/**
 * The enrolment role, like the operator role: keys and threshold come together, and its keys are its
 * own. A release key (CI) that could mint tokens could enrol a host of its choosing; an operator key
 * that could would merge two roles the root separates.
 */
function checkEnrolmentRole(r: RootShape, ctx: z.RefinementCtx): void {
  if ((r.enrolmentKeys === undefined) !== (r.enrolmentThreshold === undefined))
    ctx.addIssue({
      code: 'custom',
      path: ['enrolmentThreshold'],
      message: 'enrolmentKeys and enrolmentThreshold come together',
    });
  if (r.enrolmentKeys === undefined || r.enrolmentThreshold === undefined) return;
  if (r.enrolmentThreshold > r.enrolmentKeys.length)
    ctx.addIssue({
      code: 'custom',
      path: ['enrolmentThreshold'],
      message: `is ${r.enrolmentThreshold} but only ${r.enrolmentKeys.length} enrolment keys are listed`,
    });
  if (new Set(r.enrolmentKeys.map((k) => k.keyid)).size !== r.enrolmentKeys.length)
    ctx.addIssue({ code: 'custom', path: ['enrolmentKeys'], message: 'lists a key twice' });
  const release = new Set(r.releaseKeys.map((k) => k.keyid));
  const operator = new Set((r.operatorKeys ?? []).map((k) => k.keyid));
  r.enrolmentKeys.forEach((k, i) => {
    if (release.has(k.keyid) || operator.has(k.keyid))
      ctx.addIssue({
        code: 'custom',
        path: ['enrolmentKeys', i],
        message: `is also ${release.has(k.keyid) ? 'a release' : 'an operator'} key; the enrolment role needs its own keys`,
      });
    if (Date.parse(k.validUntil) <= Date.parse(k.validFrom))
      ctx.addIssue({
        code: 'custom',
        path: ['enrolmentKeys', i, 'validUntil'],
        message: 'must be after validFrom',
      });
  });
}
