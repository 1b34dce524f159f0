// A persisted cache of verified acks for the one-shot operator views (`nixfleet status`, `trace`): which
// ack bytes (by SHA-256) an earlier run verified under which host key. Verifying 10,000 acks is seconds
// of Ed25519 and strict intake; the acks change little between two looks, so a warm run checks digests.
//
// What it can and cannot do: an entry is only ever looked up by the digest of the bytes just read, so a
// changed or new ack is a miss and is verified in full; the claims against the release (fleet, host in a
// signed plan, the key the plan names) are checked on every run; a host key is part of the entry, so a
// re-keyed host is verified again. The cache is as trusted as the operator's own files: it lives in the
// operator's cache directory (XDG_CACHE_HOME or ~/.cache, `nixfleet/`), and a directory or file that is
// not the user's own or that others may write is not read (nor written). Unusable or malformed: ignored,
// everything is verified. Each view keeps its own file with exactly what its last run used (bounded by
// what is on disk), written atomically.
//
// Beside the acks, the same store keeps the release documents (index, plans, budgets) the last run's walk
// verified (protocol/verify/release.ts VerifiedDocumentMemo): keyed by the digests of the root and of the
// bytes, holding the envelope intake built from them. A warm view then hashes the documents' bytes instead
// of parsing and verifying megabytes of them; their bindings to the timestamp are checked every run.
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  writeFileAtomic,
  type SignedDocument,
  type VerifiedDocumentMemo,
} from '../protocol/index.ts';
import { AckCache } from './acks.ts';

/** First line of a cache file: the format, so a future layout is never misread. */
const HEADER = 'nixfleet verified-acks v1';
/** One entry: the digest of the ack's bytes and the base64 Ed25519 host key they verified under. */
const ENTRY = /^sha256:[0-9a-f]{64} [A-Za-z0-9+/]{43}=$/;
/** Group/other write bits: someone else could plant entries. */
const OTHERS_WRITE = 0o022;

/** The default cache directory, or null when there is no home to put it in. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.XDG_CACHE_HOME) return join(env.XDG_CACHE_HOME, 'nixfleet');
  const home = env.HOME ?? homedir();
  return home ? join(home, '.cache', 'nixfleet') : null;
}

/** Only the user's own, not writable by others; a symlink is not followed. */
function ownedPrivately(path: string, kind: 'file' | 'dir'): boolean {
  try {
    const st = lstatSync(path);
    if (kind === 'file' ? !st.isFile() : !st.isDirectory()) return false;
    const uid = process.getuid?.();
    return (uid === undefined || st.uid === uid) && (st.mode & OTHERS_WRITE) === 0;
  } catch {
    return false;
  }
}

/** First line of a documents file. */
const DOCS_HEADER = 'nixfleet verified-docs v1';
/** A documents entry's key: the root's digest, the document bytes' digest, the reader (document type). */
const DOC_KEY = /^sha256:[0-9a-f]{64} sha256:[0-9a-f]{64} [a-z-]{1,40}$/;

export interface VerifiedAckStore {
  cache: AckCache;
  /** Release documents verified by the last run (pass as the walk's `memo`). */
  documents: VerifiedDocumentMemo;
  /** Writes what this run verified, unless nothing changed. Best effort: a cache that cannot be written is skipped. */
  save(): void;
}

/** The store `name` (one per view) in `dir`; dir null: no persistence (a fresh cache, save does nothing). */
export function openVerifiedAckStore(dir: string | null, name: string): VerifiedAckStore {
  if (dir === null)
    return { cache: new AckCache(), documents: new DocumentMemo([]), save: () => {} };
  const file = join(dir, `${name}.verified-acks`);
  const docsFile = join(dir, `${name}.verified-docs`);
  const cache = new AckCache(readEntries(dir, file));
  const documents = new DocumentMemo(readDocuments(dir, docsFile));
  return {
    cache,
    documents,
    save: () => {
      if (cache.changed) {
        const pairs = cache.verifiedPairs();
        saveFile(dir, file, `${HEADER}\n${pairs.map(([d, k]) => `${d} ${k}\n`).join('')}`);
      }
      if (documents.changed) {
        const lines = documents.used().map(([k, env]) => `${k}\t${JSON.stringify(env)}\n`);
        saveFile(dir, docsFile, `${DOCS_HEADER}\n${lines.join('')}`);
      }
    },
  };
}

function saveFile(dir: string, file: string, text: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!ownedPrivately(dir, 'dir')) return;
    writeFileAtomic(file, text, { mode: 0o600 });
  } catch {
    // A read-only or full disk costs the next run time, never correctness.
  }
}

/** The walk's memo: what an earlier run verified, and what this run used (all that is saved). */
class DocumentMemo implements VerifiedDocumentMemo {
  private readonly earlier: Map<string, SignedDocument<unknown>>;
  private readonly usedNow = new Map<string, SignedDocument<unknown>>();
  private added = false;

  constructor(entries: [string, SignedDocument<unknown>][]) {
    this.earlier = new Map(entries);
  }

  get(key: string): SignedDocument<unknown> | undefined {
    const env = this.usedNow.get(key) ?? this.earlier.get(key);
    if (env !== undefined) this.usedNow.set(key, env);
    return env;
  }

  set(key: string, env: SignedDocument<unknown>): void {
    this.usedNow.set(key, env);
    this.added = true;
  }

  get changed(): boolean {
    return this.added || this.usedNow.size !== this.earlier.size;
  }

  used(): [string, SignedDocument<unknown>][] {
    return [...this.usedNow];
  }
}

function readDocuments(dir: string, file: string): [string, SignedDocument<unknown>][] {
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return [];
  try {
    const lines = readFileSync(file, 'utf8').split('\n');
    if (lines[0] !== DOCS_HEADER || lines.at(-1) !== '') return [];
    const out: [string, SignedDocument<unknown>][] = [];
    for (const line of lines.slice(1, -1)) {
      const tab = line.indexOf('\t');
      const key = line.slice(0, tab);
      // One malformed line and nothing of the file is believed (a torn or foreign file).
      if (tab < 0 || !DOC_KEY.test(key)) return [];
      const env = JSON.parse(line.slice(tab + 1)) as SignedDocument<unknown>;
      if (typeof env !== 'object' || env === null || typeof env.signed !== 'object') return [];
      out.push([key, env]);
    }
    return out;
  } catch {
    return [];
  }
}

function readEntries(dir: string, file: string): [string, string][] {
  if (!ownedPrivately(dir, 'dir') || !ownedPrivately(file, 'file')) return [];
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  const lines = text.split('\n');
  if (lines[0] !== HEADER || lines.at(-1) !== '') return [];
  const out: [string, string][] = [];
  for (let i = 1; i < lines.length - 1; i++) {
    const line = lines[i]!;
    // One malformed line and nothing of the file is believed (a torn or foreign file).
    if (!ENTRY.test(line)) return [];
    out.push([line.slice(0, 71), line.slice(72)]);
  }
  return out;
}
