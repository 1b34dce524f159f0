// zod -> Malformed: the one place that turns schema violations into a typed error naming file and field.
// The words come from ./issues.ts, shared with the fleet validator.
import type { z } from 'zod';
import { Malformed } from '../errors.ts';
import { plainIssues } from './issues.ts';

export function describeIssues(error: z.ZodError, prefix = '$'): string {
  return (
    error.issues
      .slice(0, 8)
      .map((i) => {
        const path = i.path.length
          ? i.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('')
          : '';
        return `${prefix}${path}: ${i.message}`;
      })
      .join('; ') + (error.issues.length > 8 ? `; (+${error.issues.length - 8} more)` : '')
  );
}

/**
 * zod compiles a parser for an object schema the first time it parses with its JIT (`new Function`),
 * which pays only for a schema that parses many values. A one-shot command parses most documents
 * once (the pinned root, the timestamp, a manifest): compiling them was ~0.05 s of a warm `status
 * --host` (docs/benchmarks.md "operator"). So a schema parses without the JIT (zod's `jitless`, the
 * same checks) until it has parsed JIT_AFTER values; bulk intake (acks, a cold view's latest-ack
 * files) then gets the compiled parser.
 */
export const JIT_AFTER = 8;
const parsedBefore = new WeakMap<object, number>();

/** `prefix` is the JSON path of `value` inside the file (e.g. "$.signed"). */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  file: string,
  prefix = '$',
): z.infer<S> {
  const n = parsedBefore.get(schema) ?? 0;
  if (n < JIT_AFTER) parsedBefore.set(schema, n + 1);
  const r = schema.safeParse(value, { error: plainIssues, jitless: n < JIT_AFTER });
  if (!r.success) throw new Malformed(file, describeIssues(r.error, prefix));
  return r.data;
}
