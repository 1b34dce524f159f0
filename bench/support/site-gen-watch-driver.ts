// `site watch`'s rebuild after one new ack, in one process, for bench/site-gen-watch.sh, which bundles
// this module with a checkout's site-gen and read-side (compiled, as the shipped command runs) so that
// two checkouts, before and after a change, run the same steps. As bench/support/site-gen-child.ts's
// phase `rest` does: the store's start build, then one `started` ack appended to the log and written
// to acks/hosts/<h>.json (reported to the ack feed as the watcher does, where the checkout's AckFeed
// takes reports) and the rebuild it triggers. Restores the fixture's log and host file before and
// after. Prints one JSON line.
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What the driver uses of a checkout (any version of these modules). */
export interface Checkout {
  build: {
    ReleaseCache: new () => unknown;
    buildSite(o: Record<string, unknown>): Promise<{ rendered: number; written: number }>;
  };
  AckFeed: new (o?: { changeReports?: boolean }) => { fileChanged?(path: string): void };
  /** Absent before per-host results were kept (buildSite then ignores the option). */
  ModelMemo: (new () => unknown) | undefined;
  readPinnedRoot(file: string): unknown;
  openVerifiedAckStore(dir: string, name: string): { cache: unknown };
}

export async function measureOneAck(c: Checkout, fx: string, out: string): Promise<void> {
  const f = JSON.parse(readFileSync(join(fx, 'fixture.json'), 'utf8')) as {
    now: number;
    nextHost: string;
  };
  const tree = join(fx, 'tree');
  const hostFile = join(tree, 'acks', 'hosts', `${f.nextHost}.json`);
  const restore = () => {
    copyFileSync(join(fx, 'acks.log.orig'), join(tree, '.ack-log', 'acks.log'));
    copyFileSync(join(fx, 'host-ack.orig'), hostFile);
  };
  restore();
  const cpuMs = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const base = {
    treeDir: tree,
    pinnedRoot: c.readPinnedRoot(join(fx, 'root.json')),
    outDir: out,
    releaseCache: new c.build.ReleaseCache(),
    ackFeed: new c.AckFeed({ changeReports: true }),
    // A checkout before ModelMemo has none (buildSite ignores the option).
    ...(c.ModelMemo === undefined ? {} : { modelMemo: new c.ModelMemo() }),
  };
  const store = c.openVerifiedAckStore(join(fx, 'cache'), 'site');
  await c.build.buildSite({ ...base, now: f.now + 1000, verifiedStore: store });
  appendFileSync(join(tree, '.ack-log', 'acks.log'), readFileSync(join(fx, 'next-ack.record')));
  writeFileSync(hostFile, readFileSync(join(fx, 'next-ack.json')));
  base.ackFeed.fileChanged?.(hostFile);
  const c0 = cpuMs();
  const w0 = performance.now();
  const r = await c.build.buildSite({ ...base, now: f.now + 2000, ackCache: store.cache });
  const cpu = cpuMs() - c0;
  const wall = performance.now() - w0;
  restore();
  console.log(
    JSON.stringify({
      cpuMs: Math.round(cpu),
      wallMs: Math.round(wall),
      rendered: r.rendered,
      written: r.written,
    }),
  );
}
