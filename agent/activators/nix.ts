// The real activator for NixOS hosts (the default there).
//   prepare:  fetch the target's closure from the release's cache and root it, in one
//             `nix-store --realise --add-root` with that cache as the only substituter, Nix checking
//             every signature against exactly the trust root's cache keys; nothing else is touched
//             before this succeeded. The closure stays a GC root (`<stateDir>/gcroots/pending`) until a
//             generation holds it.
//   stage:    a new generation of the system profile (neither the running system nor the boot entry
//             changes); switchStaged: then `<target>/bin/switch-to-configuration switch`. switch = both.
//   rollback: the recorded generation number again (profile + that generation's switch-to-configuration).
//   boot:     a new generation, then `switch-to-configuration boot` (the reboot path runs it next boot).
// Every command is an argv array (execFile, no shell); values never become part of a command line
// that something parses.
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import {
  ActivationError,
  ClosureRefused,
  type Activator,
  type ClosureRefusedCode,
  type ClosureSource,
  type Generation,
  type Staging,
} from './activator.ts';
import { cacheUrlTrustOverride, trustOverrideReason } from '../../protocol/index.ts';
import { failureReason, runArgv, type RunResult } from './run.ts';

const AbsolutePath = z.string().min(1).max(4096).regex(/^\//, 'must be an absolute path');
const Argv = z.array(z.string().max(4096)).min(1).max(64);

/**
 * Nix's profiles directory. Its garbage collector scans it for roots, so a generation link the agent
 * writes there holds its closure without being registered anywhere else.
 */
export const NIX_PROFILES_DIR = '/nix/var/nix/profiles';

export const NixActivatorConfig = z.strictObject({
  kind: z.literal('nix'),
  /** The system profile: `<profile>` links to `<profile>-<n>-link`, generation n. */
  profile: AbsolutePath.refine(
    (p) =>
      p.startsWith(`${NIX_PROFILES_DIR}/`) && !p.split('/').some((s) => s === '..' || s === '.'),
    `must lie under ${NIX_PROFILES_DIR}/ (the garbage collector roots the generations there)`,
  ).default(`${NIX_PROFILES_DIR}/system`),
  /** The running system (NixOS's activation points it at what runs): compared for switch inhibitors. */
  currentSystem: AbsolutePath.default('/run/current-system'),
  /** Directory holding nix-store; null = found on PATH. */
  nixBinDir: AbsolutePath.nullable().default(null),
  bootIdFile: AbsolutePath.default('/proc/sys/kernel/random/boot_id'),
  rebootCommand: Argv.default(['systemctl', 'reboot']),
  /** Bound on each command (a closure download included). */
  timeoutMs: z.number().int().min(1).max(3_600_000).default(1_800_000),
  /**
   * CA bundle Nix trusts for an https:// cache (NIX_SSL_CERT_FILE of the fetch). null = the agent's
   * `caFile`, the fleet CA: the usual cache is the control plane's /nix-cache/, served with its
   * certificate. Set it (e.g. to the system bundle) for an https cache elsewhere. TLS is not what makes
   * a closure trusted (Nix checks the narinfo signatures against the root's cache keys); it only has to
   * let the download happen.
   */
  sslCertFile: AbsolutePath.nullable().default(null),
});
export type NixActivatorConfig = z.infer<typeof NixActivatorConfig>;

/**
 * Entries of a NixOS system closure that cannot change under a running system: a kernel, initrd or
 * module set only takes effect on boot, and NixOS's switch-to-configuration does not restart systemd
 * or dbus. A difference in any of them means "needs a reboot". Each is a path inside the closure whose
 * resolved store path is compared (dbus has no top-level link; its unit file names its package).
 */
export const REBOOT_ENTRIES: readonly { name: string; path: string }[] = [
  { name: 'kernel', path: 'kernel' },
  { name: 'initrd', path: 'initrd' },
  { name: 'kernel-modules', path: 'kernel-modules' },
  { name: 'systemd', path: 'systemd' },
  { name: 'dbus', path: 'etc/systemd/system/dbus.service' },
];

/**
 * Settings passed on every fetch. Command-line `--option`s override /etc/nix/nix.conf, the user's
 * nix.conf and NIX_CONFIG, `extra-*` entries included (tests/agent/nix-activator.test.ts proves it for
 * extra-trusted-public-keys and extra-substituters), so the host's own keys and substituters never
 * widen what is accepted. `substituter`: the one cache Nix may substitute from (the fetch realises the
 * target from it); '' for none (`nix copy --from`, which names its source itself).
 */
export function fetchOptions(keys: readonly string[], substituter = ''): string[] {
  return [
    '--option',
    'require-sigs',
    'true',
    '--option',
    'trusted-public-keys',
    keys.join(' '),
    // Exactly this cache: a path missing from it is never looked up in the host's substituters.
    '--option',
    'substituters',
    substituter,
    // A path the cache did not have a minute ago must be seen as soon as it is uploaded.
    '--option',
    'narinfo-cache-negative-ttl',
    '0',
    // One cycle should not hang on a dead cache: the next cycle retries.
    '--option',
    'download-attempts',
    '2',
  ];
}

function refuseTrustOverride(target: string, cache: string): void {
  const param = cacheUrlTrustOverride(cache);
  if (param) throw new ClosureRefused('TrustOverride', target, cache, trustOverrideReason(param));
}

/** What switch-to-configuration is asked: activate now, or make it the next boot's default only. */
type SwitchAction = 'switch' | 'boot';

/** What the agent hands every activator it builds (the activator config itself stays per host). */
export interface ActivatorContext {
  /** The agent's `caFile` (the fleet CA). */
  caFile?: string;
}

/** The nix activator also keeps a file of its own: the pending closure's GC root, in the state dir. */
export interface NixActivatorContext extends ActivatorContext {
  /** The agent's state directory. */
  stateDir: string;
}

/**
 * Where the fetched target is rooted between `prepare` and its generation: an indirect root (Nix links
 * it from /nix/var/nix/gcroots/auto), so removing this one link releases it.
 */
export const PENDING_GC_ROOT = join('gcroots', 'pending');

export class NixActivator implements Activator, Staging {
  readonly kind = 'nix';
  /** CA bundle for https caches: the config's own, else the agent's fleet CA; null = Nix's default. */
  private readonly sslCertFile: string | null;
  private readonly pendingRoot: string;
  constructor(
    private readonly config: NixActivatorConfig,
    context: NixActivatorContext,
  ) {
    this.sslCertFile = config.sslCertFile ?? context.caFile ?? null;
    this.pendingRoot = join(context.stateDir, PENDING_GC_ROOT);
  }

  private bin(name: string): string {
    return this.config.nixBinDir ? join(this.config.nixBinDir, name) : name;
  }

  private exec(argv: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
    return runArgv(argv, {
      timeoutMs: this.config.timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
      ...(env ? { env } : {}),
    });
  }

  /** Runs a command that must succeed; a failure is an ActivationError naming the command. */
  private async must(argv: string[], what: string): Promise<string> {
    const r = await this.exec(argv);
    if (r.code === 0) return r.stdout;
    throw new ActivationError(`${what}: ${this.failure(argv, r)}`);
  }

  /** What a failed command did, for a message: argv, how it ended, the tail of its stderr. */
  private failure(argv: string[], r: RunResult): string {
    return `${JSON.stringify(argv)} ${failureReason(r, this.config.timeoutMs)}: ${r.stderr.trim().slice(-600)}`;
  }

  // ---- generations -------------------------------------------------------------------------------

  private generationLink(n: number): string {
    return `${this.config.profile}-${n}-link`;
  }

  /** Reads the profile link (`system` -> `system-<n>-link`) and the store path generation n runs. */
  async currentGeneration(): Promise<Generation> {
    const profile = this.config.profile;
    let link: string;
    try {
      link = readlinkSync(profile);
    } catch (e) {
      throw new ActivationError(
        `${profile}: cannot read the system profile link (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    const m = new RegExp(`^${escapeRegExp(basename(profile))}-(\\d{1,9})-link$`).exec(
      basename(link),
    );
    if (!m || (link.includes('/') && dirname(link) !== dirname(profile))) {
      throw new ActivationError(
        `${profile}: links to ${link}, not to a generation link ${basename(profile)}-<n>-link beside it`,
      );
    }
    const number = Number(m[1]);
    return { number, path: this.generationPath(number) };
  }

  private generationPath(n: number): string {
    const link = this.generationLink(n);
    try {
      return readlinkSync(link);
    } catch (e) {
      throw new ActivationError(
        `${link}: generation ${n} does not exist (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  }

  /** Generation numbers of the profile, ascending (the `<profile>-<n>-link` beside it). */
  private generationNumbers(): number[] {
    const pattern = new RegExp(`^${escapeRegExp(basename(this.config.profile))}-(\\d{1,9})-link$`);
    return readdirSync(dirname(this.config.profile))
      .map((name) => pattern.exec(name)?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
  }

  /**
   * A new profile generation running `target`, made current (what `nixos-rebuild` does before
   * activating, with `nix-env -p PROFILE --set`). Written here, in Nix's profile layout, rather than by
   * a nix-env process (~25 ms of CPU on the activation's critical path, measured in
   * docs/benchmarks.md "## nix-fetch"): `<profile>-<n>-link` -> the store path, then `<profile>` ->
   * that link, replaced by a rename. A garbage collection cannot take the target meanwhile: the pending
   * root holds it until its generation link exists (a target prepare did not root is rooted first, which
   * also checks it is valid), and Nix roots every link under its profiles directory. As nix-env does,
   * the newest generation is reused when it already runs `target`.
   */
  private async addGeneration(target: string): Promise<Generation> {
    if (readLinkOrNull(this.pendingRoot) !== target) {
      const held = await this.holdPending(target, null);
      if (held !== null)
        throw new ActivationError(
          `${target}: not in the local store, cannot add a generation: ${held}`,
        );
    }
    const newest = this.generationNumbers().at(-1) ?? 0;
    const number = newest > 0 && this.generationPath(newest) === target ? newest : newest + 1;
    const link = this.generationLink(number);
    try {
      if (number !== newest) symlinkSync(target, link);
      this.pointProfileAt(number);
    } catch (e) {
      // EEXIST: another tool added generation `number` since the listing; the next cycle retries.
      throw new ActivationError(
        `${link}: cannot add generation ${number} of ${this.config.profile} for ${target} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    this.releasePending();
    return { number, path: target };
  }

  /**
   * `<profile>` -> `<profile>-<n>-link`, relative as Nix writes it. A new link renamed over the old one,
   * so the profile is never missing, and a crash leaves either generation current.
   */
  private pointProfileAt(n: number): void {
    const profile = this.config.profile;
    const temporary = `${profile}.tmp-${process.pid}`;
    rmSync(temporary, { force: true });
    symlinkSync(basename(this.generationLink(n)), temporary);
    renameSync(temporary, profile);
  }

  private async runSwitchScript(system: string, action: SwitchAction): Promise<void> {
    await this.must(
      [join(system, 'bin', 'switch-to-configuration'), action],
      `${system}: switch-to-configuration ${action}`,
    );
  }

  /**
   * Makes `target` the profile's newest generation and returns it. Changes neither the running system
   * nor the boot entry (only the switch script does), so it may run while the started ack is posted.
   */
  async stage(target: string): Promise<Generation> {
    return this.addGeneration(target);
  }

  /** The staged generation's own `switch-to-configuration switch`, if the profile still points at it. */
  async switchStaged(staged: Generation): Promise<void> {
    const current = await this.currentGeneration();
    if (current.number !== staged.number || current.path !== staged.path)
      throw new ActivationError(
        `${this.config.profile}: generation ${current.number} (${current.path}) is current, not the staged generation ${staged.number} (${staged.path})`,
      );
    await this.runSwitchScript(staged.path, 'switch');
  }

  async switch(target: string): Promise<Generation> {
    const previous = await this.currentGeneration();
    await this.switchStaged(await this.stage(target));
    return previous;
  }

  /** Makes `target` the default boot entry without changing the running system. */
  async boot(target: string): Promise<Generation> {
    const previous = await this.currentGeneration();
    await this.addGeneration(target);
    await this.runSwitchScript(target, 'boot');
    return previous;
  }

  /**
   * Restores generation `to.number`: the profile points at it again and its own switch script runs.
   * Idempotent: with the profile on `to` and the running system already `to.path`, it does nothing,
   * and a run interrupted between the two steps is finished by the next call.
   */
  async rollback(to: Generation): Promise<void> {
    await this.restore(to, 'switch');
  }

  /**
   * The reboot path's rollback: generation `to.number` again in the profile, and its own
   * `switch-to-configuration boot`, so the next boot starts it. The running system is untouched (the
   * caller reboots when it runs something else). Idempotent: both steps may run again.
   */
  async rollbackBoot(to: Generation): Promise<void> {
    await this.restore(to, 'boot');
  }

  /**
   * Generation `to.number` by number (never "one step back"), checked to still run `to.path`, then its
   * switch script. `switch` is skipped when that system already runs; `boot` only writes the boot entry
   * and is cheap to repeat. The activation is abandoned: a closure still pending is released.
   */
  private async restore(to: Generation, action: SwitchAction): Promise<void> {
    this.releasePending();
    const recorded = this.generationPath(to.number);
    if (recorded !== to.path)
      throw new ActivationError(
        `cannot roll back: generation ${to.number} of ${this.config.profile} runs ${recorded}, expected ${to.path}`,
      );
    const current = await this.currentGeneration();
    if (current.number !== to.number) {
      try {
        this.pointProfileAt(to.number);
      } catch (e) {
        throw new ActivationError(
          `switching ${this.config.profile} back to generation ${to.number}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        );
      }
    }
    if (action === 'boot' || this.runningPath() !== to.path)
      await this.runSwitchScript(to.path, action);
  }

  async runningSystem(): Promise<string | null> {
    return this.runningPath();
  }

  private runningPath(): string | null {
    try {
      return realpathSync(this.config.currentSystem);
    } catch {
      return null;
    }
  }

  // ---- fetching ----------------------------------------------------------------------------------

  /**
   * One Nix process per cache fetches the closure, lets Nix check every signature and roots the target
   * (fetchAndHold). A target already in the store costs the same single process (Nix finds it valid,
   * contacts no cache and only roots it). The target stays rooted until `stage` or `boot` gives it a
   * generation, or a rollback abandons it; a refusal releases any earlier root. With no cache named,
   * rooting it is the validity check (it succeeds only for a path already in the store).
   */
  async prepare(target: string, from: ClosureSource): Promise<void> {
    let refusal: ClosureRefused | undefined;
    for (const cache of from.cacheUrls) {
      try {
        await this.fetchAndHold(target, cache, from.cacheKeys);
        return;
      } catch (e) {
        if (!(e instanceof ClosureRefused)) throw e;
        // An integrity refusal is the more important news: keep it over a later cache being down.
        if (!refusal?.integrity) refusal = e;
      }
    }
    if (from.cacheUrls.length === 0 && (await this.holdPending(target, null)) === null) return;
    // Nix realises a valid path without asking any cache: every cache failing means it is not valid.
    this.releasePending();
    throw (
      refusal ??
      new ClosureRefused(
        'NotInCache',
        target,
        null,
        'the manifest names no binary cache and the closure is not in the local store',
      )
    );
  }

  /**
   * Realises `target` and roots it at the pending root, in one `nix-store --realise --add-root` (the
   * indirect root link in /nix/var/nix/gcroots/auto is Nix's to write), replacing the root of an
   * earlier prepare. `from` null: no substituter, so it succeeds only for a valid path; otherwise the
   * cache is the only substituter, with fetchOptions' signature settings. Returns null when held,
   * else the failed command and its output.
   */
  private async holdPending(
    target: string,
    from: { cache: string; keys: readonly string[] } | null,
  ): Promise<string | null> {
    const r = await this.realiseIntoPending(target, from);
    return r.code === 0 ? null : this.failure(r.argv, r);
  }

  private async realiseIntoPending(
    target: string,
    from: { cache: string; keys: readonly string[] } | null,
  ): Promise<RunResult & { argv: string[] }> {
    mkdirSync(dirname(this.pendingRoot), { recursive: true, mode: 0o700 });
    const argv = [
      this.bin('nix-store'),
      ...(from ? fetchOptions(from.keys, from.cache) : ['--option', 'substituters', '']),
      '--realise',
      target,
      '--add-root',
      this.pendingRoot,
    ];
    // Nix 2.8 has no ssl-cert-file option; its downloader reads NIX_SSL_CERT_FILE.
    const https = from?.cache.startsWith('https://') && this.sslCertFile !== null;
    const r = await this.exec(
      argv,
      https ? { ...process.env, NIX_SSL_CERT_FILE: this.sslCertFile! } : undefined,
    );
    return { ...r, argv };
  }

  /** Drops the pending root (Nix's GC skips the dangling auto link it leaves, as for a removed `result`). */
  private releasePending(): void {
    rmSync(this.pendingRoot, { force: true });
  }

  private async fetchAndHold(
    target: string,
    cache: string,
    keys: readonly string[],
  ): Promise<void> {
    refuseTrustOverride(target, cache);
    // Nix creates a missing file:// cache directory instead of failing: check it is a cache first.
    if (
      cache.startsWith('file://') &&
      !existsSync(join(cache.slice('file://'.length).split('?')[0]!, 'nix-cache-info'))
    ) {
      throw new ClosureRefused(
        'Unreachable',
        target,
        cache,
        'the directory holds no binary cache (nix-cache-info is missing)',
      );
    }
    const r = await this.realiseIntoPending(target, { cache, keys });
    if (r.code === 0) return;
    const { path, message } = nixRefusal(r.stderr);
    const refusedPath = path ?? target;
    if (r.timedOut)
      throw new ClosureRefused(
        'Unreachable',
        refusedPath,
        cache,
        `nix-store --realise timed out after ${this.config.timeoutMs} ms`,
      );
    const code = classify(r.stderr);
    if (code === 'lacks-signature') {
      const sigs = await narinfoSignatureKeys(cache, refusedPath, this.sslCertFile);
      throw new ClosureRefused(signatureRefusal(sigs, keys), refusedPath, cache, message);
    }
    throw new ClosureRefused(code, refusedPath, cache, message);
  }

  // ---- inhibitors --------------------------------------------------------------------------------

  async detectInhibitors(target: string): Promise<string[]> {
    if (!existsSync(target))
      throw new ActivationError(
        `${target}: not in the local store; prepare() fetches it before inhibitors can be read`,
      );
    const running = this.config.currentSystem;
    const out: string[] = [];
    for (const e of REBOOT_ENTRIES) {
      const now = resolved(join(running, e.path));
      const next = resolved(join(target, e.path));
      if (now !== next) out.push(`${e.name} changes (${now ?? 'none'} -> ${next ?? 'none'})`);
    }
    return out;
  }

  async selfCheck(): Promise<{ name: string; ok: boolean; detail: string }[]> {
    return [];
  }

  // ---- boot ----------------------------------------------------------------------------------------

  /** The kernel's boot id: a different value after a reboot. */
  async bootId(): Promise<string> {
    try {
      return readFileSync(this.config.bootIdFile, 'utf8').trim().slice(0, 64);
    } catch (e) {
      throw new ActivationError(
        `${this.config.bootIdFile}: cannot read the boot id (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
  }

  async reboot(): Promise<void> {
    await this.must(this.config.rebootCommand, 'reboot');
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function readLinkOrNull(path: string): string | null {
  try {
    return readlinkSync(path);
  } catch {
    return null;
  }
}

function resolved(path: string): string | null {
  try {
    return realpathSync(path);
  } catch {
    return null;
  }
}

const STORE_PATH = String.raw`/nix/store/[0-9a-z]{32}-[^'\s]+`;
/** Nix 2.8 gives up on a cache whose narinfo no trusted key signed with this warning. */
const UNSIGNED_SUBSTITUTE = new RegExp(
  String.raw`warning: (the substitute for '(${STORE_PATH})'.*)`,
);
const NO_SUBSTITUTER = new RegExp(
  String.raw`don't know how to build these paths:\s+(${STORE_PATH})`,
);
const QUOTED_PATH = new RegExp(`'(${STORE_PATH})'`);
const COPYING_PATH = new RegExp(`copying path '(${STORE_PATH})'`, 'g');
/** `nix-store --realise`'s last line, which only repeats the target. */
const BUILD_FAILED = /^error: build of '[^']*' failed\s*$/;

/**
 * What Nix refused, from `nix-store --realise`'s output: the path it names and the message to show.
 * The reason comes before the closing "build of '<target>' failed": a warning that a substitute is not
 * signed by a trusted key (Nix then gives up on that cache), the first other `error:` (hash mismatch,
 * ...), or the list of paths no substituter has; plus a download warning when the cache was not reached.
 */
function nixRefusal(stderr: string): { path: string | null; message: string } {
  const unsigned = UNSIGNED_SUBSTITUTE.exec(stderr);
  const missing = NO_SUBSTITUTER.exec(stderr);
  const error = stderr
    .split(/^(?=error:)/m)
    .find((e) => e.startsWith('error:') && !BUILD_FAILED.test(e));
  const path =
    unsigned?.[2] ??
    QUOTED_PATH.exec(error ?? '')?.[1] ??
    missing?.[1] ??
    [...stderr.matchAll(COPYING_PATH)].at(-1)?.[1] ??
    null;
  const unreachable = /warning: (unable to download .*)/.exec(stderr)?.[1];
  const failure = unsigned?.[1] ?? error ?? missing?.[0] ?? stderr;
  const message = [unreachable, failure].filter((x) => x !== undefined).join('; ');
  return { path, message: message.replace(/\s+/g, ' ').trim().slice(0, 400) };
}

/**
 * Maps Nix 2.x's messages to a reason. Signature failures are told apart by the narinfo afterwards. A
 * cache Nix could not reach ends like one without the path ("don't know how to build"): the download
 * warning before it decides.
 */
function classify(stderr: string): ClosureRefusedCode | 'lacks-signature' {
  if (/lacks a valid signature|not signed by any of the keys/.test(stderr))
    return 'lacks-signature';
  if (
    /hash mismatch|Failed to open archive|Corrupted input|bad archive|decompress|NAR hash|not a valid NAR|input doesn't look like a Nix archive/i.test(
      stderr,
    )
  )
    return 'Corrupt';
  if (
    /unable to download|Couldn't connect|Couldn't resolve|Timeout was reached|Connection refused|cannot open|No such file/i.test(
      stderr,
    ) &&
    !/HTTP error 404/.test(stderr)
  )
    return 'Unreachable';
  if (
    /HTTP error 404|is required, but there is no substituter|don't know how to build|is not valid/.test(
      stderr,
    )
  )
    return 'NotInCache';
  return 'NixFailed';
}

/**
 * Nix only says "lacks a valid signature". The narinfo's Sig lines tell which of three cases it was;
 * they are read only to name the reason (Nix has already decided), never to accept anything.
 */
function signatureRefusal(
  sigKeys: string[] | null,
  trusted: readonly string[],
): ClosureRefusedCode {
  if (sigKeys === null) return 'UntrustedKey';
  if (sigKeys.length === 0) return 'Unsigned';
  const names = new Set(trusted.map((k) => k.split(':')[0]));
  return sigKeys.some((k) => names.has(k)) ? 'BadSignature' : 'UntrustedKey';
}

/** Key names on the narinfo's Sig lines; null when the narinfo cannot be read. */
async function narinfoSignatureKeys(
  cache: string,
  storePath: string,
  caFile: string | null,
): Promise<string[] | null> {
  const hash = basename(storePath).slice(0, 32);
  const base = cache.split('?')[0]!.replace(/\/+$/, '');
  let text: string;
  try {
    if (base.startsWith('file://'))
      text = readFileSync(`${base.slice('file://'.length)}/${hash}.narinfo`, 'utf8');
    else {
      const got = await getText(
        `${base}/${hash}.narinfo`,
        base.startsWith('https://') && caFile ? readFileSync(caFile) : undefined,
      );
      if (got === null) return null;
      text = got;
    }
  } catch {
    return null;
  }
  return text
    .split('\n')
    .filter((l) => l.startsWith('Sig: '))
    .map((l) => l.slice(5).split(':')[0]!.trim());
}

/** A narinfo is a few KB; the cap only bounds what a broken or hostile cache can make us buffer. */
const NARINFO_CAP = 256 * 1024;

/**
 * A small text body over http(s); null unless 200 within 10 s. node:https rather than the global fetch,
 * which cannot be given a CA (the fleet CA Nix was given) without an undici dispatcher.
 */
function getText(url: string, ca: Buffer | undefined): Promise<string | null> {
  return new Promise((resolve) => {
    const get = url.startsWith('https://') ? httpsGet : httpGet;
    const req = get(url, { timeout: 10_000, ...(ca ? { ca } : {}) }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return resolve(null);
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
        if (body.length > NARINFO_CAP) req.destroy();
      });
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(null));
      res.on('close', () => resolve(null)); // cut off (cap) or reset: no answer (a no-op after 'end')
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}
