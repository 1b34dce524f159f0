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
}

export class ActivationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ActivationError';
  }
}
