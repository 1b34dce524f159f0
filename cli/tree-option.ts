// `--tree DIR --root FILE` for the operator's signing commands (`control`, `enrol`): CI's tree verified
// against the pinned root, an expired timestamp allowed (they sign what the next refresh binds, and a
// frozen fleet is exactly when an operator may need them).
import { HostName } from '../protocol/index.ts';
import { loadReleaseAllowingStale, type VerifiedRelease } from '../read-side/index.ts';
import { UsageError } from './command.ts';
import { pinnedRootOption } from './root-option.ts';

/** The verified release, or why the tree does not verify (each command says how it refuses). */
export async function treeOption(
  values: Record<string, string | boolean | string[] | undefined>,
  now: number,
): Promise<{ release: VerifiedRelease } | { failure: string }> {
  const tree = values['tree'] as string | undefined;
  const rootFile = values['root'] as string | undefined;
  if (!tree) throw new UsageError('--tree DIR is required');
  if (!rootFile) throw new UsageError('--root FILE (the pinned trust root) is required');
  const load = await loadReleaseAllowingStale(tree, pinnedRootOption(rootFile), { now });
  if (load.status === 'failed')
    return {
      failure: `the tree does not verify: ${load.failure.code}: ${load.failure.file}: ${load.failure.detail}`,
    };
  return { release: load.release };
}

/** `--host H`: a host of the verified release, and its channel. */
export function hostOf(release: VerifiedRelease, host: string): { host: string; channel: string } {
  const entry = HostName.safeParse(host).success ? release.index.hosts[host] : undefined;
  if (!entry)
    throw new UsageError(`--host: release ${release.index.version} has no host "${host}"`);
  return { host, channel: entry.channel };
}
