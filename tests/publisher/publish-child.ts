// Child process for the kill -9 test: publishes a fleet JSON file into a tree and reports progress on
// stdout, one JSON line per event, so the parent can kill it at chosen moments.
import { readFileSync } from 'node:fs';
import { publishRelease } from '../../publisher/publish.ts';
import { keyFromLabel } from './helpers.ts';

const [treeDir, trustDir, fleetFile, nowText] = process.argv.slice(2);
if (!treeDir || !trustDir || !fleetFile || !nowText)
  throw new Error('usage: publish-child TREE TRUST FLEET NOW_MS');
const fleet: unknown = JSON.parse(readFileSync(fleetFile, 'utf8'));
const r = publishRelease({
  cacheCheck: 'skip',
  treeDir,
  trustDir,
  fleet,
  releaseKeys: [keyFromLabel('release')],
  now: Number(nowText),
  onProgress: (p) => process.stdout.write(JSON.stringify(p) + '\n'),
});
process.stdout.write(JSON.stringify({ phase: 'published', version: r.version }) + '\n');
