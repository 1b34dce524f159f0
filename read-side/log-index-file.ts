// Where a trace keeps its log-prefix indexes (read-side/log-index.ts): one sealed file per view and
// scope in the operator's cache directory, beside its verified acks and log prefixes (verified-cache.ts).
import { readSealedFile, writeSealedFile } from './verified-cache.ts';
import type { LogPrefixIndex } from './log-index.ts';
import type { LogPrefixMemo } from './acks.ts';

/** First line of an index file: the format, so a future layout is never misread. */
const INDEX_HEADER = 'nixfleet log-prefix-index v1';

/** `<view>.<scope>.log-index` in the cache directory: one line (JSON) per indexed segment. */
const indexFileName = (view: string, scope: string) => `${view}.${scope}.log-index`;

/** The indexes a view of one scope saved in `dir` (a sealed file: not believed when edited). */
function readLogPrefixIndexes(dir: string, view: string, scope: string): LogPrefixIndex[] {
  return readSealedFile(dir, indexFileName(view, scope), INDEX_HEADER, indexFromLine);
}

function saveLogPrefixIndexes(
  dir: string,
  view: string,
  scope: string,
  indexes: readonly LogPrefixIndex[],
): void {
  writeSealedFile(
    dir,
    indexFileName(view, scope),
    INDEX_HEADER,
    indexes.map((i) => JSON.stringify(i)),
  );
}

/** The shape is checked; the contents are the sealing run's (decodeLogPrefixIndex checks positions). */
function indexFromLine(line: string): LogPrefixIndex | null {
  let x: Partial<LogPrefixIndex>;
  try {
    x = JSON.parse(line) as Partial<LogPrefixIndex>;
  } catch {
    return null;
  }
  return typeof x === 'object' &&
    x !== null &&
    typeof x.file === 'string' &&
    typeof x.fingerprint === 'string' &&
    typeof x.digest === 'string' &&
    Number.isSafeInteger(x.bytes) &&
    Number.isSafeInteger(x.lines) &&
    Array.isArray(x.values) &&
    Array.isArray(x.shapes) &&
    x.shapes.every((s) => Array.isArray(s) && s.every((k) => typeof k === 'string')) &&
    Array.isArray(x.digests) &&
    x.digests.every((d) => typeof d === 'string') &&
    // Each position is checked as it is decoded (decodeLogPrefixIndex).
    Array.isArray(x.records)
    ? (x as LogPrefixIndex)
    : null;
}

/**
 * Reads `memo`'s prefixes through the indexes a view of one scope saved in `dir` (LogPrefixMemo
 * .useIndexes); the returned save() writes the indexes of the prefixes kept, when they changed.
 */
export function useLogPrefixIndexes(
  dir: string | null,
  view: string,
  scope: string,
  memo: LogPrefixMemo,
): { save(): void } {
  if (dir === null) return { save: () => {} };
  memo.useIndexes(readLogPrefixIndexes(dir, view, scope));
  return {
    save: () => {
      if (memo.indexesChanged) saveLogPrefixIndexes(dir, view, scope, memo.usedIndexes());
    },
  };
}
