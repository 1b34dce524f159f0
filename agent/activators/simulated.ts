// A simulated host: its "system profile" is a generation list in the state directory. Used by the demo
// and the tests; failure injection lets a demo host fail its switch or come up unhealthy.
// It simulates the reboot path too: `boot` stages a generation, `reboot` makes the staged one run (or,
// for a `bootFallback` target, keeps the old one, as a bootloader falling back would) under a new boot
// id, at once: the next agent run is the run after the reboot.
import { z } from 'zod';
import type { StateDir } from '../state-dir.ts';
import { ActivationError, type Activator, type Generation } from './activator.ts';

export const SimulatedActivatorConfig = z.strictObject({
  kind: z.literal('simulated'),
  /** Store path generation 1 runs when the simulated host is created. */
  initialPath: z.string().min(1).max(1024),
  /** Targets whose switch fails outright (activation error). */
  failSwitch: z.array(z.string().max(1024)).max(64).default([]),
  /** Targets that switch fine but then fail their health check (exercises magic rollback). */
  unhealthy: z.array(z.string().max(1024)).max(64).default([]),
  /** Targets that need a reboot (switch inhibitor). */
  inhibit: z.array(z.string().max(1024)).max(64).default([]),
  /** Targets the simulated bootloader fails to boot: after the reboot the previous system runs again. */
  // Optional rather than defaulted, so configs written as literals elsewhere need not name it.
  bootFallback: z.array(z.string().max(1024)).max(64).optional(),
  /** Simulated switch duration. */
  switchDelayMs: z.number().int().min(0).max(60_000).default(0),
});
export type SimulatedActivatorConfig = z.infer<typeof SimulatedActivatorConfig>;

const GenerationsFile = z.strictObject({
  current: z.number().int().min(1),
  generations: z
    .array(z.strictObject({ number: z.number().int().min(1), path: z.string().min(1).max(1024) }))
    .min(1),
  /** Generation the next (simulated) boot starts, when one was staged with `boot`. */
  staged: z.number().int().min(1).nullable().default(null),
  boots: z.number().int().min(1).default(1),
});
type GenerationsFile = z.infer<typeof GenerationsFile>;

export const SIMULATED_GENERATIONS_FILE = 'simulated-generations.json';

export class SimulatedActivator implements Activator {
  readonly kind = 'simulated';
  constructor(
    private readonly state: StateDir,
    private readonly config: SimulatedActivatorConfig,
  ) {}

  private load(): GenerationsFile {
    const existing = this.state.read(SIMULATED_GENERATIONS_FILE, GenerationsFile);
    if (existing) return existing;
    const initial = {
      current: 1,
      generations: [{ number: 1, path: this.config.initialPath }],
      staged: null,
      boots: 1,
    };
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, initial);
    return initial;
  }

  async currentGeneration(): Promise<Generation> {
    const g = this.load();
    const cur = g.generations.find((x) => x.number === g.current);
    if (!cur)
      throw new ActivationError(
        `${this.state.path(SIMULATED_GENERATIONS_FILE)}: current generation ${g.current} is not in the list`,
      );
    return { ...cur };
  }

  async switch(target: string): Promise<Generation> {
    const previous = await this.currentGeneration();
    if (this.config.switchDelayMs > 0)
      await new Promise((r) => setTimeout(r, this.config.switchDelayMs));
    if (this.config.failSwitch.includes(target))
      throw new ActivationError(`simulated switch to ${target} failed (injected failure)`);
    const g = this.load();
    const number = Math.max(...g.generations.map((x) => x.number)) + 1;
    g.generations.push({ number, path: target });
    g.current = number;
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, g);
    return previous;
  }

  async rollback(to: Generation): Promise<void> {
    const g = this.load();
    const gen = g.generations.find((x) => x.number === to.number);
    if (!gen) throw new ActivationError(`cannot roll back: generation ${to.number} does not exist`);
    if (gen.path !== to.path)
      throw new ActivationError(
        `cannot roll back: generation ${to.number} runs ${gen.path}, expected ${to.path}`,
      );
    if (g.current === to.number) return;
    g.current = to.number;
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, g);
  }

  async boot(target: string): Promise<Generation> {
    const previous = await this.currentGeneration();
    if (this.config.failSwitch.includes(target))
      throw new ActivationError(`simulated boot of ${target} failed (injected failure)`);
    const g = this.load();
    const number = Math.max(...g.generations.map((x) => x.number)) + 1;
    g.generations.push({ number, path: target });
    g.staged = number;
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, g);
    return previous;
  }

  async rollbackBoot(to: Generation): Promise<void> {
    const g = this.load();
    const gen = g.generations.find((x) => x.number === to.number);
    if (!gen || gen.path !== to.path)
      throw new ActivationError(
        `cannot roll back: generation ${to.number} does not run ${to.path}`,
      );
    g.staged = g.current === to.number ? null : to.number;
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, g);
  }

  async runningSystem(): Promise<string | null> {
    return (await this.currentGeneration()).path;
  }

  async bootId(): Promise<string> {
    return `simulated-boot-${this.load().boots}`;
  }

  async reboot(): Promise<void> {
    const g = this.load();
    const staged = g.staged === null ? undefined : g.generations.find((x) => x.number === g.staged);
    if (staged && !(this.config.bootFallback ?? []).includes(staged.path))
      g.current = staged.number;
    g.staged = null;
    g.boots += 1;
    this.state.write(SIMULATED_GENERATIONS_FILE, GenerationsFile, g);
  }

  async detectInhibitors(target: string): Promise<string[]> {
    return this.config.inhibit.includes(target) ? ['kernel (simulated)'] : [];
  }

  /** Simulated closures are never fetched. */
  async prepare(): Promise<void> {}

  async selfCheck(target: string): Promise<{ name: string; ok: boolean; detail: string }[]> {
    if (!this.config.unhealthy.includes(target))
      return [{ name: 'simulated-health', ok: true, detail: 'ok' }];
    return [
      { name: 'simulated-health', ok: false, detail: 'injected failure: service does not come up' },
    ];
  }
}
