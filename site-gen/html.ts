// HTML building with escaping by default: every value interpolated into `html\`...\`` is escaped unless
// it is itself the result of `html` (or `raw`). Free text from documents and acks (reasons, probe
// details, key names) can therefore never inject markup, even where a page author forgets about it.
// Long markup is broken with a backslash at the end of a line inside the template: a line continuation
// adds nothing to the text `html` receives, so the output stays byte for byte the same.

export class Html {
  private bytes: Buffer | undefined;
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
  /** The text as UTF-8, encoded once: a list row is on four or five list pages. */
  utf8(): Buffer {
    return (this.bytes ??= Buffer.from(this.text, 'utf8'));
  }
}

export type HtmlValue = Html | string | number | boolean | null | undefined | readonly HtmlValue[];

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

const SPECIAL = /[&<>"']/;

export function escapeHtml(text: string): string {
  // Most values (host names, closures, times) hold nothing to escape: a test is cheaper than a replace.
  return SPECIAL.test(text) ? text.replace(/[&<>"']/g, (c) => ESCAPES[c]!) : text;
}

function render(v: HtmlValue): string {
  if (v instanceof Html) return v.text;
  if (v === null || v === undefined || v === false) return '';
  if (Array.isArray(v)) return concat(v, '');
  return escapeHtml(String(v));
}

/**
 * The parts one after the other, by `+`: V8 links the strings instead of copying them (Array.join
 * copies every character, and a page's markup is joined at several depths: rows, sections, the body),
 * so a page's text is copied once, when it is encoded.
 */
function concat(parts: readonly HtmlValue[], separator: string): string {
  let out = '';
  for (let i = 0; i < parts.length; i++)
    out += i === 0 ? render(parts[i]!) : separator + render(parts[i]!);
  return out;
}

export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0]!;
  for (let i = 0; i < values.length; i++) out += render(values[i]!) + strings[i + 1]!;
  return new Html(out);
}

/** Trusted markup built by this module's callers from constants only. */
export function raw(text: string): Html {
  return new Html(text);
}

export function join(parts: readonly HtmlValue[], separator: HtmlValue = ''): Html {
  return new Html(concat(parts, render(separator)));
}

/**
 * The markup as UTF-8, each Html of `v` (and of its arrays, at any depth) encoded on its own, then
 * copied together: the bytes `join(v)` would encode to. A page's markup joined into one string is
 * flattened whole and, with one non-Latin-1 character anywhere (a "…", a "✓"), as two-byte text, then
 * encoded: encoding its parts (a row, a host's section) keeps most of them one-byte and each small.
 */
export function encodeHtml(v: HtmlValue): Buffer {
  const parts: Buffer[] = [];
  const add = (x: HtmlValue): void => {
    if (x instanceof Html) parts.push(x.utf8());
    else if (Array.isArray(x)) for (const y of x as readonly HtmlValue[]) add(y);
    else parts.push(Buffer.from(render(x), 'utf8'));
  };
  add(v);
  return Buffer.concat(parts);
}
