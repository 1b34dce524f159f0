// One site-gen bench run in its own process, so that its peak RSS is the build's: a cold one-shot build
// (`nixfleet site build`), then what `site watch` does: its start build, one new ack appended to the ack
// log and acks/hosts/<host>.json, and the rebuild it triggers (ack cache, reused verification, only the
// changed pages written). Prints the three SiteBuildResults as JSON.
// argv: tree rootFile outDir nowMs host newAckFile newAckLogRecord
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ReleaseCache, buildSite } from '../../site-gen/build.ts';
import { AckCache, readPinnedRoot } from '../../read-side/load.ts';
import { HostPageMemo } from '../../site-gen/host-pages.ts';

const [tree, rootFile, out, nowArg, host, ackFile, recordFile] = process.argv.slice(2) as [
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
/** CPU time of the whole process (every thread: signature batches run on worker threads), in ms. */
const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

let cpu = process.cpuUsage();
const cold = await buildSite({ treeDir: tree, pinnedRoot, outDir: out, now });
const coldCpuMs = cpuMs(cpu);
cpu = process.cpuUsage();
const coldMaxRssMb = rssMb();
const ackCache = new AckCache();
const releaseCache = new ReleaseCache();
const hostPageMemo = new HostPageMemo();
const watchStart = await buildSite({
  treeDir: tree,
  pinnedRoot,
  outDir: out,
  now: now + 1000,
  ackCache,
  releaseCache,
  hostPageMemo,
});
const watchStartCpuMs = cpuMs(cpu);
// The ack endpoint's two writes for one ack (acks/ is the only tree path touched: no treeChanged()).
appendFileSync(join(tree, '.ack-log', 'acks.log'), readFileSync(recordFile));
writeFileSync(join(tree, 'acks', 'hosts', `${host}.json`), readFileSync(ackFile));
cpu = process.cpuUsage();
const oneAck = await buildSite({
  treeDir: tree,
  pinnedRoot,
  outDir: out,
  now: now + 2000,
  ackCache,
  releaseCache,
  hostPageMemo,
});
const oneAckCpuMs = cpuMs(cpu);
process.stdout.write(
  JSON.stringify({
    cold,
    coldMaxRssMb,
    watchStart,
    oneAck,
    maxRssMb: rssMb(),
    cpuMs: [coldCpuMs, watchStartCpuMs, oneAckCpuMs],
  }),
);
