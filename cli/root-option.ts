// `--root FILE`: the pinned trust root an operator command verifies from. Apart from cli/command.ts
// because reading a root loads the protocol's schemas, which `nixfleet version` and `--help` need not pay.
import { readPinnedRoot, type SignedRoot } from '../protocol/index.ts';
import { optionIoError } from './command.ts';
/** `--root FILE` (or another flag): the pinned trust root; unreadable is exit 2 naming the option. */
export function pinnedRootOption(path: string, flag = '--root'): SignedRoot {
  try {
    return readPinnedRoot(path);
  } catch (e) {
    throw optionIoError(flag, path, e);
  }
}
