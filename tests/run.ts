// Test entry point: runs every tests/**/*.test.ts under uvu in one process and ends with the plain
// "N passed, N failed, N skipped" line CI reads. `node --import tsx tests/run.ts [substring...]` runs a subset.
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { isolateCacheHome } from './support/cache-home.ts';
import { skipCount } from './support/skip.ts';

const root = fileURLToPath(new URL('.', import.meta.url));
isolateCacheHome();
const filters = process.argv.slice(2);

function collect(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...collect(full));
    else if (name.endsWith('.test.ts')) out.push(full);
  }
  return out;
}

const files = collect(root).filter(
  (f) => filters.length === 0 || filters.some((p) => relative(root, f).includes(p)),
);
const g = globalThis as unknown as { UVU_DEFER: number; UVU_QUEUE: unknown[][]; UVU_INDEX: number };
g.UVU_DEFER = 1;
g.UVU_QUEUE = [];
for (const [i, file] of files.entries()) {
  g.UVU_QUEUE.push([relative(root, file)]);
  g.UVU_INDEX = i;
  await import(pathToFileURL(file).href);
}

// uvu prints its own summary; we read its counts from that output and restate them in the form CI parses.
const originalWrite = process.stdout.write.bind(process.stdout);
let captured = '';
process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  captured += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
  return (originalWrite as (c: unknown, ...r: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;
const { exec } = await import('uvu');
await exec(false);
process.stdout.write = originalWrite;

const plain = captured.replace(/\x1b\[[0-9;]*m/g, '');
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const uvuSkipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const failed = total - passed - uvuSkipped;
const skipped = uvuSkipped + skipCount();
console.log(`${passed - skipCount()} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || files.length === 0 ? 1 : 0);
