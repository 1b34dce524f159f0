// The registry of subcommands. Each command's code lives in the component it belongs to; modules load
// lazily so `nixfleet agent --once` does not pay for the publisher's imports.
// To add a command: one line here, and a module whose default export is a `Command`.
import type { Command } from './command.ts';

export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<{ default: Command }>;
}

export const COMMANDS: CommandEntry[] = [
  { name: 'version', summary: 'print the nixfleet version', load: () => import('./version.ts') },
  { name: 'agent', summary: 'run the host agent (one cycle or a daemon); manage its quarantine', load: () => import('./agent.ts') },
  { name: 'keygen', summary: 'generate an Ed25519 signing key (root, release or host key)', load: () => import('./keygen.ts') },
  { name: 'trust init', summary: 'create trust root v1 (root keys, release keys, cache keys, thresholds)', load: () => import('./trust.ts').then((m) => ({ default: m.trustInit })) },
  { name: 'trust rotate', summary: 'sign the next trust root version (rotate keys, set rejectBefore)', load: () => import('./trust.ts').then((m) => ({ default: m.trustRotate })) },
  { name: 'verify', summary: 'verify a whole published tree offline against a pinned trust root', load: () => import('./verify.ts') },
];
