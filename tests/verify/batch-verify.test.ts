import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { randomBytes } from 'node:crypto';
import { publicKeyFromSeed, signBytes, verifyBytes } from '../../protocol/ed25519.ts';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { existsSync } from 'node:fs';
import {
  buildBatch,
  startHelper,
  verifyBatch,
  PARALLEL_THRESHOLD,
  type SignatureJob,
} from '../../protocol/verify/batch-verify.ts';

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
function addL(sig: Uint8Array): Uint8Array {
  let s = sig.subarray(32).reduceRight((n, b) => (n << 8n) | BigInt(b), 0n) + L;
  const out = sig.slice();
  for (let i = 32; i < 64; i++, s >>= 8n) out[i] = Number(s & 255n);
  return out;
}

function jobs(n: number): { jobs: SignatureJob[]; expected: boolean[] } {
  const seeds = [0, 1, 2].map(() => new Uint8Array(randomBytes(32)));
  const out: SignatureJob[] = [];
  const expected: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const seed = seeds[i % 3]!;
    const message = new Uint8Array(randomBytes(64 + (i % 300)));
    let signature = signBytes(seed, message);
    let ok = true;
    if (i % 97 === 5) {
      signature = signature.slice();
      signature[10]! ^= 4;
      ok = false;
    } else if (i % 89 === 7) {
      signature = addL(signature);
      ok = false;
    } else if (i % 83 === 3) {
      out.push({ publicKey: publicKeyFromSeed(seeds[(i + 1) % 3]!), message, signature });
      expected.push(false);
      continue;
    }
    out.push({ publicKey: publicKeyFromSeed(seed), message, signature });
    expected.push(ok);
  }
  return { jobs: out, expected };
}

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

test.run();
