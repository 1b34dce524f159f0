// Building blocks shared by every signed document schema.
import { z } from 'zod';
import { SHA256_DIGEST } from '../canonical.ts';

export const SCHEMA_VERSION = 1 as const;
export const SchemaVersion = z.literal(SCHEMA_VERSION);

/** DNS-label-like names for fleets, hosts, channels: also safe as file names in the tree. */
export const Name = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9-]{0,62}$/,
    'must be lowercase letters, digits and "-" (1-63 chars, not starting with "-")',
  );
export const HostName = Name;
export const ChannelName = Name;
export const FleetName = Name;

/** Nix store path: /nix/store/<32 chars of Nix base32>-<name>. */
export const StorePath = z
  .string()
  .max(211)
  .regex(
    /^\/nix\/store\/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$/,
    'must be a Nix store path (/nix/store/<32-char hash>-<name>)',
  );

export const Digest = z
  .string()
  .regex(SHA256_DIGEST, 'must be "sha256:" followed by 64 lowercase hex digits');
export const KeyId = z
  .string()
  .regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits (SHA-256 of the public key)');
export const Base64Key32 = z
  .string()
  .regex(/^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/, 'must be base64 of exactly 32 bytes');
export const Base64Sig64 = z
  .string()
  .regex(/^[A-Za-z0-9+/]{85}[AQgw]==$/, 'must be base64 of exactly 64 bytes');
/** Nix binary-cache public key as in nix.conf trusted-public-keys: name:base64(32 bytes). */
export const NixPublicKey = z
  .string()
  .regex(
    /^[A-Za-z0-9._-]+:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/,
    'must be a Nix public key "name:base64"',
  );

const ISO_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/;

/** UTC instant with second precision: 2026-11-25T23:56:46Z. */
export const IsoTime = z
  .string()
  .regex(
    ISO_TIME_PATTERN,
    'must be an RFC 3339 UTC time with second precision (YYYY-MM-DDTHH:MM:SSZ)',
  )
  .refine(isCalendarTime, 'is not a valid calendar time');

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Whether a string of IsoTime's pattern names a real instant: month 1-12, a day of that month
 * (February 29 in the Gregorian leap years), hour 0-23, minute and second 0-59. Exactly what a
 * round trip through Date accepts (Date.parse, then toISOString gives the same text back;
 * tests/protocol/schema-checks.test.ts compares the two), without a Date and its string per time (~1.5 us
 * each, ~60,000 times in a cold dashboard build).
 */
export function isCalendarTime(s: string): boolean {
  // zod runs the refinement after a failed pattern too (both issues are reported, as mkFleet's Nix
  // check reports both): a string of another shape is no calendar time, as the round trip said.
  if (!ISO_TIME_PATTERN.test(s)) return false;
  const n = (at: number, len: number) => Number(s.slice(at, at + len));
  const year = n(0, 4);
  const month = n(5, 2);
  const day = n(8, 2);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1]!;
  return day <= days && n(11, 2) <= 23 && n(14, 2) <= 59 && n(17, 2) <= 59;
}

export const PositiveInt = z.number().int().min(1);
export const NonNegativeInt = z.number().int().min(0);
export const Version = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** A reference from one document to another file of the tree, binding its exact bytes. */
export const FileRef = z.strictObject({
  path: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._/-]*\.json$/, 'must be a tree-relative .json path')
    .refine((p) => !hasParentSegment(p), 'must not contain ".."'),
  digest: Digest,
  length: PositiveInt,
});
export type FileRef = z.infer<typeof FileRef>;

/** Whether one of the path's "/"-separated segments is "..": `p.split('/').includes('..')` without the array. */
export function hasParentSegment(p: string): boolean {
  return p === '..' || p.startsWith('../') || p.endsWith('/..') || p.includes('/../');
}

export function isoTime(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function parseIsoTime(s: string): number {
  return Date.parse(s);
}
