// zod issues -> plain words: the one place that words schema violations, for the fleet validator
// (publisher/validate.ts) and the signed documents (./parse.ts) alike. Messages a schema gives itself
// (regex and refine texts, "must be between 1 and 100") are kept: zod prefers them over this map.
// nix/lib/check.nix words its checks the same way (tests/nix/differential.test.ts keeps them equal).
import type { z } from 'zod';
import { didYouMean } from '../suggest.ts';

type RawIssue = z.core.$ZodRawIssue;

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
  record: 'an object',
};

const quote = (v: unknown): string => JSON.stringify(v);
const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** "must have at least 3 characters" / "must be at most 10": the size words for one origin. */
function sizeWords(origin: string, bound: number, atLeast: boolean): string {
  const side = atLeast ? 'at least' : 'at most';
  if (origin === 'string')
    return atLeast && bound === 1
      ? 'must not be empty'
      : `must have ${side} ${plural(bound, 'character')}`;
  if (origin === 'array')
    return atLeast && bound === 1
      ? 'must not be empty'
      : `must have ${side} ${plural(bound, 'item')}`;
  return `must be ${side} ${bound}`;
}

/** Field names of an object schema (for "did you mean" on unknown fields). */
function knownFields(inst: unknown): string[] {
  const shape = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } })?._zod?.def
    ?.shape;
  return shape ? Object.keys(shape) : [];
}

/** Single-field object forms of a union (Selector, Threshold): their field names, or undefined. */
function unionFields(inst: unknown): string[] | undefined {
  const options = (inst as { _zod?: { def?: { options?: unknown[] } } })?._zod?.def?.options ?? [];
  const fields = options.map(knownFields);
  return options.length > 0 && fields.every((f) => f.length === 1)
    ? fields.map((f) => f[0]!).sort()
    : undefined;
}

/** `unknown field "chanel" (did you mean "channel"?)`; several keys are listed in sorted order. */
export function unknownFieldsWords(
  keys: readonly string[],
  known: readonly string[],
  present: readonly string[],
): string {
  const candidates = known.filter((k) => !present.includes(k));
  const each = [...keys].sort().map((k) => `${quote(k)}${didYouMean(k, candidates)}`);
  return `unknown field${keys.length === 1 ? '' : 's'} ${each.join(', ')}`;
}

/** The plain message for one zod issue, or undefined to keep zod's own (rare codes). */
export function issueMessage(iss: RawIssue): string | undefined {
  // A missing field fails as a wrong type, a wrong value or no union member alike: it is "required".
  if (
    iss.input === undefined &&
    (iss.code === 'invalid_type' || iss.code === 'invalid_value' || iss.code === 'invalid_union')
  )
    return 'required';
  switch (iss.code) {
    case 'invalid_type':
      return `must be ${TYPE_WORDS[iss.expected] ?? iss.expected}`;
    case 'invalid_value':
      return iss.values.length === 1
        ? `must be ${quote(iss.values[0])}`
        : `must be one of ${iss.values.map(quote).join(', ')}`;
    case 'unrecognized_keys': {
      const input = iss.input;
      const present = input !== null && typeof input === 'object' ? Object.keys(input) : [];
      return unknownFieldsWords(iss.keys, knownFields(iss.inst), present);
    }
    case 'too_small':
      return sizeWords(iss.origin, Number(iss.minimum), true);
    case 'too_big':
      return sizeWords(iss.origin, Number(iss.maximum), false);
    case 'invalid_union': {
      // A discriminated union (Probe.kind) whose tag matched no member.
      const options = (iss as { options?: unknown[] }).options;
      if (options) return `must be one of ${options.map(quote).join(', ')}`;
      const fields = unionFields(iss.inst);
      return fields
        ? `must be an object with exactly one valid field of ${fields.map(quote).join(', ')}`
        : 'matches none of the allowed forms';
    }
    case 'invalid_key': {
      const inner = iss.issues[0]?.message;
      return inner ? `is not a valid name: ${inner}` : 'is not a valid name';
    }
    case 'invalid_format':
      return 'has an invalid format';
    default:
      return undefined;
  }
}

/** The error map to pass to safeParse: `schema.safeParse(value, { error: plainIssues })`. */
export const plainIssues: z.core.$ZodErrorMap = (iss) => issueMessage(iss);
