// Folders have faces (issue 7): a product folder is entered only through its index.ts. This module holds
// the rule once; tests/structure/faces.test.ts checks it, and run as a script it is the codemod that
// makes the tree follow it:
//
//   node --import tsx scripts/faces.ts [root]     rewrite bypassing imports to the face, regenerate re-exports
//   node --import tsx scripts/faces.ts --check    print the violations, exit 1 if any (what the test asserts)
//
// The rule. A package is a product folder (PRODUCT below) or any folder inside one that has an index.ts
// (protocol/verify, protocol/schemas, agent/activators, agent/probes). An import from file I of module M
// must name the index.ts of the OUTERMOST package that contains M but not I, if there is one. So from
// outside protocol/, `protocol/verify/tree.ts` is reached only through `protocol/index.ts` (one face per
// product folder; callers need not know its inner layout); from protocol/keys.ts it is reached through
// `protocol/verify/index.ts`; inside protocol/verify/ imports stay direct. Faces follow the same rule, so
// protocol/index.ts re-exports verifyTree from './verify/index.ts'. tests/ and bench/ may import internals.
//
// The codemod is re-runnable (after merges that add new bypassing imports): it rewrites each bypassing
// import (merging imports of one face into one statement), then regenerates every face's re-export
// statements (`export { a } from` / `export type { T } from`, never `export *`) to exactly the names
// someone imports through it (product code, tests or bench); re-exports nobody uses are removed. A face's
// own declarations (agent/probes/index.ts's ProbeSession) are left as they are.
import {
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
  renameSync,
} from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

/** Product folders, each with the folders it may import (the layering: no upward imports, no peers). */
export const LAYERS: Record<string, readonly string[]> = {
  protocol: [],
  reconciler: ['protocol'],
  publisher: ['protocol'],
  agent: ['protocol', 'reconciler'],
  'control-plane': ['protocol', 'reconciler'],
  'read-side': ['protocol', 'reconciler', 'agent'],
  'site-gen': ['protocol', 'reconciler', 'agent', 'read-side'],
  demo: ['protocol', 'reconciler', 'publisher', 'agent', 'control-plane', 'read-side'],
  cli: [
    'protocol',
    'reconciler',
    'publisher',
    'agent',
    'control-plane',
    'read-side',
    'site-gen',
    'demo',
  ],
};
export const PRODUCT = Object.keys(LAYERS);
/** Folders whose code may import product internals (unit tests test internals). */
const USERS = ['tests', 'bench'];
/** The reconciler is pure: no I/O, no clock, no node: built-ins (its simulator, a test bench, may). */
// node:module is allowed: maintenance.ts loads the `cron` package on first use (a timer-driven agent
// run that meets no maintenance window should not pay for loading it), which is neither I/O nor a clock.
const PURE = { folder: 'reconciler', except: 'reconciler/simulator/', allow: ['node:module'] };

const HEADER = (top: string) =>
  `// Public face of ${top}/: other folders import ${top} only through this file (docs/architecture.md,\n` +
  `// "Folders and their faces"). The re-exports are maintained by scripts/faces.ts; do not edit them by hand.\n`;

// ---------------------------------------------------------------- parsing

interface Named {
  name: string;
  property: string;
  typeOnly: boolean;
}
interface ModuleRef {
  kind: 'import' | 'export' | 'dynamic';
  spec: string;
  /** Absolute path the specifier resolves to. */
  target: string;
  typeOnly: boolean;
  /** Named bindings; null for namespace, default or bare imports (which a face cannot serve by name). */
  names: Named[] | null;
  star: boolean;
  start: number;
  end: number;
  /** Start of the specifier string literal (with its quote), for rewriting dynamic imports. */
  specStart: number;
  specEnd: number;
}
interface Parsed {
  file: string;
  text: string;
  refs: ModuleRef[];
  localExports: Set<string>;
  builtins: string[];
}

