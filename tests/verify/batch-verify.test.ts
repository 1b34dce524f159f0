import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createPublicKey, randomBytes, verify, type KeyObject } from 'node:crypto';
import { publicKeyFromSeed, signBytes, verifyBytes } from '../../protocol/ed25519.ts';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import {
  awaitHelper,
  buildBatch,
  finishUndone,
  startHelper,
  useHelperThread,
  verifyBatch,
  PARALLEL_THRESHOLD,
  type SignatureJob,
} from '../../protocol/verify/batch-verify.ts';
import { helperMain, KeyObjects, runJob } from '../../protocol/verify/batch-shared.ts';
import { signatureJobs as jobs } from './signature-jobs.ts';

test('one key per distinct public key: the same array or equal bytes in another array are one key', () => {
  const { jobs: js } = jobs(12);
  // Jobs 1, 4, 7, 10 have seed 1's key, each in its own array; 4 and 7 now share job 1's array.
  const shared = js[1]!.publicKey;
  const mixed = js.map((j, i) => (i === 4 || i === 7 ? { ...j, publicKey: shared } : j));
  const { batch } = buildBatch(mixed);
  const keyOf = (i: number) =>
    Buffer.from(batch.keys.subarray(batch.keyIndex[i]! * 32, batch.keyIndex[i]! * 32 + 32));
  mixed.forEach((j, i) => assert.ok(keyOf(i).equals(Buffer.from(j.publicKey)), `job ${i}`));
  assert.is(
    batch.keys.length / 32,
    new Set(mixed.map((j) => Buffer.from(j.publicKey).toString('hex'))).size,
  );
  assert.equal(verifyBatch(mixed), verifyBatch(js));
});

test('batch results equal one-by-one verification (parallel, above the threshold)', () => {
  const { jobs: js, expected } = jobs(PARALLEL_THRESHOLD + 200);
  const got = verifyBatch(js, { parallel: true });
  assert.equal(got, expected);
  js.forEach((j, i) =>
    assert.is(got[i], verifyBytes(j.publicKey, j.message, j.signature), `job ${i}`),
  );
});

test('batch results equal one-by-one verification (single thread, small batch)', () => {
  const { jobs: js, expected } = jobs(300);
  assert.equal(verifyBatch(js, { parallel: false }), expected);
  assert.equal(verifyBatch([]), []);
});

// The helper thread on its own (the calling thread takes no job), from the TypeScript source and from
// the compiled file the shipped command loads (dist/, built by npm test before the tests run).
for (const [label, module] of [
  ['source', undefined],
  [
    'dist',
    pathToFileURL(fileURLToPath(new URL('../../dist/batch-verify-worker.js', import.meta.url))),
  ],
] as const) {
  test(`the helper thread (${label}) verifies a whole batch by itself`, async () => {
    if (module && !existsSync(module))
      assert.unreachable('dist/batch-verify-worker.js is missing: run npm run build');
    const { jobs: js, expected } = jobs(300);
    const { batch } = buildBatch(js);
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on('warning', onWarning);
    try {
      const helper = startHelper(batch, module);
      assert.ok(helper);
      helper!.ref(); // startHelper unrefs it (the caller never waits on it); this test does
      await new Promise<void>((resolve, reject) => {
        helper!.once('exit', () => resolve());
        helper!.once('error', reject);
      });
      assert.is(Atomics.load(batch.counters, 1), js.length, 'the helper finished every job');
      // The batch answers OpenSSL's verdict; the strictly non-canonical signatures (S + L) are refused by it too.
      assert.equal(
        [...batch.status].map((s) => s === 1),
        expected,
      );
      assert.equal(warnings, []);
    } finally {
      process.off('warning', onWarning);
    }
  });
}

