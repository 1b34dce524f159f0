// A faster JCS (RFC 8785) serializer for the publisher's hot path: 10,000 host manifests share their
// plan reference, budgets reference, gating plans and probes by object identity, so their canonical text
// is computed once (memo keyed by object) instead of 10,000 times. Output is byte-identical to
// protocol/canonical.ts (the `canonicalize` package); tests/publisher/jcs.test.ts checks that on random
// JSON and on every published document. Only JSON data is accepted: integers, finite numbers, strings
// without lone surrogates, booleans, null, arrays, plain objects (undefined members are skipped, as JCS
// implementations do).
const SURROGATE = /[\uD800-\uDFFF]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function str(s: string): string {
  if (SURROGATE.test(s) && LONE_SURROGATE.test(s)) throw new Error('Lone surrogate is not allowed');
  return JSON.stringify(s);
}

export function fastCanonical(value: unknown, memo?: WeakMap<object, string>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return str(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error('non-finite numbers are not allowed');
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      const cached = memo?.get(value);
      if (cached !== undefined) return cached;
      let out: string;
      if (Array.isArray(value)) {
        out = '[';
        for (let i = 0; i < value.length; i++) {
          const v: unknown = value[i];
          out += (i ? ',' : '') + (v === undefined ? 'null' : fastCanonical(v, memo));
        }
        out += ']';
      } else {
        if (typeof (value as { toJSON?: unknown }).toJSON === 'function')
          throw new Error('objects with toJSON are not plain JSON data');
        const obj = value as Record<string, unknown>;
        const keys = Object.keys(obj).sort();
        out = '{';
        let first = true;
        for (const k of keys) {
          const v = obj[k];
          if (v === undefined) continue;
          out += (first ? '' : ',') + str(k) + ':' + fastCanonical(v, memo);
          first = false;
        }
        out += '}';
      }
      memo?.set(value, out);
      return out;
    }
    default:
      throw new Error(`${typeof value} is not JSON data`);
  }
}
