// The publisher's cache check: before signing a release, every target closure must be in the release's
// binary cache with a narinfo signed by a cache key of the verified trust root. Otherwise the signed
// release would send hosts to a closure they cannot fetch (Nix refuses it, or it is not there): every host
// of the first wave fails its activation and the rollout halts. Refusing at publish time is cheaper.
//
// Steps, for the distinct target paths and then, breadth first, every path they reference (Nix substitutes
// the whole closure, so a reference that is missing or unsigned fails the activation just the same):
//   fetch <cache>/<hash>.narinfo (file:// or http(s)://; size cap, timeout; bounded concurrency)
//   -> parse it strictly (one field per line, known fields once, StorePath equal to the path asked for)
//   -> verify a `Sig:` by a trusted key over the fingerprint "1;<StorePath>;<NarHash>;<NarSize>;<refs>".
// I/O (the narinfo fetch) is injected, so tests and the benchmark can count or fault it.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { verifyBytes } from '../protocol/index.ts';

/** A narinfo of a system closure is ~1-5 KB; 4,000 references (~250 KB) is far beyond any real one. */
export const NARINFO_MAX_BYTES = 256 * 1024;
/** Per narinfo fetch: a cache that does not answer within this counts as unreachable. */
export const NARINFO_TIMEOUT_MS = 30_000;
/** Parallel fetches: enough to hide HTTP latency, few enough not to flood a cache or the fd table. */
export const DEFAULT_CONCURRENCY = 32;

export type CacheProblemReason =
  'missing' | 'unsigned' | 'untrusted-key' | 'bad-signature' | 'malformed' | 'unreachable';

export interface CacheProblem {
  storePath: string;
  reason: CacheProblemReason;
  detail: string;
  /** The target (or reference) that pulled this path into the check; absent for a target itself. */
  referencedBy?: string;
}

export interface CacheCheckReport {
  cacheUrl: string;
  /** Distinct top-level target paths. */
  targets: number;
  /** Every path whose narinfo was read (targets and their closures). */
  checked: number;
  /** The trusted keys (Nix "name:base64") that signed at least one path. */
  keysUsed: string[];
  problems: CacheProblem[];
}

/** The raw narinfo bytes, or null when the cache has no such file (404 / ENOENT). Throws on other failures. */
export type NarinfoFetcher = (url: string) => Promise<Buffer | null>;

export interface CacheCheckOptions {
  cacheUrl: string;
  storePaths: readonly string[];
  /** The trust root's cacheKeys, Nix public keys "name:base64(32 bytes)". */
  trustedKeys: readonly string[];
  concurrency?: number;
  fetchNarinfo?: NarinfoFetcher;
  onProgress?: (done: number, total: number) => void;
}

// ---- narinfo -------------------------------------------------------------------------------------------

export interface NarInfo {
  storePath: string;
  narHash: string;
  narSize: number;
  /** Base names, as written in the narinfo. */
  references: string[];
  sigs: string[];
}

export class NarinfoMalformed extends Error {
  constructor(
    readonly url: string,
    detail: string,
  ) {
    super(`${url}: ${detail}`);
    this.name = 'NarinfoMalformed';
  }
}

const STORE_PATH = /^(\/[^;,\s]*)\/([0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211})$/;
const BASE_NAME = /^[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]{1,211}$/;
// The fingerprint carries the hash in Nix's own "sha256:<nix32>" form; Nix writes it so in every narinfo.
const NAR_HASH = /^sha256:[0-9a-df-np-sv-z]{52}$/;
const SIG = /^([A-Za-z0-9._-]+):([A-Za-z0-9+/]{85}[AQgw]==)$/;
// Fields a narinfo may carry (Nix 2.x writes these); anything else is refused rather than ignored.
const KNOWN_FIELDS = new Set([
  'StorePath',
  'URL',
  'Compression',
  'FileHash',
  'FileSize',
  'NarHash',
  'NarSize',
  'References',
  'Deriver',
  'System',
  'Sig',
  'CA',
]);

