// The warm verifier pool (protocol/verify/batch-pool.ts) a long-running process installs: its thread
// kept from batch to batch, its key objects kept by key bytes, and verdicts that never depend on it.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { verifyBytes } from '../../protocol/ed25519.ts';
import {
  VerifierPool,
  WARM_THRESHOLD,
  keepVerifierWarm,
} from '../../protocol/verify/batch-pool.ts';
import { KeyObjectCache } from '../../protocol/verify/batch-shared.ts';
import {
  buildBatch,
  installedVerifierPool,
  installVerifierPool,
  verifyBatch,
  type SignatureJob,
} from '../../protocol/verify/batch-verify.ts';
import { signatureJobs } from './signature-jobs.ts';

const oneByOne = (js: SignatureJob[]) =>
  js.map((j) => verifyBytes(j.publicKey, j.message, j.signature));

/** Runs `f` with `pool` installed for verifyBatch, then closes the pool. */
async function withPool(pool: VerifierPool, f: () => void | Promise<void>): Promise<void> {
  const uninstall = installVerifierPool(pool);
  try {
    await f();
  } finally {
    uninstall();
    await pool.close();
  }
}

const STALLING = (how: 'exit' | 'hang' | 'between') =>
  new URL(`./fixtures/stalling-batch-helper.ts?${how}`, import.meta.url);

test('a warm pool: batches with bad signatures in them answer as one by one, all helped by one kept thread', async () => {
  const pool = new VerifierPool({ cores: 2 }).start();
  const thread = pool.threadId;
  assert.ok(thread !== undefined, 'the thread starts with the pool');
  await withPool(pool, () => {
    const sizes = [WARM_THRESHOLD, 300, 1500, WARM_THRESHOLD - 1, 40];
    for (const n of sizes) {
      const { jobs, expected } = signatureJobs(n);
      for (const time of [1, 2]) {
        const got = verifyBatch(jobs);
        assert.equal(got, expected, `${n} jobs`);
        assert.equal(got, oneByOne(jobs), `${n} jobs`);
        assert.is(pool.threadId, thread, 'the same thread, kept');
        // Each batch's three keys, built once on this thread and kept for the same batch again.
        assert.is(pool.keyObjects.size, 3 * (sizes.indexOf(n) + 1), `${n} jobs, time ${time}`);
      }
    }
  });
  assert.is(pool.threadId, undefined, 'closed: the thread ended');
});

// The warm thread on its own (the caller takes no job), from the TypeScript source and from the
// compiled file the shipped command loads.
for (const [label, module] of [
  ['source', undefined],
  [
    'dist',
    pathToFileURL(fileURLToPath(new URL('../../dist/batch-verify-worker.js', import.meta.url))),
  ],
] as const) {
  test(`the warm thread (${label}) verifies whole batches posted to it, one after another`, async () => {
    if (module && !existsSync(module))
      assert.unreachable('dist/batch-verify-worker.js is missing: run npm run build');
    // The first batch waits for the thread to load (seconds on a loaded machine), not the stall bound.
    const pool = new VerifierPool({ cores: 2, stallMs: 120_000, ...(module ? { module } : {}) });
    await withPool(pool, () => {
      for (const n of [WARM_THRESHOLD, 700]) {
        const { jobs, expected } = signatureJobs(n);
        const { batch } = buildBatch(jobs);
        pool.help(batch)!.finish();
        assert.is(Atomics.load(batch.counters, 1), n, 'the thread finished every job');
        assert.equal(
          [...batch.status].map((s) => s === 1),
          expected,
        );
      }
    });
  });
}

test('a small batch or one core: the warm thread is not asked', async () => {
  const one = new VerifierPool({ cores: 1 });
  const two = new VerifierPool({ cores: 2 });
  await withPool(one, () => {
    assert.is(one.help(buildBatch(signatureJobs(2000).jobs).batch), undefined);
  });
  await withPool(two, () => {
    assert.is(two.help(buildBatch(signatureJobs(WARM_THRESHOLD - 1).jobs).batch), undefined);
  });
});

