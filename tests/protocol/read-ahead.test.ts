// Reading a tree's files ahead on a helper thread (protocol/read-ahead.ts): the caller is handed
// exactly the bytes its own read would give, and every file the helper could not read as a capped
// regular file is left to the caller, whose own read reports it as it always did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startReadAhead, type ReadAhead } from '../../protocol/read-ahead.ts';
import { diskFetch, readTreeFile } from '../../protocol/disk-tree.ts';
import { LIMITS } from '../../protocol/limits.ts';
import { hostManifestPath } from '../../protocol/layout.ts';
import { verifyTree, type Fetch, type ManifestSignatures } from '../../protocol/verify/index.ts';
import { NOW, createSiteFixture, type SiteFixture } from '../site-gen/fixture.ts';
import { readCappedFile } from '../../protocol/capped-file.ts';

const MAX = 1024;
const dirs: string[] = [];
test.after.each(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** 300 files (the last ones of which the helper reads first), some of them not readable as they are. */
function files(): { paths: string[]; labels: string[]; bad: Set<string> } {
  const dir = mkdtempSync(join(tmpdir(), 'read-ahead-'));
  dirs.push(dir);
  const labels = Array.from({ length: 300 }, (_, i) => `hosts/host-${i}.json`);
  mkdirSync(join(dir, 'hosts'));
  labels.forEach((l, i) => writeFileSync(join(dir, l), `{"host":${i},"pad":"${'x'.repeat(i)}"}`));
  const bad = new Set([labels[290]!, labels[291]!, labels[292]!, labels[293]!]);
  rmSync(join(dir, labels[290]!)); // missing
  writeFileSync(join(dir, labels[291]!), 'y'.repeat(MAX + 1)); // over the cap
  rmSync(join(dir, labels[292]!));
  mkdirSync(join(dir, labels[292]!)); // not a regular file
  rmSync(join(dir, labels[293]!));
  execFileSync('mkfifo', [join(dir, labels[293]!)]); // a FIFO: must not block the helper
  return { paths: labels.map((l) => join(dir, l)), labels, bad };
}

/** What the caller's own read gives: the bytes, or the error's message. */
function ownRead(path: string, label: string): string {
  try {
    return readCappedFile(path, MAX, label).toString('utf8');
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
}

const DIST_WORKER = pathToFileURL(
  fileURLToPath(new URL('../../dist/read-ahead-worker.js', import.meta.url)),
);
for (const [label, module] of [
  ['source', undefined],
  ['dist', DIST_WORKER],
] as const) {
  test(`the helper (${label}) hands over exactly the bytes the caller's read gives, and nothing it could not read`, async () => {
    if (module && !existsSync(module))
      assert.unreachable('dist/read-ahead-worker.js is missing: run npm run build');
    const { paths, labels, bad } = files();
    const ahead = startReadAhead(paths, labels, MAX, {
      always: true,
      ...(module ? { module } : {}),
    });
    assert.ok(ahead !== null);
    await ahead.ended();
    let handed = 0;
    labels.forEach((l, i) => {
      const bytes = ahead.take(l, MAX);
      if (bad.has(l)) {
        assert.is(bytes, undefined, l);
        // The caller's own read refuses it, naming the file.
        assert.match(ownRead(paths[i]!, l), /^error: .*(ENOENT|hosts\/host-29[0-3]\.json)/);
        return;
      }
      assert.ok(bytes !== undefined, `${l} was not read ahead`);
      assert.is(Buffer.from(bytes).toString('utf8'), ownRead(paths[i]!, l), l);
      handed++;
    });
    assert.is(handed, 296);
    // A smaller cap than the helper read with: left to the caller (who refuses it as too large).
    assert.is(ahead.take(labels[250]!, 10), undefined);
    // A path not in the list: the caller's.
    assert.is(ahead.take('hosts/other.json', MAX), undefined);
    // Too few files to pay for a thread: none is started.
    assert.is(startReadAhead(paths, labels, MAX), null);
  });
}

test('the helper stops where the caller has got to: files the caller read are not read again', async () => {
  const { paths, labels } = files();
  const ahead = startReadAhead(paths, labels, MAX, { always: true })!;
  // Before the helper has sent anything, the caller asks for the last file: it reads all itself.
  assert.is(ahead.take(labels[299]!, MAX), undefined);
  await ahead.ended();
  for (const l of labels) assert.is(ahead.take(l, MAX), undefined, l);
});

test('a helper that cannot start is reported on stderr and leaves every file to the caller', async () => {
  const { paths, labels } = files();
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.message);
  process.on('warning', onWarning);
  try {
    const missing = pathToFileURL('/nonexistent/read-ahead-worker.js');
    const ahead = startReadAhead(paths, labels, MAX, { always: true, module: missing });
    if (ahead !== null) {
      await ahead.ended();
      for (const l of labels) assert.is(ahead.take(l, MAX), undefined, l);
    }
    await new Promise((r) => setImmediate(r));
    assert.is(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, `read-ahead helper thread (${missing.href}) failed`);
  } finally {
    process.off('warning', onWarning);
  }
});

test('bytes a file had when the helper read it are what the caller checks (the file is read once)', async () => {
  const { paths, labels } = files();
  const ahead = startReadAhead(paths, labels, MAX, { always: true })!;
  await ahead.ended();
  writeFileSync(paths[0]!, 'changed after it was read');
  assert.is(Buffer.from(ahead.take(labels[0]!, MAX)!).toString('utf8'), '{"host":0,"pad":""}');
  assert.is(readFileSync(paths[0]!, 'utf8'), 'changed after it was read');
});

/**
 * A disk fetch whose read-ahead helper has read every file before the first is asked for (the
 * walk's hint starts it, its fetch waits for it to end): every manifest it could read comes from it.
 */
function fetchReadAhead(treeDir: string): { fetch: Fetch; taken: () => number } {
  let ahead: ReadAhead | null = null;
  let taken = 0;
  const fetch: Fetch = async (path, maxBytes) => {
    await ahead?.ended();
    const bytes = ahead?.take(path, maxBytes);
    if (bytes !== undefined) taken++;
    return bytes ?? readTreeFile(treeDir, path, maxBytes);
  };
  fetch.readAhead = (paths, maxBytes) => {
    ahead = startReadAhead(
      paths.map((p) => join(treeDir, p)),
      paths,
      maxBytes,
      { always: true },
    );
    return () => ahead?.stop();
  };
  return { fetch, taken: () => taken };
}

/** The walk's report (or its error) over the tree, read by `fetch`. */
async function walk(
  f: SiteFixture,
  fetch: Fetch,
  signatures: ManifestSignatures,
): Promise<unknown> {
  try {
    return await verifyTree({ fetch }, f.root, { now: NOW, manifestSignatures: signatures });
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

test('the release walk gives the same report, or refuses a manifest with the same error, with its manifests read ahead', async () => {
  const changes = ['none', 'tampered', 'oversized', 'missing'] as const;
  for (const change of changes)
    for (const signatures of ['each', 'bound-by-index'] as const) {
      const f = createSiteFixture();
      try {
        const hosts = readdirSync(join(f.treeDir, 'releases', '1', 'hosts'));
        const file = join(f.treeDir, hostManifestPath(1, hosts.at(-2)!.replace(/\.json$/, '')));
        const text = readFileSync(file, 'utf8');
        if (change === 'tampered')
          writeFileSync(file, text.replace('"fleet":"generated"', '"fleet":"generatee"'));
        if (change === 'oversized') writeFileSync(file, text + ' '.repeat(LIMITS.hostManifest));
        if (change === 'missing') rmSync(file);
        const ahead = fetchReadAhead(f.treeDir);
        const plain = await walk(f, diskFetch(f.treeDir), signatures);
        assert.equal(await walk(f, ahead.fetch, signatures), plain, `${change}, ${signatures}`);
        if (change !== 'none') assert.type(plain, 'string', `${change} was not refused`);
        // The helper handed over every manifest the walk fetched; one that cannot be read ends the
        // walk there (the second last: the last is not fetched), its own read refusing it.
        assert.is(
          ahead.taken(),
          hosts.length - (change === 'none' || change === 'tampered' ? 0 : 2),
          `${change}, ${signatures}`,
        );
      } finally {
        f.cleanup();
      }
    }
});

test.run();
