// Test support: a view's latest-ack memo (read-side/ack-file-memo.ts, kept sealed by
// read-side/verified-cache.ts) read and rewritten as its owner could, to show what a view believes.
import { createHmac } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as assert from 'uvu/assert';
import {
  formatAckFileMemo,
  parseAckFileMemo,
  type AckFileMemoEntries,
} from '../../read-side/ack-file-memo.ts';

/** The memo's entries as its file holds them (its seal is not checked here). */
export function readMemo(file: string): AckFileMemoEntries {
  const [, line] = readFileSync(file, 'utf8').split('\n');
  const memo = parseAckFileMemo(line!);
  assert.ok(memo, `${file} holds a well-formed memo`);
  return memo;
}

/**
 * The memo rewritten after `edit`: sealed with the cache directory's key (`seal: 'key'`, what only the
 * directory's owner can do), with the file's MAC kept (`'old-mac'`) or with none (`'no-mac'`).
 */
export function rewriteMemo(
  file: string,
  edit: (memo: AckFileMemoEntries) => void,
  seal: 'key' | 'old-mac' | 'no-mac' = 'key',
): void {
  const [header] = readFileSync(file, 'utf8').split('\n');
  const oldMac = /mac [0-9a-f]{64}\n$/.exec(readFileSync(file, 'utf8'))![0];
  const memo = readMemo(file);
  edit(memo);
  const text = `${header}\n${formatAckFileMemo(memo)}\n`;
  const keyHex = readFileSync(join(dirname(file), 'cache-key'), 'latin1').trim();
  const mac = `mac ${createHmac('sha256', Buffer.from(keyHex, 'hex')).update(text).digest('hex')}\n`;
  writeFileSync(file, text + { key: mac, 'old-mac': oldMac, 'no-mac': '' }[seal], { mode: 0o600 });
}
