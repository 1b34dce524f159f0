// How the agent changes the running system. The cycle only ever talks to this interface, so the same
// confirm / magic-rollback logic drives the simulated demo hosts, shell-command hosts and (later) Nix.
export interface Generation {
  /** Profile generation number: rollback restores exactly this number, never "one step back". */
  number: number;
  /** Store path that generation runs. */
  path: string;
}

export interface Activator {
  readonly kind: string;
  currentGeneration(): Promise<Generation>;
  /** Makes `target` the running system; returns the generation that was running before. */
  switch(target: string): Promise<Generation>;
  /** Restores generation `to` by number. Must be idempotent: calling it twice is harmless. */
  rollback(to: Generation): Promise<void>;
  /** Reasons `target` cannot be switched to live (kernel, initrd, systemd, dbus changes); empty = none. */
  detectInhibitors(target: string): Promise<string[]>;
  /**
   * Extra health verdicts the activator itself knows about (the simulated activator's injected
   * failures). Real activators return [] and rely on the manifest's probes.
   */
  selfCheck(target: string): Promise<{ name: string; ok: boolean; detail: string }[]>;
  /**
   * Runs before anything is touched (no pending record, no profile change): makes `target` and its
   * closure present locally, fetched only from `cacheUrls` and accepted only when signed by one of
   * `cacheKeys` (the verified trust root's). Throws ClosureRefused. Activators that do not fetch
   * closures themselves (simulated, command) do nothing.
   */
  prepare(target: string, from: ClosureSource): Promise<void>;
}

/**
 * What the reboot path needs (a switch inhibitor under a reboot policy that allows it): stage the target
 * for the next boot, reboot, and after the boot tell which system runs. Activators without it (command)
 * report `deferred` with "reboot not supported" instead.
 */
export interface RebootCapable {
  /** A new generation running `target` made the default boot entry; the running system is untouched. Returns the generation before. */
  boot(target: string): Promise<Generation>;
  /** Generation `to` (by number) made the default boot entry again, with its own boot script. Idempotent. */
  rollbackBoot(to: Generation): Promise<void>;
  /** Store path of the system running now (after a reboot: the one the host booted), null if unknown. */
  runningSystem(): Promise<string | null>;
  /** Changes on every boot: tells a restarted agent whether the host rebooted in between. */
  bootId(): Promise<string>;
  /** Runs the configured reboot command. Returning means the host was asked to go down. */
  reboot(): Promise<void>;
}

export function canReboot(a: Activator): a is Activator & RebootCapable {
  const r = a as Partial<RebootCapable>;
  return (
    typeof r.boot === 'function' &&
    typeof r.rollbackBoot === 'function' &&
    typeof r.runningSystem === 'function' &&
    typeof r.bootId === 'function' &&
    typeof r.reboot === 'function'
  );
}

/**
 * Activators whose switch has two steps (nix: a profile generation, then its switch script). The first
 * changes neither the running system nor the boot entry, so the agent runs it while the `started` ack
 * is posted and only the second after the post. `switch(target)` is both, one after the other.
 */
export interface Staging {
  /** A new generation running `target`, made the profile's current one; returns it. */
  stage(target: string): Promise<Generation>;
  /** Activates `staged` (its switch script); refuses when the profile no longer points at it. */
  switchStaged(staged: Generation): Promise<void>;
}

export function canStage(a: Activator): a is Activator & Staging {
  const s = a as Partial<Staging>;
  return typeof s.stage === 'function' && typeof s.switchStaged === 'function';
}

export interface ClosureSource {
  /** Binary caches to fetch from, in order (the manifest's `cacheUrl`). */
  cacheUrls: readonly string[];
  /** Nix public keys (`name:base64`) a closure must be signed by: exactly the trust root's `cacheKeys`. */
  cacheKeys: readonly string[];
}

/**
 * Why a closure was not accepted. The first five are integrity refusals (the cache served something
 * the trust root does not vouch for, or its URL asks Nix to skip the signature check); the last three are availability failures that may heal by
 * themselves (the cache is down, not yet populated, or Nix failed for a reason we cannot name).
 */
export type ClosureRefusedCode =
  | 'Unsigned'
  | 'UntrustedKey'
  | 'BadSignature'
  | 'Corrupt'
  | 'TrustOverride'
  | 'NotInCache'
  | 'Unreachable'
  | 'NixFailed';

const INTEGRITY_CODES: ReadonlySet<ClosureRefusedCode> = new Set([
  'Unsigned',
  'UntrustedKey',
  'BadSignature',
  'Corrupt',
  'TrustOverride',
]);

export class ClosureRefused extends Error {
  readonly code: ClosureRefusedCode;
  /** The store path Nix refused (the target or one of its dependencies). */
  readonly storePath: string;
  /** The cache it came from, or null when no cache was configured. */
  readonly cache: string | null;
  readonly detail: string;
  constructor(code: ClosureRefusedCode, storePath: string, cache: string | null, detail: string) {
    super(`${code}: ${storePath}${cache ? ` from ${cache}` : ''}: ${detail}`);
    this.name = 'ClosureRefused';
    this.code = code;
    this.storePath = storePath;
    this.cache = cache;
    this.detail = detail;
  }
  /** True when the cache served something untrusted or damaged (as opposed to being unavailable). */
  get integrity(): boolean {
    return INTEGRITY_CODES.has(this.code);
  }
}

export class ActivationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ActivationError';
  }
}

export function isClosureRefused(e: unknown): e is ClosureRefused {
  return e instanceof ClosureRefused;
}
