import { z } from 'zod';
import type { StateDir } from '../state-dir.ts';
import type { Activator } from './activator.ts';
import { CommandActivator, CommandActivatorConfig } from './command.ts';
import { SimulatedActivator, SimulatedActivatorConfig } from './simulated.ts';

export const ActivatorConfig = z.discriminatedUnion('kind', [SimulatedActivatorConfig, CommandActivatorConfig]);
export type ActivatorConfig = z.infer<typeof ActivatorConfig>;

export function createActivator(config: ActivatorConfig, state: StateDir): Activator {
  return config.kind === 'simulated' ? new SimulatedActivator(state, config) : new CommandActivator(config);
}

export type { Activator, Generation } from './activator.ts';
export { ActivationError } from './activator.ts';
