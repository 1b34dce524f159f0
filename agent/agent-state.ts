// What the agent remembers about itself besides acks, pending record and quarantine: the last confirmed
// activation (for heartbeats' healthySince and for rollback-and-halt's "previous generation") and the
// digest of the last fully verified timestamp (for the steady-state shortcut in tree-fetch.ts).
import { z } from 'zod';
import { ControlEvidence, Digest, IsoTime, StorePath } from '../protocol/index.ts';
import type { StateDir } from './state-dir.ts';

export const AgentState = z.strictObject({
  confirmed: z
    .strictObject({
      target: StorePath,
      rolloutId: Digest.nullable(),
      healthySince: IsoTime,
      /** Generation that ran before this activation: what rollback-and-halt restores. */
      previous: z
        .strictObject({ number: z.number().int().min(1), path: z.string().min(1).max(1024) })
        .nullable(),
      /**
       * The runtime compliance controls' results on this target and for which rollout they were run:
       * repeated in every heartbeat (peers judge a soak from the latest ack alone).
       */
      evidence: z
        .strictObject({ rolloutId: Digest, results: z.array(ControlEvidence).max(32) })
        .optional(),
    })
    .nullable(),
  lastVerifiedTimestamp: Digest.nullable(),
  /**
   * The generation that ran when the last activation started, written (fsynced) before its pending
   * record: what recovery restores when both copies of the pending record are unreadable.
   */
  beforeActivation: z
    .strictObject({ number: z.number().int().min(1), path: z.string().min(1).max(1024) })
    .nullable()
    .default(null),
});
export type AgentState = z.infer<typeof AgentState>;

export const AGENT_STATE_FILE = 'agent-state.json';

export function readAgentState(state: StateDir): AgentState {
  return (
    state.read(AGENT_STATE_FILE, AgentState) ?? {
      confirmed: null,
      lastVerifiedTimestamp: null,
      beforeActivation: null,
    }
  );
}

export function updateAgentState(state: StateDir, patch: Partial<AgentState>): AgentState {
  const current = readAgentState(state);
  const next = { ...current, ...patch };
  if (JSON.stringify(next) !== JSON.stringify(current))
    state.write(AGENT_STATE_FILE, AgentState, next);
  return next;
}
