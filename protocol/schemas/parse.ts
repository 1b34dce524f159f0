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

/** `prefix` is the JSON path of `value` inside the file (e.g. "$.signed"). */
export function parseWith<S extends z.ZodType>(
  schema: S,
  value: unknown,
  file: string,
  prefix = '$',
): z.infer<S> {
  const r = schema.safeParse(value, { error: plainIssues });
  if (!r.success) throw new Malformed(file, describeIssues(r.error, prefix));
  return r.data;
}
