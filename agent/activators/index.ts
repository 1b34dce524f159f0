import { z } from 'zod';
import type { StateDir } from '../state-dir.ts';
import type { Activator } from './activator.ts';
import { CommandActivator, CommandActivatorConfig } from './command.ts';
import { NixActivator, NixActivatorConfig, type ActivatorContext } from './nix.ts';
import { SimulatedActivator, SimulatedActivatorConfig } from './simulated.ts';

export const ActivatorConfig = z.discriminatedUnion('kind', [
  SimulatedActivatorConfig,
  CommandActivatorConfig,
  NixActivatorConfig,
]);
export type ActivatorConfig = z.infer<typeof ActivatorConfig>;

/** `context`: what the agent knows beyond the activator's own config (its fleet CA, for https caches). */
export function createActivator(
  config: ActivatorConfig,
  state: StateDir,
  context: ActivatorContext = {},
): Activator {
  switch (config.kind) {
    case 'simulated':
      return new SimulatedActivator(state, config);
    case 'command':
      return new CommandActivator(config);
    case 'nix':
      return new NixActivator(config, { ...context, stateDir: state.root });
  }
}

export { ActivationError, canReboot, canStage, isClosureRefused } from './activator.ts';
export type { Activator, Generation, RebootCapable } from './activator.ts';
