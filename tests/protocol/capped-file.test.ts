// readCappedFile: the one reader of files that come from outside (a published tree, a pinned root, the
// ack endpoint's files). What it must never do is hang on a FIFO, read a device without end, or buffer
// a file larger than its cap; and a tree read through it refuses the same things.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  isNotFound,
  readCappedFile,
  readCappedFileInto,
  readPinnedRoot,
  readTreeFile,
} from '../../protocol/index.ts';
import { refusal } from '../support/refusal.ts';

const dir = mkdtempSync(join(tmpdir(), 'nixfleet-capped-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a regular file within the cap is read whole; at the cap too', () => {
  const f = join(dir, 'ok.json');
  writeFileSync(f, '{"a":1}');
  assert.is(readCappedFile(f, 100, 'ok.json').toString(), '{"a":1}');
  assert.is(readCappedFile(f, 7, 'ok.json').length, 7);
});

test('a file over the cap is refused as TooLarge, naming the label and both sizes', () => {
  const f = join(dir, 'big.json');
  writeFileSync(f, 'x'.repeat(101));
  const e = refusal(() => readCappedFile(f, 100, 'releases/1/index.json'));
  assert.is(e.code, 'TooLarge');
  assert.is(e.file, 'releases/1/index.json');
  assert.match(e.detail, /101 bytes exceeds the limit of 100/);
});

test('a FIFO, a device and a directory are refused as Malformed without waiting or reading', () => {
  const fifo = join(dir, 'fifo.json');
  execFileSync('mkfifo', [fifo]);
  // Opened blocking, a FIFO with no writer would hang this test forever.
  assert.is(refusal(() => readCappedFile(fifo, 100, 'fifo.json')).code, 'Malformed');
  const dev = join(dir, 'zero.json');
  symlinkSync('/dev/zero', dev);
  assert.is(refusal(() => readCappedFile(dev, 100, 'zero.json')).code, 'Malformed');
  const sub = join(dir, 'sub.json');
  mkdirSync(sub);
  const e = refusal(() => readCappedFile(sub, 100, 'sub.json'));
  assert.is(e.code, 'Malformed');
  assert.match(e.detail, /not a regular file/);
});

test('readCappedFileInto: the same bytes and refusals, as a view of one reused buffer', () => {
  const scratch = Buffer.alloc(100);
  const a = join(dir, 'into-a.json');
  const b = join(dir, 'into-b.json');
  writeFileSync(a, '{"a":1}');
  writeFileSync(b, '{"bb":22}');
  const first = readCappedFileInto(a, 100, 'into-a.json', scratch);
  assert.equal(first, readCappedFile(a, 100, 'into-a.json'));
  assert.is(first.buffer, scratch.buffer);
  const second = readCappedFileInto(b, 100, 'into-b.json', scratch);
  assert.is(second.toString(), '{"bb":22}');
  // The view of the first read now shows the second file's bytes: valid until the next read only.
  assert.is(first.toString(), '{"bb":2');
  const big = join(dir, 'into-big.json');
  writeFileSync(big, 'x'.repeat(101));
  const e = refusal(() => readCappedFileInto(big, 100, 'into-big.json', scratch));
  assert.is(e.code, 'TooLarge');
  assert.match(e.detail, /101 bytes exceeds the limit of 100/);
  const sub = join(dir, 'into-sub.json');
  mkdirSync(sub);
  assert.is(
    refusal(() => readCappedFileInto(sub, 100, 'into-sub.json', scratch)).code,
    'Malformed',
  );
  // A buffer shorter than the cap could not hold a file the cap allows.
  assert.throws(() => readCappedFileInto(a, 101, 'into-a.json', scratch), RangeError);
});

test('a missing file is the file system error; isNotFound tells it apart', () => {
  let err: unknown;
  try {
    readCappedFile(join(dir, 'absent', 'x.json'), 100, 'x.json');
  } catch (e) {
    err = e;
  }
  assert.ok(isNotFound(err), String(err));
  assert.not.ok(isNotFound(new Error('other')));
});

test('readTreeFile: absent is undefined; a FIFO or an oversized document in the tree is refused', () => {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'releases'), { recursive: true });
  assert.is(readTreeFile(tree, 'releases/1/index.json', 100), undefined);
  execFileSync('mkfifo', [join(tree, 'timestamp.json')]);
  assert.is(refusal(() => readTreeFile(tree, 'timestamp.json', 100)).code, 'Malformed');
  writeFileSync(join(tree, 'revocations.json'), 'x'.repeat(200));
  assert.is(refusal(() => readTreeFile(tree, 'revocations.json', 100)).code, 'TooLarge');
  assert.is(refusal(() => readTreeFile(tree, '../outside.json', 100)).code, 'Malformed');
});

test('readPinnedRoot: a FIFO or an oversized root file is refused, naming the file', () => {
  const fifo = join(dir, 'root-fifo.json');
  execFileSync('mkfifo', [fifo]);
  const e = refusal(() => readPinnedRoot(fifo));
  assert.is(e.code, 'Malformed');
  assert.is(e.file, fifo);
  const big = join(dir, 'root-big.json');
  writeFileSync(big, ' '.repeat(1 << 20));
  const b = refusal(() => readPinnedRoot(big));
  assert.is(b.code, 'TooLarge');
  assert.is(b.file, big);
});

test.run();