test('a helper thread is used for a large batch on more than one core, unless the caller says no', () => {
  assert.is(useHelperThread(PARALLEL_THRESHOLD, undefined, 2), true);
  assert.is(useHelperThread(PARALLEL_THRESHOLD, true, 2), true);
  assert.is(useHelperThread(PARALLEL_THRESHOLD - 1, true, 2), false);
  assert.is(useHelperThread(PARALLEL_THRESHOLD, false, 2), false);
  assert.is(useHelperThread(PARALLEL_THRESHOLD, true, 1), false);
  assert.is(useHelperThread(10 * PARALLEL_THRESHOLD), availableParallelism() > 1);
});

test('buildBatch parses each distinct public key once', () => {
  const { jobs: js } = jobs(300);
  const { batch, keyObjects } = buildBatch(js);
  assert.is(keyObjects.length, 3);
  assert.is(batch.keys.length, 3 * 32);
  assert.is(batch.status.length, 300);
  // a key object is built when a job first needs it, then reused; an index with no key has none
  const first = keyObjects.get(0);
  assert.ok(first !== undefined);
  assert.is(keyObjects.get(0), first);
  assert.is(keyObjects.get(3), undefined);
  assert.is(keyObjects.get(-1), undefined);
});

test('key objects: the same key as its DER SubjectPublicKeyInfo, and the same verdict, for any 32 bytes', () => {
  const seed = new Uint8Array(randomBytes(32));
  const message = new Uint8Array(randomBytes(100));
  const signature = signBytes(seed, message);
  // a real key, the all-zero and all-ones encodings, a non-canonical y, random bytes (mostly not points)
  const raws = [
    publicKeyFromSeed(seed),
    new Uint8Array(32),
    new Uint8Array(32).fill(0xff),
    Uint8Array.from(Buffer.from(`ec${'ff'.repeat(30)}7f`, 'hex')),
    ...Array.from({ length: 50 }, () => new Uint8Array(randomBytes(32))),
  ];
  const keys = new Uint8Array(raws.length * 32);
  raws.forEach((r, i) => keys.set(r, i * 32));
  const objects = new KeyObjects(keys);
  const spki = Buffer.from('302a300506032b6570032100', 'hex');
  const verdict = (key: () => KeyObject | undefined) => {
    try {
      return verify(null, message, key()!, signature);
    } catch (e) {
      return `refused: ${(e as Error).name}`;
    }
  };
  raws.forEach((raw, i) => {
    const der = createPublicKey({ key: Buffer.concat([spki, raw]), format: 'der', type: 'spki' });
    assert.ok(objects.get(i)!.equals(der), `key ${i}`);
    assert.is(
      verdict(() => objects.get(i)),
      verdict(() => der),
      `key ${i}`,
    );
  });
  assert.is(
    verdict(() => objects.get(0)),
    true,
  );
});

test('the helper main, run in this thread: every job answered, the finished counter complete', () => {
  const { jobs: js, expected } = jobs(200);
  const { batch } = buildBatch(js);
  helperMain(batch);
  assert.is(Atomics.load(batch.counters, 1), js.length);
  assert.equal(
    [...batch.status].map((s) => s === 1),
    expected,
  );
});

/** A thread running `source` (CommonJS) with `data`; resolves with the messages it posted once it exits. */
function thread(
  source: string,
  data: unknown,
  onMessage?: (m: unknown) => void,
): Promise<unknown[]> {
  const w = new Worker(source, { eval: true, workerData: data });
  const messages: unknown[] = [];
  w.on('message', (m) => {
    messages.push(m);
    onMessage?.(m);
  });
  return new Promise((resolve, reject) => {
    w.once('error', reject);
    w.once('exit', () => resolve(messages));
  });
}

