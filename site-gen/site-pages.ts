// A site as a list of pages to render, not of rendered pages: each page carries the digest of
// everything it shows (its inputs), and is rendered only when asked. The installer (site-dir.ts) keeps
// each page's inputs in the build's manifest; a page whose inputs equal the previous build's is linked
// from it without being rendered, so a rebuild where nothing changed renders nothing and one new ack
// renders the few pages that show what it changed. Pages are rendered one at a time as they are
// installed: a build never holds the whole site in memory.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SitePage {
  /** Site-relative path. */
  readonly path: string;
  /**
   * The digest of everything the page shows (PageInputs), or null for a page that shows ages relative
   * to the build's `now` (the overview, channel pages): those are rendered every build.
   */
  readonly inputs: string | null;
  render(): string | Uint8Array;
}

/** Every page of a site, in install order. */
export class SitePages implements Iterable<SitePage> {
  private readonly pages = new Map<string, SitePage>();

  add(path: string, inputs: string | null, render: () => string | Uint8Array): void {
    this.pages.set(path, { path, inputs, render });
  }

  /** One page rendered, as text (tests and callers that inspect a page). */
  get(path: string): string | undefined {
    const p = this.pages.get(path);
    if (p === undefined) return undefined;
    const c = p.render();
    return typeof c === 'string' ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength).toString();
  }

  has(path: string): boolean {
    return this.pages.has(path);
  }

  [Symbol.iterator](): IterableIterator<SitePage> {
    return this.pages.values();
  }

  get count(): number {
    return this.pages.size;
  }
}

/**
 * The code that renders the pages is an input of every page too: a new nixfleet version that renders
 * a page differently must not link the page an older one rendered from the same facts. It is the
 * digest of the files beside this module: the compiled chunks of dist/ when running as the shipped
 * command, site-gen's sources when running as source. Unreadable: a value no manifest holds (every
 * page is rendered).
 */
function rendererIdentity(): string {
  const h = createHash('sha256');
  try {
    const dir = dirname(fileURLToPath(import.meta.url));
    for (const f of readdirSync(dir).sort())
      if (/\.(ts|js|mjs)$/.test(f)) h.update(`${f}\0`).update(readFileSync(`${dir}/${f}`));
  } catch {
    h.update(`unreadable ${process.pid} ${Date.now()} ${Math.random()}`);
  }
  return h.digest('base64');
}

let renderer: string | null = null;

/**
 * Builds a page's inputs digest from the values it shows. Parts are length-prefixed, so two different
 * lists of parts never give the same digest.
 */
export class PageInputs {
  // Hashed in one update: a list page has hundreds of parts.
  private readonly parts: string[] = [];

  constructor(kind: string) {
    this.add((renderer ??= rendererIdentity())).add(kind);
  }

  add(part: string | number | boolean | null): this {
    const s = typeof part === 'string' ? `s${part}` : `v${String(part)}`;
    this.parts.push(`${s.length}:${s}`);
    return this;
  }

  digest(): string {
    return createHash('sha256').update(this.parts.join('')).digest('base64');
  }
}