export function parseNarinfo(text: string, url: string): NarInfo {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    const m = /^([A-Za-z]+): (.*)$/.exec(line);
    if (!m) throw new NarinfoMalformed(url, `line ${i + 1} is not "Field: value"`);
    const [, key, value] = m as unknown as [string, string, string];
    if (!KNOWN_FIELDS.has(key))
      throw new NarinfoMalformed(url, `unknown field "${key}" on line ${i + 1}`);
    if (key === 'Sig') sigs.push(value);
    else if (fields.has(key)) throw new NarinfoMalformed(url, `field "${key}" appears twice`);
    else fields.set(key, value);
  }
  const need = (k: string) => {
    const v = fields.get(k);
    if (v === undefined) throw new NarinfoMalformed(url, `missing field "${k}"`);
    return v;
  };
  const storePath = need('StorePath');
  if (!STORE_PATH.test(storePath))
    throw new NarinfoMalformed(url, `StorePath is not a store path: ${storePath}`);
  const narHash = need('NarHash');
  if (!NAR_HASH.test(narHash))
    throw new NarinfoMalformed(url, `NarHash is not "sha256:<52 nix32 characters>": ${narHash}`);
  const narSizeText = need('NarSize');
  if (!/^[1-9][0-9]{0,15}$/.test(narSizeText) || !Number.isSafeInteger(Number(narSizeText)))
    throw new NarinfoMalformed(url, `NarSize is not a positive integer: ${narSizeText}`);
  need('URL');
  const refsText = need('References');
  const references = refsText === '' ? [] : refsText.split(' ');
  for (const r of references)
    if (!BASE_NAME.test(r))
      throw new NarinfoMalformed(url, `References has a malformed entry: "${r}"`);
  return { storePath, narHash, narSize: Number(narSizeText), references, sigs };
}

/** What Nix signs: "1;<StorePath>;<NarHash>;<NarSize>;<comma-joined full reference paths>". */
export function narinfoFingerprint(info: NarInfo): string {
  const storeDir = info.storePath.slice(0, info.storePath.lastIndexOf('/'));
  return `1;${info.storePath};${info.narHash};${info.narSize};${info.references.map((r) => `${storeDir}/${r}`).join(',')}`;
}

// ---- keys and signatures ------------------------------------------------------------------------------

interface TrustedKey {
  text: string;
  name: string;
  publicKey: Uint8Array;
}

function parseTrustedKey(text: string): TrustedKey {
  const i = text.indexOf(':');
  const raw = Buffer.from(text.slice(i + 1), 'base64');
  if (i < 1 || raw.length !== 32)
    throw new TypeError(`not a Nix public key "name:base64(32 bytes)": ${text}`);
  return { text, name: text.slice(0, i), publicKey: new Uint8Array(raw) };
}

type SigVerdict =
  { ok: true; key: string } | { ok: false; reason: CacheProblemReason; detail: string };

/** Like Nix: a Sig counts when its key name is trusted and the signature verifies under that key. */
export function checkNarinfoSignatures(info: NarInfo, keys: readonly TrustedKey[]): SigVerdict {
  if (info.sigs.length === 0)
    return { ok: false, reason: 'unsigned', detail: 'the narinfo has no signature' };
  const message = Buffer.from(narinfoFingerprint(info), 'utf8');
  const names: string[] = [];
  let badByTrusted: string | undefined;
  for (const sig of info.sigs) {
    const m = SIG.exec(sig);
    if (!m)
      return {
        ok: false,
        reason: 'malformed',
        detail: `a Sig is not "name:base64(64 bytes)": ${sig.slice(0, 80)}`,
      };
    const [, name, b64sig] = m as unknown as [string, string, string];
    names.push(name);
    const signature = new Uint8Array(Buffer.from(b64sig, 'base64'));
    for (const k of keys) {
      if (k.name !== name) continue;
      if (verifyBytes(k.publicKey, message, signature)) return { ok: true, key: k.text };
      badByTrusted = name;
    }
  }
  if (badByTrusted !== undefined)
    return {
      ok: false,
      reason: 'bad-signature',
      detail: `the signature by trusted key "${badByTrusted}" does not verify (narinfo altered, or signed with another key of that name)`,
    };
  return {
    ok: false,
    reason: 'untrusted-key',
    detail: `signed only by keys the trust root does not list as cache keys: ${names.join(', ')}`,
  };
}

// ---- fetching -----------------------------------------------------------------------------------------

function narinfoUrl(cacheUrl: string, storePath: string): string {
  const base = storePath.slice(storePath.lastIndexOf('/') + 1, storePath.lastIndexOf('/') + 33);
  return `${cacheUrl.replace(/\/+$/, '')}/${base}.narinfo`;
}

/**
 * file:// reads synchronously: each narinfo is a few KB and a synchronous read costs microseconds, while
 * going through the thread pool of fs.promises made 10,000 reads several times slower on a loaded machine.
 */
