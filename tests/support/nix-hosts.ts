// Test hosts with their own /nix for the nix activator: each runs its commands in a private mount
// namespace (`unshare -m`) where a directory of its own is bind-mounted on /nix and a nix.conf of its
// own on /etc/nix/nix.conf. The namespace lives only as long as the process run in it, so nothing is
// left mounted when a command ends (or is killed). The test systems (tests/fixtures/nix-systems) are
// built once per test run in the machine's store and copied into signed file:// caches.
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nixSandbox, REPO, run, type NixSandbox } from '../nix/nix-env.ts';
import type { NixActivatorConfig } from '../../agent/activators/nix.ts';
import { bootDefaultEntry, bootIdFile, STUB_REBOOT_SCRIPT } from './stub-reboot.ts';

export const SYSTEMS_FLAKE = join(REPO, 'tests/fixtures/nix-systems');
const DRIVER = join(REPO, 'tests/support/nix-host-driver.ts');
/** tsx's loader by absolute URL: a command the agent runs must not depend on the agent's cwd. */
const TSX_LOADER = import.meta.resolve('tsx');

export interface TestSystems {
  v1: string;
  v2: string;
  v3: string;
  v4: string;
  unhealthy: string;
  /** v3's kernel (so it needs a reboot) and unhealthy. */
  v3unhealthy: string;
}

let sandbox: NixSandbox | undefined;
let systems: Promise<TestSystems> | undefined;

/** The build side's offline Nix environment (shared by every test of this run; see cleanupNixHosts). */
export function buildSandbox(): NixSandbox {
  sandbox ??= nixSandbox('nixfleet-nixhosts-');
  return sandbox;
}

export function cleanupNixHosts(): void {
  sandbox?.cleanup();
  sandbox = undefined;
  systems = undefined;
}

/** Builds the test systems once per run (path: flake reference, so git tracking does not matter). */
export function testSystems(): Promise<TestSystems> {
  systems ??= (async () => {
    const sb = buildSandbox();
    const names = ['v1', 'v2', 'v3', 'v4', 'unhealthy', 'v3unhealthy'] as const;
    const r = await run(
      'nix',
      ['build', '--json', '--no-link', ...names.map((n) => `path:${SYSTEMS_FLAKE}#${n}`)],
      { env: sb.env, timeoutMs: 180_000 },
    );
    if (r.code !== 0) throw new Error(`building the test systems failed:\n${r.stderr}`);
    const outs = (JSON.parse(r.stdout) as { outputs: { out: string } }[]).map((o) => o.outputs.out);
    const byName = Object.fromEntries(
      names.map((n) => [n, outs.find((p) => p.endsWith(`-nixos-system-${n}`))!]),
    );
    return byName as unknown as TestSystems;
  })();
  return systems;
}