function parse(file: string): Parsed {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const refs: ModuleRef[] = [];
  const localExports = new Set<string>();
  const builtins: string[] = [];
  const ref = (
    kind: ModuleRef['kind'],
    lit: ts.StringLiteral,
    node: ts.Node,
    extra: Partial<ModuleRef>,
  ): void => {
    if (lit.text.startsWith('node:')) builtins.push(lit.text);
    if (!lit.text.startsWith('.')) return;
    refs.push({
      kind,
      spec: lit.text,
      target: resolve(dirname(file), lit.text),
      typeOnly: false,
      names: null,
      star: false,
      start: node.getStart(sf),
      end: node.getEnd(),
      specStart: lit.getStart(sf),
      specEnd: lit.getEnd(),
      ...extra,
    });
  };
  const named = (els: ts.NodeArray<ts.ImportSpecifier | ts.ExportSpecifier>): Named[] =>
    els.map((e) => ({
      name: e.name.text,
      property: (e.propertyName ?? e.name).getText(sf),
      typeOnly: e.isTypeOnly,
    }));
  const hasExport = (n: ts.Node) =>
    ts.canHaveModifiers(n) &&
    (ts.getModifiers(n) ?? []).some((m) => m.kind === ts.SyntaxKind.ExportKeyword);

  for (const st of sf.statements) {
    if (ts.isImportDeclaration(st) && ts.isStringLiteral(st.moduleSpecifier)) {
      const c = st.importClause;
      const plain =
        c && !c.name && c.namedBindings && ts.isNamedImports(c.namedBindings)
          ? named(c.namedBindings.elements)
          : null;
      ref('import', st.moduleSpecifier, st, { typeOnly: c?.isTypeOnly ?? false, names: plain });
    } else if (ts.isExportDeclaration(st)) {
      if (st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
        const c = st.exportClause;
        ref('export', st.moduleSpecifier, st, {
          typeOnly: st.isTypeOnly,
          star: !c,
          names: c && ts.isNamedExports(c) ? named(c.elements) : null,
        });
      } else if (st.exportClause && ts.isNamedExports(st.exportClause)) {
        for (const e of st.exportClause.elements) localExports.add(e.name.text);
      }
    } else if (hasExport(st)) {
      if (ts.isVariableStatement(st)) {
        for (const d of st.declarationList.declarations)
          if (ts.isIdentifier(d.name)) localExports.add(d.name.text);
      } else if (
        (ts.isFunctionDeclaration(st) ||
          ts.isClassDeclaration(st) ||
          ts.isInterfaceDeclaration(st) ||
          ts.isTypeAliasDeclaration(st) ||
          ts.isEnumDeclaration(st)) &&
        st.name
      ) {
        localExports.add(st.name.text);
      }
    }
  }
  // The names `const { a, b: c } = await import('m')` takes from m (a face must keep exporting them);
  // null for any other use of the module object (then it is not by name).
  const destructured = (call: ts.CallExpression): Named[] | null => {
    const awaited = ts.isAwaitExpression(call.parent) ? call.parent : null;
    const decl = awaited && ts.isVariableDeclaration(awaited.parent) ? awaited.parent : null;
    if (!decl || !ts.isObjectBindingPattern(decl.name)) return null;
    const names: Named[] = [];
    for (const e of decl.name.elements) {
      const key = e.propertyName ?? e.name;
      if (e.dotDotDotToken || !ts.isIdentifier(key)) return null;
      names.push({ name: key.text, property: key.text, typeOnly: false });
    }
    return names;
  };
  const walk = (n: ts.Node): void => {
    if (
      ts.isCallExpression(n) &&
      n.expression.kind === ts.SyntaxKind.ImportKeyword &&
      n.arguments[0] &&
      ts.isStringLiteral(n.arguments[0])
    ) {
      ref('dynamic', n.arguments[0], n, { names: destructured(n) });
    } else if (
      ts.isImportTypeNode(n) &&
      ts.isLiteralTypeNode(n.argument) &&
      ts.isStringLiteral(n.argument.literal)
    ) {
      // `import('m').Name`: the name is used as a type.
      const q = n.qualifier;
      const names =
        q && ts.isIdentifier(q) ? [{ name: q.text, property: q.text, typeOnly: true }] : null;
      ref('dynamic', n.argument.literal, n, { typeOnly: true, names });
    }
    ts.forEachChild(n, walk);
  };
  walk(sf);
  return { file, text, refs, localExports, builtins };
}

function tsFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) out.push(...tsFiles(full));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}

// ---------------------------------------------------------------- the rule

export class Tree {
  readonly root: string;
  readonly product: Parsed[];
  readonly users: Parsed[];
  readonly packages: Set<string>;
  private readonly byFile = new Map<string, Parsed>();

  constructor(root: string) {
    this.root = resolve(root);
    this.product = PRODUCT.flatMap((top) => tsFiles(join(this.root, top))).map(parse);
    this.users = USERS.flatMap((top) => tsFiles(join(this.root, top))).map(parse);
    for (const p of [...this.product, ...this.users]) this.byFile.set(p.file, p);
    this.packages = new Set(PRODUCT.map((top) => join(this.root, top)));
    for (const p of this.product)
      if (p.file.endsWith(`${sep}index.ts`)) this.packages.add(dirname(p.file));
  }

  rel(file: string): string {
    return relative(this.root, file).split(sep).join('/');
  }

  top(file: string): string | undefined {
    const first = this.rel(file).split('/')[0]!;
    return PRODUCT.includes(first) ? first : undefined;
  }

  parsed(file: string): Parsed | undefined {
    return this.byFile.get(file);
  }

  /** The face `importer` must use to reach `target`, or null when it may import `target` directly. */
  faceFor(importer: string, target: string): string | null {
    const rel = this.rel(target).split('/');
    for (let i = 1; i < rel.length; i++) {
      const pkg = join(this.root, ...rel.slice(0, i));
      if (!this.packages.has(pkg) || importer.startsWith(pkg + sep)) continue;
      const face = join(pkg, 'index.ts');
      return face === target ? null : face;
    }
    return null;
  }

  isFace(file: string): boolean {
    return file.endsWith(`${sep}index.ts`) && this.packages.has(dirname(file));
  }

  /** Where `name`, exported by `file`, is declared (following re-exports), or null if `file` does not export it. */
  origin(
    file: string,
    name: string,
    seen = new Set<string>(),
  ): { file: string; name: string } | null {
    const p = this.parsed(file);
    if (!p || seen.has(`${file}#${name}`)) return null;
    seen.add(`${file}#${name}`);
    if (p.localExports.has(name)) return { file, name };
    for (const r of p.refs) {
      if (r.kind !== 'export') continue;
      const hit = r.names?.find((n) => n.name === name);
      if (hit)
        return this.origin(r.target, hit.property, seen) ?? { file: r.target, name: hit.property };
    }
    for (const r of p.refs)
      if (r.kind === 'export' && r.star) {
        const o = this.origin(r.target, name, seen);
        if (o) return o;
      }
    return null;
  }
}

export interface Violation {
  file: string;
  target: string;
  why: string;
}

/** Every import that breaks the rule, the layering or the reconciler's purity; empty when the tree is clean. */
export function check(root: string): Violation[] {
  const t = new Tree(root);
  const out: Violation[] = [];
  for (const p of t.product) {
    const from = t.top(p.file)!;
    for (const r of p.refs) {
      const to = t.top(r.target);
      const face = t.faceFor(p.file, r.target);
      if (face)
        out.push({ file: t.rel(p.file), target: t.rel(r.target), why: `bypasses ${t.rel(face)}` });
      if (r.kind === 'export' && r.star && t.isFace(p.file))
        out.push({
          file: t.rel(p.file),
          target: t.rel(r.target),
          why: 'export * in a face (name it)',
        });
      if (to && to !== from && !LAYERS[from]!.includes(to))
        out.push({
          file: t.rel(p.file),
          target: t.rel(r.target),
          why: `${from} may not import ${to} (it may import: ${LAYERS[from]!.join(', ') || 'nothing'})`,
        });
    }
    const rel = t.rel(p.file);
    if (rel.startsWith(`${PURE.folder}/`) && !rel.startsWith(PURE.except)) {
      for (const b of p.builtins)
        if (!PURE.allow.includes(b))
          out.push({ file: rel, target: b, why: 'the reconciler is pure (no Node built-ins)' });
    }
  }
  return out;
}

