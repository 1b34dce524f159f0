// Child process for the kill -9 test: publishes a fleet JSON file into a tree and reports progress on
// stdout, one JSON line per event, so the parent can kill it at chosen moments. `in-line` publishes
// with publishRelease (signed, then written); `threads` as `nixfleet publish` does (publishReleaseChecked:
// manifests written into the temp directory while the second thread still signs).
import { readFileSync } from 'node:fs';
import { publishRelease, publishReleaseChecked } from '../../publisher/publish.ts';
import { keyFromLabel } from './helpers.ts';

const [treeDir, trustDir, fleetFile, nowText, mode] = process.argv.slice(2);
if (!treeDir || !trustDir || !fleetFile || !nowText || (mode !== 'in-line' && mode !== 'threads'))
  throw new Error('usage: publish-child TREE TRUST FLEET NOW_MS in-line|threads');
const fleet: unknown = JSON.parse(readFileSync(fleetFile, 'utf8'));
const opts = {
  cacheCheck: 'skip' as const,
  treeDir,
  trustDir,
  fleet,
  releaseKeys: [keyFromLabel('release')],
  now: Number(nowText),
  onProgress: (p: unknown) => process.stdout.write(JSON.stringify(p) + '\n'),
};
const r = mode === 'in-line' ? publishRelease(opts) : await publishReleaseChecked(opts);
process.stdout.write(JSON.stringify({ phase: 'published', version: r.version }) + '\n');
