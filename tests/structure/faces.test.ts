// Folders have faces (issue 7): other folders import a product folder only through its index.ts, the
// folders keep their layering (protocol at the bottom, no upward or sideways imports) and the reconciler
// stays pure. The rule lives in scripts/faces.ts; `node --import tsx scripts/faces.ts` fixes most
// violations (it rewrites bypassing imports and regenerates the faces' re-exports).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tree, check, codemod, directSource } from '../../scripts/faces.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

test('every product import goes through the face, follows the layering and keeps the reconciler pure', () => {
  const violations = check(ROOT).map((v) => `${v.file} -> ${v.target}: ${v.why}`);
  assert.equal(
    violations,
    [],
    `run \`node --import tsx scripts/faces.ts\` to fix bypasses:\n${violations.join('\n')}`,
  );
});

/** A small product tree in a temporary directory. */
function tree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nf-faces-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

test('the check names each bypass, upward import, face `export *` and impure reconciler import', () => {
  const dir = tree({
    'protocol/keys.ts': 'export const b64 = (x: string) => x;\n',
    'protocol/verify/tree.ts': 'export function verifyTree(): void {}\n',
    'protocol/verify/index.ts': "export * from './tree.ts';\n",
    'agent/cycle.ts':
      "import { b64 } from '../protocol/keys.ts';\nconst later = () => import('../protocol/keys.ts');\n",
    'protocol/oops.ts': "import type { X } from '../agent/cycle.ts';\n",
    'reconciler/decide.ts': "import { readFileSync } from 'node:fs';\n",
    'reconciler/simulator/sim.ts': "import { createHash } from 'node:crypto';\n",
  });
  try {
    const got = check(dir)
      .map((v) => `${v.file} -> ${v.target}: ${v.why}`)
      .sort();
    assert.equal(got, [
      'agent/cycle.ts -> protocol/keys.ts: bypasses protocol/index.ts',
      'agent/cycle.ts -> protocol/keys.ts: bypasses protocol/index.ts',
      'protocol/oops.ts -> agent/cycle.ts: bypasses agent/index.ts',
      'protocol/oops.ts -> agent/cycle.ts: protocol may not import agent (it may import: nothing)',
      'protocol/verify/index.ts -> protocol/verify/tree.ts: export * in a face (name it)',
      'reconciler/decide.ts -> node:fs: the reconciler is pure (no Node built-ins)',
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the codemod routes imports through the faces (nested packages through their own), names exactly what is used, and is re-runnable', () => {
  const dir = tree({
    'protocol/keys.ts':
      'export const b64 = (x: string) => x;\nexport interface SigningKey { id: string }\nexport const unused = 1;\n',
    'protocol/verify/tree.ts':
      'export function verifyTree(): void {}\nexport function auditTree(): void {}\n',
    'protocol/verify/index.ts': "// Verification.\nexport * from './tree.ts';\n",
    'protocol/index.ts': "// Protocol.\nexport { unused } from './keys.ts';\n",
    'agent/cycle.ts':
      "import { b64 } from '../protocol/keys.ts';\nimport type { SigningKey } from '../protocol/keys.ts';\nimport { verifyTree } from '../protocol/verify/tree.ts';\nexport const k: SigningKey = { id: b64('x') };\nverifyTree();\n",
    'tests/a.test.ts': "import { auditTree } from '../protocol/verify/index.ts';\nauditTree();\n",
  });
  const read = (p: string) => readFileSync(join(dir, p), 'utf8');
  try {
    const r = codemod(dir);
    assert.equal(r.problems, []);
    assert.is(
      read('agent/cycle.ts'),
      "import { b64, type SigningKey, verifyTree } from '../protocol/index.ts';\nexport const k: SigningKey = { id: b64('x') };\nverifyTree();\n",
    );
    // `unused` had no importer: its re-export is dead and goes; the nested package is reached through its face.
    assert.is(
      read('protocol/index.ts'),
      "// Protocol.\nexport { b64 } from './keys.ts';\nexport type { SigningKey } from './keys.ts';\nexport { verifyTree } from './verify/index.ts';\n",
    );
    // The test's import keeps auditTree alive; `export *` becomes named re-exports.
    assert.is(
      read('protocol/verify/index.ts'),
      "// Verification.\nexport { auditTree, verifyTree } from './tree.ts';\n",
    );
    // A face appears where a folder had none.
    writeFileSync(
      join(dir, 'agent/run.ts'),
      "import { verifyTree } from '../protocol/verify/tree.ts';\nexport const run = verifyTree;\n",
    );
    mkdirSync(join(dir, 'cli'));
    writeFileSync(join(dir, 'cli/main.ts'), "import { run } from '../agent/run.ts';\nrun();\n");
    const again = codemod(dir);
    assert.equal(again.problems, []);
    assert.match(read('agent/index.ts'), "export { run } from './run.ts';\n");
    assert.is(read('cli/main.ts'), "import { run } from '../agent/index.ts';\nrun();\n");
    assert.equal(check(dir), []);
    // A third run over a clean tree changes nothing.
    const before = [
      'agent/cycle.ts',
      'agent/run.ts',
      'agent/index.ts',
      'protocol/index.ts',
      'protocol/verify/index.ts',
    ].map(read);
    const third = codemod(dir);
    assert.equal([third.rewrittenFiles, third.faces], [[], []]);
    assert.equal(
      [
        'agent/cycle.ts',
        'agent/run.ts',
        'agent/index.ts',
        'protocol/index.ts',
        'protocol/verify/index.ts',
      ].map(read),
      before,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the build's direct imports keep a statement of types only type-only (no module loaded for it)", () => {
  const dir = tree({
    'protocol/keys.ts':
      'export interface Key { id: string }\nexport const b64 = (x: string) => x;\n',
    'protocol/index.ts':
      "export { b64 } from './keys.ts';\nexport type { Key } from './keys.ts';\n",
    'agent/a.ts':
      "import type { Key } from '../protocol/index.ts';\nexport const k = (x: Key) => x.id;\n",
    'agent/b.ts':
      "import { b64, type Key } from '../protocol/index.ts';\nexport const k = (x: Key) => b64(x.id);\n",
  });
  try {
    const t = new Tree(dir);
    const a = directSource(t, join(dir, 'agent/a.ts'))!;
    assert.match(a, "import type { Key } from '../protocol/keys.ts';");
    const b = directSource(t, join(dir, 'agent/b.ts'))!;
    assert.match(b, "import { b64, type Key } from '../protocol/keys.ts';");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
