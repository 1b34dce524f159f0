// Activation by configured commands (argv arrays, no shell unless the operator writes `sh -c`).
// Parameters travel in environment variables so no value is ever spliced into a command line:
//   switch:     NIXFLEET_TARGET
//   rollback:   NIXFLEET_GENERATION, NIXFLEET_GENERATION_PATH
//   current:    prints `<number> <path>` (or JSON {"number":N,"path":P}) on stdout
//   inhibitors: NIXFLEET_TARGET; prints one inhibitor per line (nothing = none)
import { z } from 'zod';
import { ActivationError, type Activator, type Generation } from './activator.ts';
import { failureReason, runArgv } from './run.ts';

const Argv = z.array(z.string().max(4096)).min(1).max(64);

export const CommandActivatorConfig = z.strictObject({
  kind: z.literal('command'),
  switch: Argv,
  rollback: Argv,
  current: Argv,
  inhibitors: Argv.nullable().default(null),
  timeoutMs: z.number().int().min(1).max(3_600_000).default(600_000),
});
export type CommandActivatorConfig = z.infer<typeof CommandActivatorConfig>;

async function run(
  argv: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<string> {
  const r = await runArgv(argv, { env: { ...process.env, ...env }, timeoutMs });
  if (r.code === 0) return r.stdout;
  throw new ActivationError(
    `command ${JSON.stringify(argv)} ${failureReason(r, timeoutMs)}: ${r.stderr.trim().slice(0, 400)}`,
  );
}

const JsonGeneration = z.strictObject({
  number: z.number().int().min(1),
  path: z.string().min(1).max(1024),
});

export function parseGenerationOutput(out: string): Generation {
  const text = out.trim();
  if (text.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new ActivationError(
        `current-generation command printed invalid JSON: ${text.slice(0, 200)}`,
      );
    }
    const r = JsonGeneration.safeParse(parsed);
    if (!r.success)
      throw new ActivationError(
        `current-generation command output: ${r.error.issues[0]?.message ?? 'invalid'}`,
      );
    return r.data;
  }
  const m = /^(\d{1,9})\s+(\S{1,1024})$/.exec(text);
  if (!m)
    throw new ActivationError(
      `current-generation command must print "<number> <path>", got: ${text.slice(0, 200)}`,
    );
  return { number: Number(m[1]), path: m[2]! };
}

export class CommandActivator implements Activator {
  readonly kind = 'command';
  constructor(private readonly config: CommandActivatorConfig) {}

  async currentGeneration(): Promise<Generation> {
    return parseGenerationOutput(await run(this.config.current, {}, this.config.timeoutMs));
  }

  async switch(target: string): Promise<Generation> {
    const previous = await this.currentGeneration();
    await run(this.config.switch, { NIXFLEET_TARGET: target }, this.config.timeoutMs);
    return previous;
  }

  async rollback(to: Generation): Promise<void> {
    const current = await this.currentGeneration();
    if (current.number === to.number) return;
    await run(
      this.config.rollback,
      { NIXFLEET_GENERATION: String(to.number), NIXFLEET_GENERATION_PATH: to.path },
      this.config.timeoutMs,
    );
  }

  async detectInhibitors(target: string): Promise<string[]> {
    if (!this.config.inhibitors) return [];
    const out = await run(
      this.config.inhibitors,
      { NIXFLEET_TARGET: target },
      this.config.timeoutMs,
    );
    return out
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(0, 32);
  }

  /** The configured commands fetch what they switch to themselves. */
  async prepare(): Promise<void> {}

  async selfCheck(): Promise<{ name: string; ok: boolean; detail: string }[]> {
    return [];
  }
}