/** The 50 MB system (v1 plus a payload of random bytes) for bench/nix-fetch.bench.ts; built on demand. */
export async function benchSystem(): Promise<string> {
  const r = await run('nix', ['build', '--json', '--no-link', `path:${SYSTEMS_FLAKE}#bench50m`], {
    env: buildSandbox().env,
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`building the bench system failed:\n${r.stderr}`);
  return (JSON.parse(r.stdout) as { outputs: { out: string } }[])[0]!.outputs.out;
}

export interface CacheKey {
  secretFile: string;
  publicKey: string;
}

export async function cacheKey(name: string): Promise<CacheKey> {
  const sb = buildSandbox();
  const secret = await run('nix', ['key', 'generate-secret', '--key-name', name], { env: sb.env });
  if (secret.code !== 0) throw new Error(secret.stderr);
  const secretFile = join(sb.dir, `${name}.sec`);
  writeFileSync(secretFile, secret.stdout, { mode: 0o600 });
  const pub = await new Promise<string>((resolve, reject) => {
    const child = execFile(
      'nix',
      ['key', 'convert-secret-to-public'],
      { env: sb.env },
      (err, stdout) => (err ? reject(err) : resolve(stdout.trim())),
    );
    child.stdin!.end(secret.stdout);
  });
  return { secretFile, publicKey: pub };
}

/** A file:// binary cache holding `paths` (with their closures), signed by `key` or unsigned. */
export async function makeCache(
  dir: string,
  paths: string[],
  key: CacheKey | null,
  opts: { compression?: 'xz' | 'none' } = {},
): Promise<string> {
  const params = [
    key ? `secret-key=${key.secretFile}` : '',
    `compression=${opts.compression ?? 'xz'}`,
  ]
    .filter(Boolean)
    .join('&');
  const r = await run('nix', ['copy', '--to', `file://${dir}?${params}`, ...paths], {
    env: buildSandbox().env,
    timeoutMs: 120_000,
  });
  if (r.code !== 0) throw new Error(`nix copy --to ${dir} failed:\n${r.stderr}`);
  return `file://${dir}`;
}

/** A copy of `cache` whose NAR of `path` has one byte of file content changed (the narinfo stays intact). */
export function tamperedCopy(cacheDir: string, dest: string, path: string): void {
  cpSync(cacheDir, dest, { recursive: true });
  tamperNar(dest, path);
}

/** Changes one byte of file content in the (uncompressed) NAR of test system `path` in a cache, in place. */
export function tamperNar(cacheDir: string, path: string): void {
  const hash = path.slice('/nix/store/'.length, '/nix/store/'.length + 32);
  const narinfo = readFileSync(join(cacheDir, `${hash}.narinfo`), 'utf8');
  const url = /^URL: (\S+)$/m.exec(narinfo)![1]!;
  if (!url.endsWith('.nar'))
    throw new Error('tamperNar needs an uncompressed NAR (compression=none)');
  const dest = cacheDir;
  const nar = readFileSync(join(dest, url));
  const at = nar.indexOf(Buffer.from('nixos-version'));
  // Flip a byte well after the entry name: inside the file contents that follow it.
  const i = nar.indexOf(Buffer.from('v'), at + 'nixos-version'.length);
  nar[i] = 'V'.charCodeAt(0);
  writeFileSync(join(dest, url), nar);
}

export type DriverOp =
  | { op: 'seed'; target: string; cache: string; key: string }
  | { op: 'prepare'; target: string; cacheUrls: string[]; cacheKeys: string[] }
  | { op: 'switch'; target: string }
  /** A new generation only (the switch script not run). */
  | { op: 'stage'; target: string }
  | { op: 'boot'; target: string }
  | { op: 'current' }
  | { op: 'rollback'; to: { number: number; path: string } }
  | { op: 'inhibitors'; target: string }
  | { op: 'bootId' }
  | { op: 'reboot' }
  | { op: 'valid'; path: string }
  /** Runs argv as a child of the driver (as the agent runs Nix) and returns its wall time in ms. */
  | { op: 'timed'; argv: string[] }
  | { op: 'agent'; config: unknown };

export type DriverResult =
  | { ok: true; value: unknown }
  | { ok: false; name: string; code: string | null; message: string; storePath?: string };

/** One simulated NixOS host: base/nix is its /nix, base/nix.conf its /etc/nix/nix.conf. */
export class NixTestHost {
  readonly nixDir: string;
  readonly confFile: string;
  /** The state dir of the driver's activator (the agent runs use their own): its pending GC root. */
  readonly activatorStateDir: string;
  constructor(
    readonly dir: string,
    nixConf = 'sandbox = false\n',
  ) {
    this.nixDir = join(dir, 'nix');
    this.confFile = join(dir, 'nix.conf');
    this.activatorStateDir = join(dir, 'activator-state');
    mkdirSync(this.nixDir, { recursive: true });
    mkdirSync(join(dir, 'home'), { recursive: true });
    writeFileSync(this.confFile, nixConf);
  }

  /** The activator config for this host (the store-side defaults; the running system in the host dir). */
  activatorConfig(extra: Partial<NixActivatorConfig> = {}): NixActivatorConfig {
    return {
      kind: 'nix',
      profile: '/nix/var/nix/profiles/system',
      currentSystem: join(this.dir, 'current-system'),
      nixBinDir: null,
      bootIdFile: bootIdFile(this.dir),
      rebootCommand: ['sh', '-c', 'echo reboot >> "$NIXFLEET_TEST_HOST_DIR/reboot.log"'],
      timeoutMs: 120_000,
      sslCertFile: null,
      ...extra,
    };
  }

  env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: join(this.dir, 'home'),
      XDG_CACHE_HOME: join(this.dir, 'xdg-cache'),
      NIXFLEET_TEST_HOST_DIR: this.dir,
      ...extra,
    };
    if (!('NIX_CONFIG' in extra)) delete env['NIX_CONFIG'];
    return env;
  }

  /**
   * The argv prefix that runs a command inside this host's own mount namespace: /nix and
   * /etc/nix/nix.conf bind-mounted from the host dir, then `exec` of the command, so the command keeps
   * the PID (stopping it by PID ends the namespace: nothing stays mounted).
   */
  namespaceArgv(): string[] {
    const script =
      'mount --bind "$0" /nix && mount --bind "$1" /etc/nix/nix.conf && shift && exec "$@"';
    return [
      'unshare',
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      script,
      this.nixDir,
      this.confFile,
    ];
  }

  /** How E2eStack starts this host's agent process (tests/support/e2e-processes.ts ProcessWrap). */
  processWrap(): { wrap: string[]; env: NodeJS.ProcessEnv } {
    return { wrap: this.namespaceArgv(), env: this.env() };
  }

  /** Runs argv inside this host's mount namespace; the values travel as arguments, never as shell text. */
  exec(argv: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}) {
    const [cmd, ...args] = this.namespaceArgv();
    return run(cmd!, [...args, ...argv], {
      env: this.env(opts.env),
      timeoutMs: opts.timeoutMs ?? 180_000,
    });
  }

  /** Runs activator operations in one Node process inside the namespace; one result per op. */
  async driver(
    ops: DriverOp[],
    opts: { config?: NixActivatorConfig; env?: Record<string, string> } = {},
  ): Promise<DriverResult[]> {
    const input = JSON.stringify({
      config: opts.config ?? this.activatorConfig(),
      stateDir: this.activatorStateDir,
      ops,
    });
    const r = await this.exec([process.execPath, '--import', 'tsx', DRIVER, input], {
      ...(opts.env ? { env: opts.env } : {}),
    });
    const line = r.stdout.trim().split('\n').at(-1) ?? '';
    if (r.code !== 0 || !line.startsWith('['))
      throw new Error(`nix host driver failed (${r.code}):\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(line) as DriverResult[];
  }

  /** Generation number the profile link points at, read from outside (the links are relative). */
  profileGeneration(): number {
    const link = readlinkOrNull(join(this.nixDir, 'var/nix/profiles/system'));
    const m = link ? /system-(\d+)-link$/.exec(link) : null;
    return m ? Number(m[1]) : 0;
  }

  generations(): number[] {
    try {
      return readdirSync(join(this.nixDir, 'var/nix/profiles'))
        .map((f) => /^system-(\d+)-link$/.exec(f)?.[1])
        .filter((x): x is string => !!x)
        .map(Number)
        .sort((a, b) => a - b);
    } catch {
      return [];
    }
  }

  /** The kernel's boot id as the activator reads it (`bootIdFile`). */
  setBootId(id: string): void {
    writeFileSync(bootIdFile(this.dir), `${id}\n`);
  }

  /** The boot id the host runs under now (null: never set). */
  bootId(): string | null {
    try {
      return readFileSync(bootIdFile(this.dir), 'utf8').trim();
    } catch {
      return null;
    }
  }

  /**
   * What a reboot does to this host (tests/support/stub-reboot.ts bootDefaultEntry): a new boot id, and
   * the system named by the bootloader's default entry (the last `switch-to-configuration boot`) runs,
   * its service up with that system's health. Returns the system it booted.
   */
  reboot(bootId: string): string {
    return bootDefaultEntry(this.dir, bootId);
  }

  /**
   * A reboot command that reboots (tests/support/stub-reboot.ts): it does what reboot() does with the
   * next boot id and stops the agent that ran it (SIGTERM), as `systemctl reboot` would.
   */
  static rebootingCommand(): string[] {
    return [process.execPath, '--import', TSX_LOADER, STUB_REBOOT_SCRIPT];
  }

  /** One line per boot by the rebooting command: `<old boot id> -> <new boot id> <system>`. */
  bootsLog(): string[] {
    return this.logLines('boots.log');
  }

  /** One line per run of the stub reboot command (`activatorConfig().rebootCommand`). */
  rebootLog(): string[] {
    return this.logLines('reboot.log');
  }

  switchLog(): string[] {
    return this.logLines('switch.log');
  }

  private logLines(name: string): string[] {
    try {
      return readFileSync(join(this.dir, name), 'utf8').trim().split('\n').filter(Boolean);
    } catch {
      return [];
    }
  }
}

function readlinkOrNull(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}
