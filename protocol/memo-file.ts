// The release walk's VerifiedDocumentMemo (release.ts) kept in a file between runs: the operator views
// keep theirs in the operator's cache directory (read-side/verified-cache.ts), the agent in its state
// directory (agent/agent.ts). Entries are keyed by the digests of the root and of the bytes, so a file
// can only ever spare recomputing intake and release signatures of bytes just read; every binding is
// checked on every walk (release.ts). The file is as trusted as its directory's other private files,
// hence: a directory or file that is not this user's own, that others may write, or that is a symlink is
// neither read nor written; a malformed or torn file is ignored whole (everything is verified); it holds
// exactly what the last run's walk used (bounded by what one walk reads), written atomically, 0600.
import { lstatSync, mkdirSync, readFileSync } from 'node:fs';
import { writeFileAtomic } from './atomic-write.ts';
import type { SignedDocument } from './schemas/index.ts';
import type { VerifiedDocumentMemo } from './verify/index.ts';

/** First line of a documents file: the format, so a future layout is never misread. */
const DOCS_HEADER = 'nixfleet verified-docs v1';
/** An entry's key: the root's digest, the document bytes' digest, the reader (document type). */
const DOC_KEY = /^sha256:[0-9a-f]{64} sha256:[0-9a-f]{64} [a-z-]{1,40}$/;
/** Group/other write bits: someone else could plant entries. */
const OTHERS_WRITE = 0o022;

/** Only this user's own, not writable by others; a symlink is not followed. */
export function ownedPrivately(path: string, kind: 'file' | 'dir'): boolean {
  try {
    const st = lstatSync(path);
    if (kind === 'file' ? !st.isFile() : !st.isDirectory()) return false;
    const uid = process.getuid?.();
    return (uid === undefined || st.uid === uid) && (st.mode & OTHERS_WRITE) === 0;
  } catch {
    return false;
  }
}

/** Writes `text` to `file` in `dir` (0600, atomically) if `dir` is privately owned. Best effort. */
export function savePrivateFile(dir: string, file: string, text: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!ownedPrivately(dir, 'dir')) return;
    writeFileAtomic(file, text, { mode: 0o600 });
  } catch {
    // A read-only or full disk costs the next run time, never correctness.
  }
}

/** The walk's memo: what an earlier run verified, and what this run used (all that is saved). */
export class DocumentMemo implements VerifiedDocumentMemo {
  private readonly earlier: Map<string, SignedDocument<unknown>>;
  private readonly usedNow = new Map<string, SignedDocument<unknown>>();
  private added = false;
  /** Lookups answered from the memo this run (observability: a warm run's count of spared checks). */
  hits = 0;

  constructor(entries: [string, SignedDocument<unknown>][] = []) {
    this.earlier = new Map(entries);
  }

  get(key: string): SignedDocument<unknown> | undefined {
    const env = this.usedNow.get(key) ?? this.earlier.get(key);
    if (env !== undefined) {
      this.usedNow.set(key, env);
      this.hits++;
    }
    return env;
  }

  set(key: string, env: SignedDocument<unknown>): void {
    this.usedNow.set(key, env);
    this.added = true;
  }

  /** Whether saving would write something other than what was read. */
  get changed(): boolean {
    return this.added || this.usedNow.size !== this.earlier.size;
  }

  used(): [string, SignedDocument<unknown>][] {
    return [...this.usedNow];
  }
}

/** The memo kept in `file` (in `dir`); an unusable file gives an empty memo. */
export function readDocumentMemo(dir: string, file: string): DocumentMemo {
  return new DocumentMemo(readEntries(dir, file));
}

/** Writes what this run's walk used, unless that is exactly what was read. Best effort. */
export function saveDocumentMemo(dir: string, file: string, memo: DocumentMemo): void {
  if (!memo.changed) return;
  const lines = memo.used().map(([k, env]) => `${k}\t${JSON.stringify(env)}\n`);
  savePrivateFile(dir, file, `${DOCS_HEADER}\n${lines.join('')}`);
}

function readEntries(dir: string, file: string): [string, SignedDocument<unknown>][] {
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
      const shaped =
        typeof env === 'object' &&
        env !== null &&
        typeof env.signed === 'object' &&
        env.signed !== null &&
        Array.isArray(env.signatures);
      if (!shaped) return [];
      out.push([key, env]);
    }
    return out;
  } catch {
    return [];
  }
}
