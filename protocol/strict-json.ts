// Strict JSON intake (I-JSON, RFC 7493, plus the restrictions our signed documents need), applied to
// every byte that crosses a trust boundary BEFORE any signature check: a parser that silently keeps the
// last of two duplicate keys would let two verifiers read the same signed bytes differently.
// Rejected: invalid UTF-8, duplicate object keys, "__proto__" keys, non-integer or unsafe numbers,
// lone surrogates, nesting deeper than maxDepth, and input over maxBytes. Errors name the JSON path.
import { Malformed, TooLarge } from './errors.ts';

export interface StrictJsonOptions {
  /** Label used in error messages (usually the tree-relative file path). */
  file: string;
  maxBytes: number;
  maxDepth?: number;
}

const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);
/** Invalid UTF-8 throws; a leading BOM is dropped (RFC 8259 lets a parser ignore it). */
const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * The text strict intake parses from `bytes` (a leading BOM dropped). For bytes known to have passed
 * intake before, decoded again: `JSON.parse` of their plain UTF-8 string would meet the BOM and throw.
 */
export function intakeText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function parseStrictJson(input: Uint8Array | string, opts: StrictJsonOptions): unknown {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.byteLength;
  if (size > opts.maxBytes)
    throw new TooLarge(opts.file, `${size} bytes exceeds the limit of ${opts.maxBytes}`);
  let text: string;
  if (typeof input === 'string') text = input;
  else {
    try {
      text = intakeText(input);
    } catch {
      throw new Malformed(opts.file, 'input is not valid UTF-8');
    }
  }
  const maxDepth = opts.maxDepth ?? 64;
  return (
    acceptedByJsonParse(text, maxDepth) ?? new Parser(text, opts.file, maxDepth).parseDocument()
  );
}

/**
 * The reference parser alone (every rule checked as it reads, refusals naming the JSON path): what
 * parseStrictJson's fast way must agree with (tests/protocol/strict-json.test.ts).
 */
export function parseStrictJsonReference(text: string, file: string, maxDepth = 64): unknown {
  return new Parser(text, file, maxDepth).parseDocument();
}

// The fast way, for text the rules accept (nearly all of it): V8's JSON.parse, the floor (~2x faster
// than the parser below on the publisher's 6 MB of fleet and previous release), then what it does not
// check, on the text and on the values it built. Anything short of certain acceptance (JSON.parse
// refuses, or a rule may be broken) gives undefined, and the reference parser takes the text in or
// refuses it, naming the path: every refusal keeps its words, and nothing the parser refuses gets in.
//  - duplicate keys: JSON.parse keeps the last, so its objects have fewer members in all than the
//    text has ':' outside strings (exactly one per member);
//  - non-integer numbers: a '.' or 'E' outside strings, or an 'e' after a digit ("true" and "false"
//    have the only other ones);
//  - unsafe integers, -0, "__proto__" keys, nesting deeper than maxDepth, lone surrogates (checked
//    only when the text has a \u escape): seen on the values built.

/** The value, or undefined for "let the parser decide" (a document that is `null` goes that way too). */
function acceptedByJsonParse(text: string, maxDepth: number): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const members = membersInText(text);
  if (members === undefined) return undefined;
  const seen = { members: 0, surrogates: text.includes('\\u') };
  if (!withinRules(value, 0, maxDepth, seen) || seen.members !== members) return undefined;
  return value;
}

/** Integers, strings and keys as the rules want them, counting object members; false: let the parser decide. */
function withinRules(
  v: unknown,
  depth: number,
  maxDepth: number,
  seen: { members: number; surrogates: boolean },
): boolean {
  if (depth > maxDepth) return false;
  switch (typeof v) {
    case 'number':
      return Number.isSafeInteger(v) && !Object.is(v, -0);
    case 'string':
      return !seen.surrogates || v.isWellFormed();
    case 'object': {
      if (v === null) return true;
      if (Array.isArray(v)) {
        for (const x of v) if (!withinRules(x, depth + 1, maxDepth, seen)) return false;
        return true;
      }
      // JSON.parse makes plain objects: for-in sees their own members only.
      for (const k in v) {
        if (k === '__proto__' || (seen.surrogates && !k.isWellFormed())) return false;
        seen.members++;
        if (!withinRules((v as Record<string, unknown>)[k], depth + 1, maxDepth, seen))
          return false;
      }
      return true;
    }
    default:
      return true;
  }
}

/**
 * The ':' outside strings (one per object member) of text JSON.parse accepted, or undefined at a sign
 * of a non-integer number. Strings are skipped with indexOf, to the first quote after an even run of
 * backslashes.
 */
function membersInText(s: string): number | undefined {
  let colons = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      let q = s.indexOf('"', i + 1);
      while (s.charCodeAt(q - 1) === 92) {
        let b = q - 1;
        while (s.charCodeAt(b - 1) === 92) b--;
        if ((q - b) % 2 === 0) break;
        q = s.indexOf('"', q + 1);
      }
      if (q < 0) return undefined; // not reached on text JSON.parse accepted
      i = q;
    } else if (c === 58) colons++;
    else if (c === 46 || c === 69 || (c === 101 && isDigit(s.charCodeAt(i - 1)))) return undefined;
  }
  return colons;
}

const isDigit = (c: number) => c >= 48 && c <= 57;

class Parser {
  private pos = 0;
  private readonly path: (string | number)[] = [];
  constructor(
    private readonly s: string,
    private readonly file: string,
    private readonly maxDepth: number,
  ) {}

  parseDocument(): unknown {
    this.ws();
    const v = this.value(0);
    this.ws();
    if (this.pos !== this.s.length) this.fail('unexpected data after the JSON value');
    return v;
  }

