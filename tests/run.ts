// Test entry point: runs every tests/**/*.test.ts under uvu and ends with the plain
// "N passed, N failed, N skipped" line CI reads. `node --import tsx tests/run.ts [substring...]` runs a subset.
// Several files run as NIXFLEET_TEST_JOBS shards (default 2), each its own process running its files in
// order: the end-to-end tests spend most of their time waiting on agents, nginx and Nix, so two shards
// about halve the suite's wall time. Each shard's output is printed whole when it ends.
import { spawn } from 'node:child_process';
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

const SHARD_FILES_ENV = 'NIXFLEET_TEST_SHARD_FILES';
const selected = collect(root).filter(
  (f) => filters.length === 0 || filters.some((p) => relative(root, f).includes(p)),
);
const jobs = Number(process.env['NIXFLEET_TEST_JOBS'] ?? 2);
const shardFiles = process.env[SHARD_FILES_ENV];
if (shardFiles === undefined && jobs > 1 && selected.length > 1)
  process.exit(await runShards(selected, jobs));
const files = shardFiles === undefined ? selected : shardFiles.split('\n');
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

/** Rough cost of a test file, to balance shards: the end-to-end and Nix tests dominate. */
function weight(file: string): number {
  const rel = relative(root, file);
  if (rel.startsWith('e2e/')) return 10;
  if (rel.includes('nix')) return 5;
  return 1;
}

/** Runs the files as `jobs` child processes (heaviest first, each to the lightest shard); exit code. */
async function runShards(all: string[], jobs: number): Promise<number> {
  const shards = Array.from({ length: Math.min(jobs, all.length) }, () => ({
    files: [] as string[],
    load: 0,
  }));
  for (const f of [...all].sort((a, b) => weight(b) - weight(a))) {
    const lightest = shards.reduce((a, b) => (b.load < a.load ? b : a));
    lightest.files.push(f);
    lightest.load += weight(f);
  }
  // A shard outlives a parent killed by a signal unless told: pass the signal on, then go.
  const children: ReturnType<typeof spawn>[] = [];
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.on(signal, () => {
      for (const c of children) c.kill(signal);
      process.exit(1);
    });
  const results = await Promise.all(
    shards.map(
      (shard, i) =>
        new Promise<{ out: string; code: number | null }>((resolve) => {
          shard.files.sort();
          const child = spawn(
            process.execPath,
            [...process.execArgv, fileURLToPath(import.meta.url)],
            {
              env: { ...process.env, [SHARD_FILES_ENV]: shard.files.join('\n') },
              stdio: ['ignore', 'pipe', 'pipe'],
            },
          );
          children.push(child);
          let out = '';
          child.stdout.on('data', (c: Buffer) => (out += c.toString()));
          child.stderr.on('data', (c: Buffer) => (out += c.toString()));
          child.on('close', (code) => {
            process.stdout.write(
              `\n# shard ${i + 1}/${shards.length} (${shard.files.length} files)\n${out}`,
            );
            resolve({ out, code });
          });
        }),
    ),
  );
  const sum = { passed: 0, failed: 0, skipped: 0 };
  let code = 0;
  for (const r of results) {
    const m = /(\d+) passed, (\d+) failed, (\d+) skipped\s*$/.exec(r.out);
    if (!m) {
      sum.failed++; // a shard that died before its summary line
      code = 1;
      continue;
    }
    sum.passed += Number(m[1]);
    sum.failed += Number(m[2]);
    sum.skipped += Number(m[3]);
    if (r.code !== 0) code = 1;
  }
  console.log(`${sum.passed} passed, ${sum.failed} failed, ${sum.skipped} skipped`);
  return code;
}
