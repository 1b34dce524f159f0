// Which control plane box an agent tries first. With several boxes (agent/config.ts
// `otherControlPlaneUrls`) the agent sticks to the box that answered last, across runs, so a dead box
// costs one detour (a refused connection or a timeout) once, not on every timer run. Volatile (atomic,
// no fsync): lost, the next run starts with the first URL of the config and moves on from there.
import { readFileSync } from 'node:fs';
import type { PreferredBoxStore } from './http-client.ts';
import { writeVolatileFile, type StateDir } from './state-dir.ts';

export const PREFERRED_BOX_FILE = 'control-plane.json';

export function preferredBoxStore(state: StateDir): PreferredBoxStore {
  const file = state.path(PREFERRED_BOX_FILE);
  return {
    load() {
      try {
        const url = (JSON.parse(readFileSync(file, 'utf8')) as { url?: unknown }).url;
        // Only ever compared with the configured URLs: anything else is no preference.
        return typeof url === 'string' && url.length <= 2048 ? url : undefined;
      } catch {
        return undefined;
      }
    },
    save(url) {
      writeVolatileFile(file, JSON.stringify({ url }) + '\n');
    },
  };
}
