// One site-gen bench run in its own process, so that its peak RSS is the build's. What `nixfleet site
// build` does twice: a first build (an empty verified store in `cacheDir`: every signature checked) and
// the next one-shot build (the store it saved: digests checked); then what `site watch` does: its start
// build (the store, fresh in-memory caches), one new ack appended to the ack log and
// acks/hosts/<host>.json, and the rebuild it triggers (ack cache, reused verification, the log's new
// records only (ack feed), only the pages whose inputs changed rendered). Prints the four SiteBuildResults as JSON, with the CPU
// time of each and the peak RSS after the first and after all.
// Run three times: phase `first` (the first build alone, so its peak RSS is its own), phase `cold-site`
// (a one-shot build with the store `first` saved into a new output: cold site, warm verification) and
// phase `rest` (a new process, as the next `site build` is: its peak RSS after the one-shot build and
// after all).
// argv: phase tree rootFile outDir nowMs host newAckFile newAckLogRecord cacheDir
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseCache, buildSite, type BuildSiteOptions } from '../../site-gen/build.ts';
import { AckFeed } from '../../site-gen/ack-feed.ts';
import { ModelMemo } from '../../site-gen/model.ts';
import { readPinnedRoot } from '../../read-side/load.ts';
import { openVerifiedAckStore } from '../../read-side/verified-cache.ts';
import type { SiteBuildResult } from '../../site-gen/build.ts';

const [phase, tree, rootFile, out, nowArg, host, ackFile, recordFile, cacheDir] =
  process.argv.slice(2) as [
    'first' | 'cold-site' | 'rest',
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
const now = Number(nowArg);
const pinnedRoot = readPinnedRoot(rootFile);
const rssMb = () => process.resourceUsage().maxRSS / 1024;
const cpuMs: number[] = [];

/** One build, with the CPU time of the whole process (every thread: signature batches run on workers). */
async function measured(
  o: Omit<BuildSiteOptions, 'treeDir' | 'pinnedRoot' | 'outDir'> & { outDir?: string },
) {
  const before = process.cpuUsage();
  const r: SiteBuildResult = await buildSite({ treeDir: tree, pinnedRoot, outDir: out, ...o });
  const u = process.cpuUsage(before);
  cpuMs.push((u.user + u.system) / 1000);
  return r;
}

if (phase === 'first' || phase === 'cold-site') {
  // cold-site: the store the first build saved, but no site yet (a new output directory).
  const first = await measured({
    now,
    verifiedStore: openVerifiedAckStore(cacheDir, 'site'),
    ...(phase === 'cold-site' ? { outDir: `${out}-cold-site` } : {}),
  });
  process.stdout.write(JSON.stringify({ first, maxRssMb: rssMb(), cpuMs }));
  process.exit(0);
}
const warm = await measured({ now, verifiedStore: openVerifiedAckStore(cacheDir, 'site') });
const warmMaxRssMb = rssMb();
const releaseCache = new ReleaseCache();
// As `site watch` keeps it: its watcher reports the latest-ack files that change (below).
const ackFeed = new AckFeed({ changeReports: true });
const modelMemo = new ModelMemo();
const store = openVerifiedAckStore(cacheDir, 'site');
const watchStart = await measured({
  now: now + 1000,
  verifiedStore: store,
  releaseCache,
  ackFeed,
  modelMemo,
});
// The ack endpoint's two writes for one ack (acks/ is the only tree path touched: no treeChanged()).
appendFileSync(join(tree, '.ack-log', 'acks.log'), readFileSync(recordFile));
writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), readFileSync(ackFile));
ackFeed.fileChanged(join(tree, 'acks', 'hosts', `${host}.json`));
const oneAck = await measured({
  now: now + 2000,
  ackCache: store.cache,
  releaseCache,
  ackFeed,
  modelMemo,
});
process.stdout.write(
  JSON.stringify({ warm, warmMaxRssMb, watchStart, oneAck, maxRssMb: rssMb(), cpuMs }),
);
