import { z } from 'zod';
import type { StateDir } from '../state-dir.ts';
import type { Activator } from './activator.ts';
import { CommandActivator, CommandActivatorConfig } from './command.ts';
import { NixActivator, NixActivatorConfig } from './nix.ts';
import { SimulatedActivator, SimulatedActivatorConfig } from './simulated.ts';

export const ActivatorConfig = z.discriminatedUnion('kind', [SimulatedActivatorConfig, CommandActivatorConfig, NixActivatorConfig]);
export type ActivatorConfig = z.infer<typeof ActivatorConfig>;

export function createActivator(config: ActivatorConfig, state: StateDir): Activator {
  switch (config.kind) {
    case 'simulated':
      return new SimulatedActivator(state, config);
    case 'command':
      return new CommandActivator(config);
    case 'nix':
      return new NixActivator(config);
  }
}

export type { Activator, Generation, RebootCapable } from './activator.ts';
export { ActivationError, ClosureRefused, canReboot, isClosureRefused, type ClosureRefusedCode, type ClosureSource } from './activator.ts';
export { NixActivator } from './nix.ts';