// ---------------------------------------------------------------- the codemod

interface Export {
  name: string;
  origin: { file: string; name: string };
  value: boolean;
}

function specifier(from: string, to: string): string {
  const s = relative(dirname(from), to).split(sep).join('/');
  return s.startsWith('.') ? s : `./${s}`;
}

function namedList(
  names: { name: string; property: string; typeOnly: boolean }[],
  allTypes: boolean,
): string {
  const one = (n: { name: string; property: string; typeOnly: boolean }) =>
    `${n.typeOnly && !allTypes ? 'type ' : ''}${n.property === n.name ? n.name : `${n.property} as ${n.name}`}`;
  return `{ ${names.map(one).join(', ')} }`;
}

/** Applies edits [start, end, text] to text, last first. */
function splice(text: string, edits: [number, number, string][]): string {
  for (const [s, e, r] of [...edits].sort((a, b) => b[0] - a[0]))
    text = text.slice(0, s) + r + text.slice(e);
  return text;
}

/** Extends [start, end) over the rest of the line, so a removed statement leaves no empty line. */
function wholeLine(text: string, end: number): number {
  return text[end] === '\n' ? end + 1 : end;
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.faces-${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

export interface CodemodResult {
  rewrittenFiles: string[];
  faces: { face: string; added: string[]; removed: string[] }[];
  problems: string[];
}

/** Rewrites bypassing imports to their faces and regenerates every face's re-exports. Re-runnable. */
export function codemod(root: string): CodemodResult {
  const t = new Tree(root);
  const problems: string[] = [];
  const edits = new Map<string, [number, number, string][]>();
  const edit = (file: string, e: [number, number, string]) =>
    edits.set(file, [...(edits.get(file) ?? []), e]);

  // 1. What each face must export: every by-name import through it (from product code, tests or bench),
  //    and every bypassing import that step 2 sends through it. Names are traced to their declarations
  //    now, before anything is rewritten; a face re-exporting from inside a nested package needs that
  //    package's face to export the name too.
  const plan = new Map<string, Map<string, Export>>(
    [...t.packages].map((d) => [join(d, 'index.ts'), new Map()]),
  );
  const needOrigin = (
    face: string,
    name: string,
    origin: { file: string; name: string },
    value: boolean,
    via: string,
  ): void => {
    if (origin.file === face) return; // the face's own declaration
    const exports = plan.get(face)!;
    const had = exports.get(name);
    if (had && (had.origin.file !== origin.file || had.origin.name !== origin.name)) {
      problems.push(
        `${t.rel(face)}: ${name} is wanted from both ${t.rel(had.origin.file)} and ${t.rel(origin.file)} (via ${via}); rename one`,
      );
      return;
    }
    if (had && (had.value || !value)) return;
    exports.set(name, { name, origin, value });
    const inner = t.faceFor(face, origin.file);
    if (inner) needOrigin(inner, origin.name, origin, value, t.rel(face));
  };
  for (const p of [...t.product, ...t.users]) {
    const isProduct = t.top(p.file) !== undefined;
    for (const r of p.refs) {
      if (r.kind === 'export' && t.isFace(p.file)) continue; // regenerated from the needs below
      const face = isProduct ? t.faceFor(p.file, r.target) : null;
      const through = face ?? (t.isFace(r.target) && r.target !== p.file ? r.target : null);
      if (!through) continue;
      if (!r.names || (face && r.kind === 'dynamic')) {
        if (face)
          problems.push(
            `${t.rel(p.file)}: ${r.kind} of ${r.spec} is not by name (namespace, default, * or dynamic); rewrite it by hand`,
          );
        continue;
      }
      for (const n of r.names) {
        const o =
          t.origin(r.target, n.property) ??
          declaredUnder(t, dirname(through), n.property, t.rel(p.file), problems);
        if (!o) continue;
        needOrigin(through, n.property, o, !(r.typeOnly || n.typeOnly), t.rel(p.file));
      }
    }
  }

  // 2. Importers: each bypassing import now names the face; imports of one face merge into one statement.
  const rewrittenFiles: string[] = [];
  for (const p of t.product) {
    const groups = new Map<string, ModuleRef[]>();
    for (const r of p.refs) {
      if (r.kind === 'export' && t.isFace(p.file)) continue;
      const face = t.faceFor(p.file, r.target);
      if (face && r.names && r.kind !== 'dynamic')
        groups.set(face, [...(groups.get(face) ?? []), r]);
    }
    for (const [face, refs] of groups) {
      const already = p.refs.filter((r) => r.kind === 'import' && r.target === face && r.names);
      for (const kind of ['import', 'export'] as const) {
        const mine = [...refs, ...(kind === 'import' ? already : [])]
          .filter((r) => r.kind === kind)
          .sort((a, b) => a.start - b.start);
        if (mine.length === 0) continue;
        const names = mine.flatMap((r) =>
          r.names!.map((n) => ({ ...n, typeOnly: r.typeOnly || n.typeOnly })),
        );
        const unique = [...new Map(names.map((n) => [`${n.property} as ${n.name}`, n])).values()];
        const merged = unique.map((n) => ({
          ...n,
          typeOnly: names.filter((m) => m.name === n.name).every((m) => m.typeOnly),
        }));
        const allTypes = merged.every((n) => n.typeOnly);
        edit(p.file, [
          mine[0]!.start,
          mine[0]!.end,
          `${kind} ${allTypes ? 'type ' : ''}${namedList(merged, allTypes)} from '${specifier(p.file, face)}';`,
        ]);
        for (const r of mine.slice(1)) edit(p.file, [r.start, wholeLine(p.text, r.end), '']);
      }
    }
    if (groups.size) rewrittenFiles.push(t.rel(p.file));
  }

  // 3. Faces: replace the re-export statements with the plan, grouped by source, values then types.
  const faces: CodemodResult['faces'] = [];
  const created = new Map<string, string>();
  for (const [face, exports] of plan) {
    const p = t.parsed(face);
    if (!p && exports.size === 0) continue;
    const old = (p?.refs ?? []).filter((r) => r.kind === 'export');
    const oldNames = new Set(old.flatMap((r) => (r.names ?? []).map((n) => n.name)));
    const bySource = new Map<string, Export[]>();
    for (const e of exports.values()) {
      const src = t.faceFor(face, e.origin.file) ?? e.origin.file;
      bySource.set(src, [...(bySource.get(src) ?? []), e]);
    }
    let block = '';
    for (const src of [...bySource.keys()].sort((a, b) =>
      specifier(face, a).localeCompare(specifier(face, b)),
    )) {
      const list = bySource.get(src)!.sort((a, b) => a.name.localeCompare(b.name));
      const nameAt = (e: Export) => ({
        name: e.name,
        property: src === e.origin.file ? e.origin.name : e.name,
        typeOnly: false,
      });
      const values = list.filter((e) => e.value).map(nameAt);
      const types = list.filter((e) => !e.value).map(nameAt);
      if (values.length)
        block += `export ${namedList(values, true)} from '${specifier(face, src)}';\n`;
      if (types.length)
        block += `export type ${namedList(types, true)} from '${specifier(face, src)}';\n`;
    }
    if (!p) {
      created.set(face, HEADER(t.rel(dirname(face))) + block);
    } else if (old.length) {
      old.forEach((r, i) => edit(face, [r.start, wholeLine(p.text, r.end), i === 0 ? block : '']));
    } else if (block) {
      edit(face, [p.text.length, p.text.length, (p.text.endsWith('\n') ? '\n' : '\n\n') + block]);
    }
    const now = new Set(exports.keys());
    const added = [...now].filter((n) => !oldNames.has(n));
    const removed = [...oldNames].filter((n) => !now.has(n));
    if (added.length || removed.length || !p) faces.push({ face: t.rel(face), added, removed });
  }

  if (problems.length) return { rewrittenFiles: [], faces: [], problems };
  for (const [file, e] of edits) {
    const before = t.parsed(file)!.text;
    let after = splice(before, e);
    if (t.isFace(file)) after = after.replace(/\n{3,}/g, '\n\n'); // a removed block leaves no gap
    if (after !== before) writeAtomic(file, after);
  }
  for (const [file, text] of created) writeAtomic(file, text);
  return { rewrittenFiles, faces, problems };
}

/**
 * A name imported from a face that does not export it yet (new code, or a moved module) is looked up
 * among the declarations in the face's folder: one declaration is the origin; none or several is a problem.
 */
function declaredUnder(
  t: Tree,
  dir: string,
  name: string,
  via: string,
  problems: string[],
): { file: string; name: string } | null {
  const found = t.product.filter(
    (p) =>
      p.file.startsWith(dir + sep) && p.localExports.has(name) && p.file !== join(dir, 'index.ts'),
  );
  if (found.length === 1) return { file: found[0]!.file, name };
  problems.push(
    found.length === 0
      ? `${via}: ${name} is declared nowhere in ${t.rel(dir)}/`
      : `${via}: ${name} is declared in several modules of ${t.rel(dir)}/ (${found.map((p) => t.rel(p.file)).join(', ')}); import it from one`,
  );
  return null;
}

// ---------------------------------------------------------------- the bundle

/**
 * The source of `file` with every by-name import through a face pointed at the modules that declare the
 * names, or null when it imports no face. For the esbuild bundle only (scripts/build.mjs): with code
 * splitting esbuild assigns whole files to chunks by reachability, so a chunk importing one name from
 * protocol/index.ts would also load every module that face re-exports (`nixfleet version` went from
 * 57 to 106 KB of JavaScript). Source keeps the faces; the bundle imports what it uses.
 */
export function directSource(t: Tree, file: string): string | null {
  const p = t.parsed(file);
  if (!p) return null;
  const edits: [number, number, string][] = [];
  for (const r of p.refs) {
    if (r.kind === 'dynamic' || !r.names || !t.isFace(r.target) || r.target === file) continue;
    if (r.kind === 'export' && t.isFace(file)) continue; // a face's re-exports are read only if someone imports the face itself
    const bySource = new Map<string, Named[]>();
    for (const n of r.names) {
      const o = t.origin(r.target, n.property) ?? { file: r.target, name: n.property };
      bySource.set(o.file, [
        ...(bySource.get(o.file) ?? []),
        { name: n.name, property: o.name, typeOnly: r.typeOnly || n.typeOnly },
      ]);
    }
    // A statement of types only stays `import type`: `import { type T }` would keep a side-effect
    // import of the module under verbatimModuleSyntax (loading it, and all it imports, for nothing).
    const stmts = [...bySource].map(([src, names]) => {
      const allTypes = names.every((n) => n.typeOnly);
      const kind = allTypes ? `${r.kind} type` : r.kind;
      return `${kind} ${namedList(names, allTypes)} from '${specifier(file, src)}';`;
    });
    edits.push([r.start, r.end, stmts.join(' ')]);
  }
  return edits.length ? splice(p.text, edits) : null;
}

function main(argv: string[]): number {
  const checkOnly = argv.includes('--check');
  const root =
    argv.find((a) => !a.startsWith('--')) ?? fileURLToPath(new URL('..', import.meta.url));
  if (!checkOnly) {
    const r = codemod(root);
    for (const f of r.rewrittenFiles) console.log(`rewrote imports: ${f}`);
    for (const f of r.faces)
      console.log(
        `face ${f.face}: +${f.added.length} -${f.removed.length}${f.removed.length ? ` (removed: ${f.removed.join(', ')})` : ''}`,
      );
    for (const p of r.problems) console.error(`problem: ${p}`);
    if (r.problems.length) return 1;
  }
  const v = check(root);
  for (const x of v) console.error(`${x.file} -> ${x.target}: ${x.why}`);
  console.log(`${v.length} violation(s)`);
  return v.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href)
  process.exit(main(process.argv.slice(2)));