test('the helper main wakes a caller blocked on the finished counter (it does not sit out its wait)', async () => {
  const { jobs: js } = jobs(200);
  const { batch } = buildBatch(js);
  let waiting!: () => void;
  const started = new Promise<void>((r) => (waiting = r));
  const done = thread(
    `const { workerData, parentPort } = require('node:worker_threads');
     parentPort.postMessage('waiting');
     parentPort.postMessage(Atomics.wait(workerData, 1, 0, 20000));`,
    batch.counters,
    (m) => m === 'waiting' && waiting(),
  );
  await started;
  await new Promise((r) => setTimeout(r, 200)); // let it block (if it has not, it sees 'not-equal')
  helperMain(batch);
  const [, outcome] = await done;
  assert.ok(outcome === 'ok' || outcome === 'not-equal', `the waiter ${String(outcome)}`);
});

test('awaitHelper: all finished -> true at once; no progress -> false after the stall bound', () => {
  const counters = new Int32Array(new SharedArrayBuffer(8));
  Atomics.store(counters, 1, 10);
  assert.is(awaitHelper(counters, 10, 60_000), true);
  Atomics.store(counters, 1, 9);
  assert.is(awaitHelper(counters, 10, 100), false);
});

test('awaitHelper waits for a helper that keeps making progress, however long past the stall bound', async () => {
  const counters = new Int32Array(new SharedArrayBuffer(8));
  const steps = 60;
  let first!: () => void;
  const started = new Promise<void>((r) => (first = r));
  const done = thread(
    `const { workerData: { counters, steps }, parentPort } = require('node:worker_threads');
     const pause = new Int32Array(new SharedArrayBuffer(4));
     Atomics.store(counters, 1, 1);
     parentPort.postMessage('started');
     for (let i = 2; i <= steps; i++) {
       Atomics.wait(pause, 0, 0, 40);
       Atomics.store(counters, 1, i);
       Atomics.notify(counters, 1);
     }`,
    { counters, steps },
    (m) => m === 'started' && first(),
  );
  await started;
  // The stall bound (1 s) is much shorter than the whole run (about 2.4 s) and much longer than one step.
  assert.is(awaitHelper(counters, steps, 1000), true);
  assert.is(Atomics.load(counters, 1), steps);
  await done;
});

test('finishUndone runs exactly the jobs no thread answered; a job OpenSSL cannot run is refused', () => {
  const { jobs: js, expected } = jobs(100);
  const { batch, keyObjects } = buildBatch(js);
  const bad = expected.indexOf(false);
  const good = expected.indexOf(true);
  // As if a thread had answered these two (wrongly, so a re-run would show).
  batch.status[bad] = 1;
  batch.status[good] = 2;
  finishUndone(batch, keyObjects);
  assert.is(batch.status[bad], 1);
  assert.is(batch.status[good], 2);
  [...batch.status].forEach((s, i) => {
    if (i !== bad && i !== good) assert.is(s === 1, expected[i], `job ${i}`);
  });
  batch.keyIndex[good] = keyObjects.length; // no such key object
  runJob(batch, keyObjects, good);
  assert.is(batch.status[good], 2);
});

test('a helper that cannot start or dies is reported on stderr and costs only speed', async () => {
  const { jobs: js, expected } = jobs(50);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    // Not loadable as a worker at all: refused at once, no helper.
    const remote = new URL('https://example.invalid/batch-verify-worker.js');
    assert.is(startHelper(buildBatch(js).batch, remote), undefined);
    // A missing file: the thread starts and fails.
    const missing = pathToFileURL('/nonexistent/batch-verify-worker.js');
    const { batch, keyObjects } = buildBatch(js);
    const helper = startHelper(batch, missing);
    assert.ok(helper);
    helper!.ref();
    await new Promise<void>((resolve) => helper!.once('exit', () => resolve()));
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 2, warnings.join('\n'));
    assert.match(
      warnings[0]!,
      `signature batch helper thread (${remote.href}) failed, verifying on one thread: `,
    );
    assert.match(
      warnings[1]!,
      `signature batch helper thread (${missing.href}) failed, verifying on one thread: `,
    );
    finishUndone(batch, keyObjects);
    assert.equal(
      [...batch.status].map((s) => s === 1),
      expected,
    );
  } finally {
    process.off('warning', onWarning);
  }
});

test.run();
