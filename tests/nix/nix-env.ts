// Running the real Nix from tests: offline settings (no substituters, an empty flake registry), a
// private XDG cache per temp dir, every temp dir removed by the caller through `cleanup()`.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const NIX_LIB = join(REPO, 'nix/lib');
export const FIXTURES = join(REPO, 'tests/fixtures/fleets');

export interface NixSandbox {
  dir: string;
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

export function nixSandbox(prefix = 'nixfleet-nix-'): NixSandbox {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const registry = join(dir, 'registry.json');
  writeFileSync(registry, '{"version":2,"flakes":[]}');
  const env = {
    ...process.env,
    NIX_CONFIG: [
      'experimental-features = nix-command flakes',
      'substituters =',
      `flake-registry = ${registry}`,
      'narinfo-cache-negative-ttl = 0',
      'narinfo-cache-positive-ttl = 0',
    ].join('\n'),
    XDG_CACHE_HOME: join(dir, 'xdg-cache'),
    HOME: dir,
  };
  return { dir, env, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (never throws on a non-zero exit); kills it after `timeoutMs`. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      {
        env: opts.env,
        cwd: opts.cwd,
        timeout: opts.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A Nix string literal for any text (used to pass file paths and JSON into -E expressions). */
export function nixString(text: string): string {
  return JSON.stringify(text).replace(/\$\{/g, '\\${');
}

/** Evaluates a Nix expression strictly to JSON with nix-instantiate (the nix/lib directory is `lib`). */
export async function evalJson(sandbox: NixSandbox, expr: string): Promise<unknown> {
  const full = `let lib = import ${nixString(NIX_LIB)}; in ${expr}`;
  const r = await run('nix-instantiate', ['--eval', '--strict', '--json', '-E', full], {
    env: sandbox.env,
    cwd: sandbox.dir,
  });
  if (r.code !== 0) throw new Error(`nix-instantiate failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Evaluates an expression expected to fail; returns its error output (throws if it succeeded). */
export async function evalError(sandbox: NixSandbox, expr: string): Promise<string> {
  const full = `let lib = import ${nixString(NIX_LIB)}; in ${expr}`;
  const r = await run('nix-instantiate', ['--eval', '--strict', '--json', '-E', full], {
    env: sandbox.env,
    cwd: sandbox.dir,
  });
  if (r.code === 0)
    throw new Error(`evaluation succeeded, expected a failure:\n${r.stdout.slice(0, 2000)}`);
  return r.stderr;
}
