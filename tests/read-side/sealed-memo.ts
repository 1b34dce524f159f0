// Test support: a view's latest-ack memo (read-side/ack-file-memo.ts, kept sealed by
// read-side/verified-cache.ts as a base file and a journal of changes since) read and rewritten as
// its owner could, to show what a view believes.
import { createHmac } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as assert from 'uvu/assert';
import {
  formatAckFileMemo,
  parseAckFileMemo,
  parseAckFileMemoChanges,
  type AckFileMemoChanges,
  type AckFileMemoEntries,
} from '../../read-side/ack-file-memo.ts';

/** The journal file beside a memo's base file. */
export const journalOf = (file: string) => `${file}.journal`;

/**
 * The memo's entries as its files hold them: the base with its journal's changes applied when the
 * journal names the base's MAC (the seals are not checked here).
 */
export function readMemo(file: string): AckFileMemoEntries {
  const [, line] = readFileSync(file, 'utf8').split('\n');
  const memo = parseAckFileMemo(line!);
  assert.ok(memo, `${file} holds a well-formed memo`);
  const journal = readJournal(file);
  if (journal === null || journal.base !== macOf(file)) return memo;
  return {
    files: applied(memo.files, journal.changes.files, journal.changes.droppedFiles),
    bundles: applied(memo.bundles, journal.changes.bundles, journal.changes.droppedBundles),
  };
}

/** The journal beside `file`: the base MAC it names and its changes; null when there is none. */
export function readJournal(file: string): { base: string; changes: AckFileMemoChanges } | null {
  if (!existsSync(journalOf(file))) return null;
  const [, base, line] = readFileSync(journalOf(file), 'utf8').split('\n');
  const changes = parseAckFileMemoChanges(line!);
  assert.ok(changes, `${journalOf(file)} holds well-formed changes`);
  return { base: base!.replace(/^base /, ''), changes };
}

/** A sealed file's MAC (hex), as its last line holds it. */
export function macOf(file: string): string {
  return /mac ([0-9a-f]{64})\n$/.exec(readFileSync(file, 'utf8'))![1]!;
}

function applied<T extends { path: string }>(base: T[], changed: T[], dropped: string[]): T[] {
  const m = new Map(base.map((e) => [e.path, e]));
  for (const e of changed) m.set(e.path, e);
  for (const p of dropped) m.delete(p);
  return [...m.values()];
}

/**
 * The memo rewritten after `edit` as one base file (its journal deleted): sealed with the cache
 * directory's key (`seal: 'key'`, what only the directory's owner can do), with the file's MAC kept
 * (`'old-mac'`) or with none (`'no-mac'`).
 */
export function rewriteMemo(
  file: string,
  edit: (memo: AckFileMemoEntries) => void,
  seal: 'key' | 'old-mac' | 'no-mac' = 'key',
): void {
  const [header] = readFileSync(file, 'utf8').split('\n');
  const oldMac = `mac ${macOf(file)}\n`;
  const memo = readMemo(file);
  edit(memo);
  const text = `${header}\n${formatAckFileMemo(memo)}\n`;
  writeFileSync(file, text + { key: sealOf(file, text), 'old-mac': oldMac, 'no-mac': '' }[seal], {
    mode: 0o600,
  });
  rmSync(journalOf(file), { force: true });
}

/** The `mac` line of `text` sealed with the key of the cache directory `file` is in. */
export function sealOf(file: string, text: string): string {
  const keyHex = readFileSync(join(dirname(file), 'cache-key'), 'latin1').trim();
  return `mac ${createHmac('sha256', Buffer.from(keyHex, 'hex')).update(text).digest('hex')}\n`;
}
