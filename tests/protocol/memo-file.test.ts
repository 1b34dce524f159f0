// The verified-document memo file (protocol/memo-file.ts): what it keeps between runs. One-host views of
// hosts in different channels use different manifests and plans of the same release; the file keeps
// both instead of being rewritten for each (issue 10.4), and drops documents of other releases.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DocumentMemo,
  readDocumentMemo,
  saveDocumentMemo,
  type SignedDocument,
  writeFileAtomic,
} from '../../protocol/index.ts';

const ROOT = `sha256:${'a'.repeat(64)}`;
const OTHER_ROOT = `sha256:${'b'.repeat(64)}`;
const key = (root: string, n: number, type: string) =>
  `${root} sha256:${n.toString(16).padStart(64, '0')} ${type}`;
const doc = (signed: Record<string, unknown>): SignedDocument<unknown> => ({
  signatures: [],
  signed,
});

const index2 = [key(ROOT, 1, 'release'), doc({ type: 'release', version: 2 })] as const;
const planA2 = [
  key(ROOT, 2, 'channel-plan'),
  doc({ type: 'channel-plan', releaseVersion: 2 }),
] as const;
const hostA2 = [
  key(ROOT, 3, 'host-manifest'),
  doc({ type: 'host-manifest', releaseVersion: 2 }),
] as const;
const planB2 = [
  key(ROOT, 4, 'channel-plan'),
  doc({ type: 'channel-plan', releaseVersion: 2 }),
] as const;
const hostB2 = [
  key(ROOT, 5, 'host-manifest'),
  doc({ type: 'host-manifest', releaseVersion: 2 }),
] as const;
const hostA1 = [
  key(ROOT, 6, 'host-manifest'),
  doc({ type: 'host-manifest', releaseVersion: 1 }),
] as const;
const hostB2OtherRoot = [
  key(OTHER_ROOT, 5, 'host-manifest'),
  doc({ type: 'host-manifest', releaseVersion: 2 }),
] as const;
const unversioned = [key(ROOT, 7, 'revocations'), doc({ type: 'revocations' })] as const;

const keys = (entries: [string, unknown][]) => entries.map(([k]) => k).sort();

test('keeps what was used and the unused documents of the same release, drops other releases', () => {
  const memo = new DocumentMemo([
    [...index2],
    [...planA2],
    [...hostA2],
    [...planB2],
    [...hostB2],
    [...hostA1],
    [...hostB2OtherRoot],
    [...unversioned],
  ]);
  // A view of host A: the index, A's plan and manifest.
  for (const [k] of [index2, planA2, hostA2]) assert.ok(memo.get(k), k);
  assert.equal(keys(memo.kept()), keys([index2, planA2, hostA2, planB2, hostB2] as never));
  assert.ok(memo.changed, 'release 1, another root and an unversioned document are dropped');
});

test('views alternating between hosts of two channels do not rewrite the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nf-memo-'));
  try {
    const file = join(dir, 'verified-docs');
    const view = (entries: (typeof index2)[]) => {
      const memo = readDocumentMemo(dir, file);
      for (const [k, env] of entries) if (!memo.get(k)) memo.set(k, env);
      saveDocumentMemo(dir, file, memo);
      return statSync(file).ino;
    };
    view([index2, planA2, hostA2]);
    const afterB = view([index2, planB2, hostB2]);
    // Both views' documents are in the file now: neither view changes it again (the file is
    // replaced atomically, so a rewrite shows as a new inode).
    assert.is(view([index2, planA2, hostA2]), afterB);
    assert.is(view([index2, planB2, hostB2]), afterB);
    const saved = readDocumentMemo(dir, file);
    for (const [k] of [index2, planA2, hostA2, planB2, hostB2])
      assert.ok(saved.get(k), `${k} kept`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file read back whole or not at all: a torn tail, a line without its key, another header', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nf-memo-'));
  try {
    const file = join(dir, 'verified-docs');
    const memo = new DocumentMemo();
    for (const [k, env] of [index2, planA2, hostA2]) memo.set(k, env);
    saveDocumentMemo(dir, file, memo);
    const text = readFileSync(file, 'utf8');
    /** The saved keys the memo read back from the file holds. */
    const found = () => {
      const back = readDocumentMemo(dir, file);
      return [index2, planA2, hostA2].filter(([k]) => back.get(k) !== undefined).length;
    };
    assert.is(found(), 3);
    const lines = text.split('\n');
    for (const [label, content] of [
      ['no final line break', text.slice(0, -1)],
      [
        'the last line cut to a valid JSON value',
        `${text.slice(0, text.lastIndexOf('\t') + 1)}{}\n`,
      ],
      [
        'a line without its key',
        [lines[0], lines[1], lines[2]!.replace('\t', ' '), ...lines.slice(3)].join('\n'),
      ],
      ['another header', text.replace(/^[^\n]*/, 'nixfleet verified-docs v0')],
    ] as const) {
      writeFileSync(file, content, { mode: 0o600 });
      assert.is(found(), 0, label);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a memo of megabytes is saved line by line and read back as saved, ASCII or not', () => {
  const dir = mkdtempSync(join(tmpdir(), 'memo-'));
  try {
    const file = join(dir, 'site.verified-docs');
    // ~2.5 MB: written in several batches; non-ASCII text (two- and four-byte UTF-8) in some entries.
    const entries: [string, SignedDocument<unknown>][] = [];
    for (let n = 0; n < 2000; n++)
      entries.push([
        key(ROOT, 100 + n, 'host-manifest'),
        doc({
          type: 'host-manifest',
          releaseVersion: 2,
          note: `${n % 7 ? 'x' : '€😀'}${'y'.repeat(1200)}`,
        }),
      ]);
    saveDocumentMemo(dir, file, new DocumentMemo(entries.slice(0, 1)));
    const memo = new DocumentMemo(entries.slice(0, 1));
    for (const [k, v] of entries) memo.set(k, v);
    saveDocumentMemo(dir, file, memo);
    assert.ok(statSync(file).size > 2_000_000);
    const back = readDocumentMemo(dir, file);
    for (const [k, v] of entries) assert.equal(back.get(k), v, k);
    // Pieces joined in batches, a surrogate pair split between two pieces written whole.
    const pieces = ['a'.repeat((1 << 20) - 1) + '\ud83d', '\ude00', 'b'];
    writeFileAtomic(join(dir, 'pieces'), pieces);
    assert.is(readFileSync(join(dir, 'pieces'), 'utf8'), pieces.join(''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a bound manifest's entry without an envelope is kept as such; under any other key the file is not believed", () => {
  const dir = mkdtempSync(join(tmpdir(), 'memo-'));
  try {
    const file = join(dir, 'site.verified-docs');
    const bound = key(ROOT, 9, 'host-manifest-bound-by-index');
    const memo = new DocumentMemo([[...index2]]);
    memo.get(index2[0]);
    memo.setTakenIn(bound);
    assert.throws(() => memo.setTakenIn(key(ROOT, 10, 'host-manifest')));
    saveDocumentMemo(dir, file, memo);
    const back = readDocumentMemo(dir, file);
    assert.is(back.get(bound), undefined, 'no envelope');
    assert.ok(back.takenIn(bound));
    assert.not.ok(back.takenIn(key(ROOT, 11, 'host-manifest-bound-by-index')));
    assert.not.ok(back.takenIn(index2[0]), 'an envelope entry is not a taken-in one');
    // A null under another key (a hand-edited or foreign file): nothing of the file is believed.
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('host-manifest-bound-by-index', 'host-manifest'),
    );
    const edited = readDocumentMemo(dir, file);
    assert.is(edited.get(index2[0]), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
