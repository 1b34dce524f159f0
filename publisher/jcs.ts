// A faster JCS (RFC 8785) serializer for the publisher's hot path: 10,000 host manifests share their
// plan reference, budgets reference, gating plans and probes by object identity, so their canonical text
// is computed once (memo keyed by object) instead of 10,000 times. Output is byte-identical to
// protocol/canonical.ts (the `canonicalize` package); tests/publisher/jcs.test.ts checks that on random
// JSON and on every published document. Only JSON data is accepted: integers, finite numbers, strings
// without lone surrogates, booleans, null, arrays, plain objects (undefined members are skipped, as JCS
// implementations do).

function str(s: string): string {
  if (!s.isWellFormed()) throw new Error('Lone surrogate is not allowed');
  return JSON.stringify(s);
}

/** Canonical texts by object identity: a WeakMap, or a Map that lives as long as one release build. */
export interface CanonicalMemo {
  get(key: object): string | undefined;
  set(key: object, text: string): unknown;
}

export function fastCanonical(value: unknown, memo?: CanonicalMemo): string {
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

/**
 * The canonical text of many objects that share most of their members (a channel's 10,000 host
 * manifests differ only in host, key, target and wave): `canonicalTemplate(shared, ownKeys)` returns
 * `(own) => fastCanonical({ ...shared, ...own })`, with the shared members serialised once, in their
 * JCS position among the own ones, so each object pays only for its own members. An own member that is
 * undefined is left out, as fastCanonical leaves it out. `own` must have no keys beyond `ownKeys`
 * (they would be dropped): callers type it as the document type's own part.
 */
export function canonicalTemplate<Own extends Record<string, unknown>>(
  shared: Record<string, unknown>,
  ownKeys: readonly (keyof Own & string)[],
  memo?: CanonicalMemo,
): (own: Own) => string {
  for (const k of ownKeys)
    if (Object.hasOwn(shared, k)) throw new Error(`internal: "${k}" is both shared and own`);
  const keys = [...Object.keys(shared).filter((k) => shared[k] !== undefined), ...ownKeys].sort();
  // Runs of shared members become one literal (members joined by commas); each own key is a slot.
  const segments: ({ text: string } | { key: string; prefix: string })[] = [];
  let run: string[] = [];
  const endRun = () => {
    if (run.length > 0) segments.push({ text: run.join(',') });
    run = [];
  };
  for (const k of keys) {
    if (Object.hasOwn(shared, k)) run.push(str(k) + ':' + fastCanonical(shared[k], memo));
    else {
      endRun();
      segments.push({ key: k, prefix: str(k) + ':' });
    }
  }
  endRun();
  return (own) => {
    let out = '{';
    let first = true;
    for (const s of segments) {
      let member: string;
      if ('text' in s) member = s.text;
      else {
        const v = own[s.key];
        if (v === undefined) continue;
        member = s.prefix + fastCanonical(v, memo);
      }
      out += first ? member : ',' + member;
      first = false;
    }
    return out + '}';
  };
}

/**
 * fastCanonical of plain JSON data (the fleet as read, 2.6 MB at 10,000 hosts, whose digest every
 * release signs; a channel's rollout material), at about the cost of one JSON.stringify: JSON.stringify writes JCS as
 * soon as every object's members come in JCS order (numbers, strings, literals and nesting are written
 * the same way), so a replacer hands it each object whose keys are out of order as a copy in order.
 * Anything JSON.stringify would write differently from fastCanonical (lone surrogates, non-finite
 * numbers, toJSON, integer-like keys that V8 lists first in numeric order, "__proto__") goes the slow
 * way, which writes it or refuses it exactly as fastCanonical does. ~40 ms instead of ~100 (cold).
 */
export function canonicalJsonData(value: unknown): string {
  try {
    const out = JSON.stringify(value, inJcsOrder);
    if (out !== undefined) return out;
  } catch (e) {
    if (!(e instanceof NotPlainData)) throw e;
  }
  return fastCanonical(value);
}

class NotPlainData extends Error {}

/** Keys in JCS order (UTF-16 code units, as `<` compares strings), none with a lone surrogate. */
function keysInOrder(keys: readonly string[]): boolean {
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (!k.isWellFormed()) throw new NotPlainData();
    if (i > 0 && !(keys[i - 1]! < k)) return false;
  }
  return true;
}

function inJcsOrder(this: unknown, key: string, value: unknown): unknown {
  // A toJSON method replaced the holder's value (fastCanonical refuses such objects).
  if (value !== (this as Record<string, unknown>)[key]) throw new NotPlainData();
  switch (typeof value) {
    case 'string':
      if (!value.isWellFormed()) throw new NotPlainData();
      return value;
    case 'number':
      if (!Number.isFinite(value)) throw new NotPlainData();
      return value;
    case 'boolean':
    case 'undefined':
      return value;
    case 'object': {
      if (value === null || Array.isArray(value)) return value;
      const keys = Object.keys(value);
      if (keysInOrder(keys)) return value;
      keys.sort();
      const sorted: Record<string, unknown> = {};
      for (const k of keys) {
        if (k === '__proto__') throw new NotPlainData();
        sorted[k] = (value as Record<string, unknown>)[k];
      }
      // Integer-like keys stay first whatever the insertion order: not expressible, go the slow way.
      if (!keysInOrder(Object.keys(sorted))) throw new NotPlainData();
      return sorted;
    }
    default:
      throw new NotPlainData();
  }
}