  private where(): string {
    let p = '$';
    for (const seg of this.path)
      p +=
        typeof seg === 'number'
          ? `[${seg}]`
          : /^[A-Za-z_$][\w$]*$/.test(seg)
            ? `.${seg}`
            : `[${JSON.stringify(seg)}]`;
    return p;
  }

  private fail(msg: string): never {
    throw new Malformed(this.file, `${msg} at ${this.where()} (offset ${this.pos})`);
  }

  private ws(): void {
    const s = this.s;
    let c = s.charCodeAt(this.pos);
    while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++this.pos);
  }

  private value(depth: number): unknown {
    if (depth > this.maxDepth) this.fail(`nesting deeper than ${this.maxDepth}`);
    const c = this.s.charCodeAt(this.pos);
    switch (c) {
      case 123:
        return this.object(depth);
      case 91:
        return this.array(depth);
      case 34:
        return this.string();
      case 116:
        return this.literal('true', true);
      case 102:
        return this.literal('false', false);
      case 110:
        return this.literal('null', null);
      default:
        if (c === 45 || (c >= 48 && c <= 57)) return this.number();
        if (Number.isNaN(c)) this.fail('unexpected end of input');
        this.fail(`unexpected character ${JSON.stringify(this.s[this.pos])}`);
    }
  }

  private literal<T>(word: string, v: T): T {
    if (this.s.startsWith(word, this.pos)) {
      this.pos += word.length;
      return v;
    }
    this.fail('invalid literal');
  }

  private object(depth: number): Record<string, unknown> {
    this.pos++;
    const out: Record<string, unknown> = {};
    this.ws();
    if (this.s.charCodeAt(this.pos) === 125) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      if (this.s.charCodeAt(this.pos) !== 34) this.fail('expected a string key');
      const key = this.string();
      // `out` has no own key but the ones read so far ("__proto__" never gets in): no Set per object.
      if (hasOwn(out, key)) {
        this.path.push(key);
        this.fail(`duplicate key ${JSON.stringify(key)}`);
      }
      if (key === '__proto__') {
        this.path.push(key);
        this.fail('the key "__proto__" is not allowed');
      }
      this.ws();
      if (this.s.charCodeAt(this.pos) !== 58) this.fail("expected ':'");
      this.pos++;
      this.ws();
      this.path.push(key);
      out[key] = this.value(depth + 1);
      this.path.pop();
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 125) return out;
      if (c !== 44) {
        this.pos--;
        this.fail("expected ',' or '}'");
      }
    }
  }

  private array(depth: number): unknown[] {
    this.pos++;
    const out: unknown[] = [];
    this.ws();
    if (this.s.charCodeAt(this.pos) === 93) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.ws();
      this.path.push(out.length);
      out.push(this.value(depth + 1));
      this.path.pop();
      this.ws();
      const c = this.s.charCodeAt(this.pos++);
      if (c === 93) return out;
      if (c !== 44) {
        this.pos--;
        this.fail("expected ',' or ']'");
      }
    }
  }

  private number(): number {
    const m = /-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/y;
    m.lastIndex = this.pos;
    const r = m.exec(this.s);
    if (!r) this.fail('invalid number');
    if (r[1] !== undefined || r[2] !== undefined) this.fail(`non-integer number ${r[0]}`);
    const n = Number(r[0]);
    if (!Number.isSafeInteger(n)) this.fail(`integer ${r[0]} is outside the safe range`);
    if (Object.is(n, -0)) this.fail('negative zero is not allowed');
    this.pos += r[0].length;
    return n;
  }

  private string(): string {
    const s = this.s;
    let i = ++this.pos;
    let out = '';
    let start = i;
    let escapedUnicode = false;
    for (;;) {
      const c = s.charCodeAt(i);
      if (Number.isNaN(c)) {
        this.pos = i;
        this.fail('unterminated string');
      }
      if (c === 34) {
        out += s.slice(start, i);
        this.pos = i + 1;
        break;
      }
      if (c < 0x20) {
        this.pos = i;
        this.fail('unescaped control character in string');
      }
      if (c === 92) {
        out += s.slice(start, i);
        const e = s.charCodeAt(i + 1);
        i += 2;
        switch (e) {
          case 34:
            out += '"';
            break;
          case 92:
            out += '\\';
            break;
          case 47:
            out += '/';
            break;
          case 98:
            out += '\b';
            break;
          case 102:
            out += '\f';
            break;
          case 110:
            out += '\n';
            break;
          case 114:
            out += '\r';
            break;
          case 116:
            out += '\t';
            break;
          case 117: {
            const hex = s.slice(i, i + 4);
            if (!/^[0-9a-fA-F]{4}$/.test(hex)) {
              this.pos = i;
              this.fail('invalid \\u escape');
            }
            out += String.fromCharCode(parseInt(hex, 16));
            escapedUnicode = true;
            i += 4;
            break;
          }
          default:
            this.pos = i - 1;
            this.fail('invalid escape sequence');
        }
        start = i;
        continue;
      }
      i++;
    }
    // Lone surrogates are only reachable through \u escapes: raw ones cannot survive strict UTF-8 decoding.
    if (escapedUnicode) this.checkSurrogates(out);
    return out;
  }

  private checkSurrogates(out: string): void {
    for (let j = 0; j < out.length; j++) {
      const c = out.charCodeAt(j);
      if (c >= 0xd800 && c <= 0xdbff) {
        const d = out.charCodeAt(j + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          j++;
          continue;
        }
        this.fail('lone surrogate in string');
      }
      if (c >= 0xdc00 && c <= 0xdfff) this.fail('lone surrogate in string');
    }
  }
}