for (const how of ['exit', 'hang'] as const) {
  test(`a thread that ${how === 'exit' ? 'dies' : 'hangs'} mid-batch costs only speed: right answers, the thread replaced`, async () => {
    const pool = new VerifierPool({ cores: 2, module: STALLING(how), stallMs: 300 });
    const { jobs, expected } = signatureJobs(500);
    await withPool(pool, async () => {
      for (const round of [1, 2]) {
        const thread = pool.start().threadId;
        assert.ok(thread !== undefined);
        // Until the thread has loaded, the caller verifies each batch alone; then the thread takes a
        // chunk and answers none of it: the caller finishes it after the stall, and the thread is ended.
        const until = Date.now() + 60_000;
        while (pool.threadId === thread && Date.now() < until) {
          assert.equal(verifyBatch(jobs), expected, `round ${round}`);
          await new Promise((r) => setTimeout(r, 20));
        }
        assert.is(pool.threadId, undefined, `round ${round}: the stalled thread is ended`);
      }
    });
  });
}

test('a thread that hangs between batches is ended and replaced once it has not gone through a batch within the stall bound', async () => {
  const pool = new VerifierPool({ cores: 2, module: STALLING('between'), stallMs: 300 });
  const { jobs, expected } = signatureJobs(500);
  await withPool(pool, async () => {
    const first = pool.start().threadId;
    const threads = new Set<number | undefined>([first]);
    // Batches until the thread has gone through one, blocked on the next and been found so.
    const until = Date.now() + 60_000;
    while (threads.size < 2 && Date.now() < until) {
      assert.equal(verifyBatch(jobs), expected);
      threads.add(pool.threadId);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.is(threads.size, 2, 'a second thread replaced the first');
    assert.ok(pool.threadId !== first && pool.threadId !== undefined);
  });
});

test('verifyBatch uses the installed pool until uninstalled; parallel: false never does', async () => {
  const pool = new VerifierPool({ cores: 2, module: STALLING('exit'), stallMs: 100 });
  const { jobs, expected } = signatureJobs(300);
  await withPool(pool, () => {
    assert.is(installedVerifierPool(), pool);
    assert.equal(verifyBatch(jobs, { parallel: false }), expected);
    assert.is(pool.threadId, undefined, 'parallel: false started no thread');
    assert.equal(verifyBatch(jobs), expected);
    assert.is(pool.keyObjects.size, 3, 'the pool gave the key objects');
  });
  assert.is(installedVerifierPool(), undefined);
  // What a long-running process does: the pool started and installed; closed, no thread is left.
  const threadsBefore = osThreads();
  const kept = keepVerifierWarm({ cores: 2 });
  assert.is(installedVerifierPool(), kept.pool);
  assert.ok(kept.pool.threadId !== undefined);
  assert.is(osThreads(), threadsBefore + 1);
  await kept.close();
  assert.is(installedVerifierPool(), undefined);
  assert.is(kept.pool.threadId, undefined);
  assert.is(osThreads(), threadsBefore, 'the thread ended');
});

/** This process's threads (Linux): a worker thread is one. */
const osThreads = () => readdirSync('/proc/self/task').length;

test('kept key objects: by key bytes, the least recently used dropped beyond the bound', () => {
  const cache = new KeyObjectCache(2);
  const [a, b, c] = [0, 1, 2].map((i) => signatureJobs(3).jobs[i]!.publicKey);
  const first = cache.get(a!);
  assert.is(cache.get(Uint8Array.from(a!)), first, 'equal bytes in another array: the same object');
  cache.get(b!);
  cache.get(a!); // a is now the most recently used
  cache.get(c!);
  assert.is(cache.size, 2);
  assert.is(cache.get(a!), first, 'a was kept');
  const again = cache.get(b!);
  assert.ok(again.equals(cache.get(b!)), 'b rebuilt, the same key');
});

test.run();
