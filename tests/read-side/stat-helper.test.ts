// The view server's stat helper (read-side/stat-helper.ts): a look's stats taken on two threads give
// exactly what the look's own statOf gives for every path (files, missing ones, a directory, a link, a
// path statOf throws on), also once the helper is gone; and a latest-ack memo recalls with the
// identities taken ahead instead of stat-ing again.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StatHelper } from '../../read-side/stat-helper.ts';
import { AckFileMemo, statOf, type Seen } from '../../read-side/ack-file-memo.ts';

let dir = '';
let helper: StatHelper;
test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'nixfleet-stat-helper-'));
  helper = StatHelper.start();
});
test.after(async () => {
  await helper.close();
  rmSync(dir, { recursive: true, force: true });
});

/** statOf's answer, or undefined where it throws (what statAll leaves to the caller). */
const expected = (path: string): Seen | undefined => {
  try {
    return statOf(path);
  } catch {
    return undefined;
  }
};

/** 3,000 paths of every kind, the odd ones spread over both halves (made once). */
let made: string[] | null = null;
function paths(): string[] {
  if (made !== null) return made;
  const out: string[] = (made = []);
  for (let i = 0; i < 3000; i++) {
    const p = join(dir, `h-${i}.json`);
    if (i % 7 !== 3) writeFileSync(p, `{"n":${i}}`.repeat(1 + (i % 5)));
    out.push(i % 7 === 3 ? `${p}.missing` : p);
  }
  mkdirSync(join(dir, 'a-directory'), { recursive: true });
  symlinkSync(join(dir, 'h-0.json'), join(dir, 'a-link.json'));
  for (const at of [10, 1700, 2999]) {
    out.splice(at, 0, join(dir, 'a-directory'), join(dir, 'a-link.json'));
    // Under a file: ENOTDIR, which statOf throws.
    out.splice(at, 0, join(dir, 'h-1.json', 'below-a-file'));
  }
  return out;
}

test('statAll gives statOf of every path, on both threads, in order', () => {
  const ps = paths();
  const seen = helper.statAll(ps);
  assert.is(seen.length, ps.length);
  for (let i = 0; i < ps.length; i++) assert.equal(seen[i], expected(ps[i]!), ps[i]);
  assert.ok(seen.filter((s) => s === null).length > 400, 'missing files and directories: null');
  assert.ok(seen.filter((s) => s === undefined).length === 3, 'the paths statOf throws on: left');
  assert.is(helper.lastShared, ps.length >> 1, 'half of them on the helper thread');
  // Again (the helper serves one request after another), and a short list (the look alone).
  assert.equal(helper.statAll(ps), seen);
  assert.equal(helper.statAll(ps.slice(0, 5)), seen.slice(0, 5));
  assert.is(helper.lastShared, 0);
});

test('with the helper gone, the look stats every path itself', async () => {
  const gone = StatHelper.start();
  await gone.close();
  const ps = paths().slice(0, 2000);
  const seen = gone.statAll(ps);
  assert.is(gone.lastShared, 0);
  for (let i = 0; i < ps.length; i++) assert.equal(seen[i], expected(ps[i]!), ps[i]);
});

test('a memo recalls with the identities taken ahead (each once), and stats a path the helper left', () => {
  const file = join(dir, 'recalled.json');
  writeFileSync(file, '{}');
  const now = statOf(file)!;
  const entry = {
    ...now,
    path: file,
    digest: `sha256:${'0'.repeat(64)}`,
    host: 'recalled',
    hostKey: 'k',
    signed: null,
  };
  const memo = new AckFileMemo({ files: [entry], bundles: [] }, Date.now());
  // An identity ahead that differs from the file's now: recall believes the one taken ahead...
  memo.seeAhead([file], { statAll: () => [{ ...now, size: now.size + 1 }] });
  assert.not.ok('verified' in (memo.recall(file) as object), 'the identity taken ahead was used');
  // ...once: the next recall stats the file.
  assert.ok('verified' in (memo.recall(file) as object));
  // Left by the helper (undefined): stat-ed by the recall itself.
  memo.seeAhead([file], { statAll: () => [undefined] });
  assert.ok('verified' in (memo.recall(file) as object));
});

test.run();