function readLocalNarinfo(url: string): Buffer | null {
  let fd: number;
  try {
    fd = openSync(fileURLToPath(url), 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
  try {
    const size = fstatSync(fd).size;
    if (size > NARINFO_MAX_BYTES)
      throw new NarinfoMalformed(url, `larger than ${NARINFO_MAX_BYTES} bytes`);
    const buf = Buffer.alloc(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}

async function readCapped(url: string): Promise<Buffer | null> {
  if (url.startsWith('file://')) return readLocalNarinfo(url);
  const res = await fetch(url, {
    signal: AbortSignal.timeout(NARINFO_TIMEOUT_MS),
    redirect: 'error',
  });
  // Nix treats 403 like 404 for S3-style caches that hide missing keys.
  if (res.status === 404 || res.status === 403) {
    await res.body?.cancel();
    return null;
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > NARINFO_MAX_BYTES) {
    await res.body?.cancel();
    throw new NarinfoMalformed(url, `larger than ${NARINFO_MAX_BYTES} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > NARINFO_MAX_BYTES)
      throw new NarinfoMalformed(url, `larger than ${NARINFO_MAX_BYTES} bytes`);
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

/** file:// reads the file; http(s):// GETs it (TLS trust from the system store plus NODE_EXTRA_CA_CERTS). */
export const defaultNarinfoFetcher: NarinfoFetcher = readCapped;

// ---- the check ----------------------------------------------------------------------------------------

interface Visit {
  storePath: string;
  referencedBy?: string;
}

/** Checks every target path and its closure. Never throws for a cache problem: they are in `problems`. */
export async function checkCache(o: CacheCheckOptions): Promise<CacheCheckReport> {
  const keys = o.trustedKeys.map(parseTrustedKey);
  const fetchNarinfo = o.fetchNarinfo ?? defaultNarinfoFetcher;
  const concurrency = Math.max(1, o.concurrency ?? DEFAULT_CONCURRENCY);
  const targets = [...new Set(o.storePaths)].sort();
  const seen = new Set<string>(targets);
  const queue: Visit[] = targets.map((storePath) => ({ storePath }));
  let next = 0;
  const problems: CacheProblem[] = [];
  const keysUsed = new Set<string>();
  let done = 0;

  const problem = (v: Visit, reason: CacheProblemReason, detail: string) =>
    problems.push({
      storePath: v.storePath,
      reason,
      detail,
      ...(v.referencedBy !== undefined ? { referencedBy: v.referencedBy } : {}),
    });

  async function visit(v: Visit): Promise<void> {
    const url = narinfoUrl(o.cacheUrl, v.storePath);
    let bytes: Buffer | null;
    try {
      bytes = await fetchNarinfo(url);
    } catch (e) {
      if (e instanceof NarinfoMalformed) return void problem(v, 'malformed', e.message);
      return void problem(v, 'unreachable', `${url}: ${(e as Error).message}`);
    }
    if (bytes === null) return void problem(v, 'missing', `no ${url}`);
    if (bytes.length > NARINFO_MAX_BYTES)
      return void problem(v, 'malformed', `${url}: larger than ${NARINFO_MAX_BYTES} bytes`);
    let info: NarInfo;
    try {
      info = parseNarinfo(bytes.toString('utf8'), url);
    } catch (e) {
      return void problem(v, 'malformed', (e as Error).message);
    }
    // The narinfo file name is only the hash part: a cache could answer with another path's narinfo.
    if (info.storePath !== v.storePath)
      return void problem(v, 'malformed', `${url} describes ${info.storePath}, not ${v.storePath}`);
    const sig = checkNarinfoSignatures(info, keys);
    if (!sig.ok) return void problem(v, sig.reason, sig.detail);
    keysUsed.add(sig.key);
    const storeDir = v.storePath.slice(0, v.storePath.lastIndexOf('/'));
    for (const ref of info.references) {
      const path = `${storeDir}/${ref}`;
      if (seen.has(path)) continue;
      seen.add(path);
      queue.push({ storePath: path, referencedBy: v.referencedBy ?? v.storePath });
    }
  }

  // A fixed pool of workers draining one queue: the closure walk appends to the queue as it goes.
  async function worker(): Promise<void> {
    while (next < queue.length) {
      await visit(queue[next++]!);
      done++;
      o.onProgress?.(done, seen.size);
    }
  }
  // A worker ends when the queue is momentarily drained while others may still append: repeat until done.
  while (next < queue.length) {
    await Promise.all(
      Array.from({ length: Math.min(concurrency, queue.length - next) }, () => worker()),
    );
  }
  problems.sort((a, b) => (a.storePath < b.storePath ? -1 : a.storePath > b.storePath ? 1 : 0));
  return {
    cacheUrl: o.cacheUrl,
    targets: targets.length,
    checked: done,
    keysUsed: [...keysUsed].sort(),
    problems,
  };
}

const REASON_TEXT: Record<CacheProblemReason, string> = {
  missing: 'not in the cache',
  unsigned: 'not signed',
  'untrusted-key': 'signed only by keys not in the trust root',
  'bad-signature': 'bad signature',
  malformed: 'malformed narinfo',
  unreachable: 'cache unreachable',
};

/** One line per problem for the first `max`, then "and M more". */
export function describeCacheProblems(report: CacheCheckReport, max = 10): string {
  const lines = report.problems
    .slice(0, max)
    .map(
      (p) =>
        `  ${p.storePath}: ${REASON_TEXT[p.reason]}${p.referencedBy ? ` (in the closure of ${p.referencedBy})` : ''}: ${p.detail}`,
    );
  const more = report.problems.length - max;
  if (more > 0) lines.push(`  and ${more} more`);
  return lines.join('\n');
}
