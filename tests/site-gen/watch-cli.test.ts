// Watch mode (rebuild after an ack changes, coalesced, never overlapping) and the CLI (`site build`,
// `site watch`: exit codes, --json, clean stop on SIGTERM).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { watchSite, isRelevantChange } from '../../site-gen/watch.ts';
import type { SiteBuildResult } from '../../site-gen/build.ts';
import { MIN, NOW, createSiteFixture, type SiteFixture } from './fixture.ts';
import { channelPlanPath } from '../../protocol/layout.ts';

const BIN = fileURLToPath(new URL('../../bin/nixfleet.js', import.meta.url));

let fx: SiteFixture;
test.before(() => {
  fx = createSiteFixture();
});
test.after(() => fx.cleanup());

function waitFor<T>(get: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const tick = () => {
      const v = get();
      if (v !== undefined) return resolve(v);
      if (Date.now() - start > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

test('which changes trigger a rebuild', () => {
  const t = '/srv/cp';
  const log = '/srv/cp/.ack-log/acks.log';
  assert.ok(isRelevantChange(t, '/srv/cp/timestamp.json', log));
  assert.ok(isRelevantChange(t, '/srv/cp/current', log));
  assert.ok(isRelevantChange(t, '/srv/cp/acks/hosts/web-01.json', log));
  assert.ok(isRelevantChange(t, '/srv/cp/acks/channels/main/wave-0.json', log));
  assert.ok(isRelevantChange(t, '/srv/cp/root/2.json', log));
  assert.ok(isRelevantChange(t, log, log));
  assert.not.ok(isRelevantChange(t, '/srv/cp/acks/hosts/.web-01.json.123.tmp', log));
  assert.not.ok(isRelevantChange(t, '/srv/cp/.publish.lock', log));
  assert.not.ok(isRelevantChange(t, '/srv/cp/releases/2/index.json', log));
  assert.not.ok(isRelevantChange(t, '/elsewhere/timestamp.json', log));
});

test('watch: builds at start, rebuilds after an ack file changes, and stops cleanly', async () => {
  const out = join(fx.dir, 'watch-site');
  const builds: { result: SiteBuildResult; trigger: string }[] = [];
  const errors: unknown[] = [];
  let now = NOW;
  const watcher = await watchSite({
    treeDir: fx.treeDir,
    pinnedRoot: fx.root,
    outDir: out,
    now: () => now,
    debounceMs: 50,
    intervalSeconds: 0,
    onBuild: (result, trigger) => builds.push({ result, trigger }),
    onError: (e) => errors.push(e),
  });
  try {
    assert.is(builds.length, 1);
    assert.is(builds[0]!.trigger, 'start');
    const eligible = fx.roles.eligible;
    assert.match(
      readFileSync(join(out, 'hosts.html'), 'utf8'),
      new RegExp(`<tr id="host-${eligible}">.*?>pending</a>`),
    );
    // the eligible host starts: its agent posts a `started` ack, the endpoint rewrites its file and log
    now = NOW + MIN;
    const plan = fx.plans['ch-0']!;
    fx.chains.get(eligible)!.write({
      at: NOW + 30_000,
      kind: 'started',
      rolloutId: plan.rolloutId,
      target: plan.hosts[eligible]!.target,
      current: null,
    });
    const rebuilt = await waitFor(
      () => builds.find((b) => b.trigger !== 'start'),
      10_000,
      'a rebuild',
    );
    assert.match(rebuilt.trigger, /acks/);
    assert.match(
      readFileSync(join(out, 'hosts.html'), 'utf8'),
      new RegExp(`<tr id="host-${eligible}">.*?>activating</a>`),
    );
    assert.is(rebuilt.result.phases!.activating, 2);
    // both files (ack file and log) changed within the debounce window: one build, not two
    await new Promise((r) => setTimeout(r, 300));
    assert.is(builds.length, 2, builds.map((b) => b.trigger).join(', '));
    assert.equal(errors, []);
  } finally {
    await watcher.close();
  }
  const after = builds.length;
  fx.chains.get(fx.roles.gated)!.write({ at: NOW + 40_000, kind: 'heartbeat', current: null });
  await new Promise((r) => setTimeout(r, 300));
  assert.is(builds.length, after, 'no build after close');
});

test('watch with a periodic rebuild: the watcher reports latest-ack files, a reported file is read again', async () => {
  // With a periodic rebuild the ack feed takes files the watcher did not report as read before
  // (AckFeed changeReports): a latest-ack file replaced by a forged one must still be read and refused.
  const out = join(fx.dir, 'watch-reports');
  const builds: SiteBuildResult[] = [];
  const watcher = await watchSite({
    treeDir: fx.treeDir,
    pinnedRoot: fx.root,
    outDir: out,
    now: () => NOW + 2 * MIN,
    debounceMs: 50,
    intervalSeconds: 3600,
    onBuild: (result) => builds.push(result),
  });
  const file = join(fx.treeDir, 'acks', 'hosts', `${fx.roles.soaked}.json`);
  const original = readFileSync(file);
  // As the endpoint writes: a temporary file renamed over the host's file.
  const replace = (bytes: Buffer) => {
    writeFileSync(`${file}.tmp`, bytes);
    renameSync(`${file}.tmp`, file);
  };
  try {
    assert.is(builds[0]!.acks.rejected, 0);
    replace(Buffer.from(original.toString().replace('"generated"', '"generatee"')));
    const rebuilt = await waitFor(() => builds[1], 10_000, 'a rebuild');
    assert.is(rebuilt.verificationReused, true, 'an ack-only rebuild (the incremental read)');
    assert.is(rebuilt.acks.rejected, 1, 'the forged file was read again and refused');
    replace(original);
    const restored = await waitFor(() => builds[2], 10_000, 'a rebuild');
    assert.is(restored.acks.rejected, 0);
  } finally {
    await watcher.close();
    if (!readFileSync(file).equals(original)) replace(original);
  }
});

test("watch: the periodic rebuild walks the tree again through the last walk's documents; a document tampered since is refused", async () => {
  const copy = createSiteFixture();
  const builds: SiteBuildResult[] = [];
  const watcher = await watchSite({
    treeDir: copy.treeDir,
    pinnedRoot: copy.root,
    outDir: join(copy.dir, 'periodic'),
    now: () => NOW + MIN,
    debounceMs: 50,
    intervalSeconds: 1,
    onBuild: (result) => builds.push(result),
  });
  try {
    const again = await waitFor(() => builds[1], 10_000, 'a periodic rebuild');
    assert.is(again.status, 'verified');
    assert.is(again.verificationReused, false, 'the periodic rebuild walks the tree');
    // A plan changed in place (no tree file the watcher follows): its bytes are not the ones the
    // last walk verified, so the next walk checks its signature and refuses it.
    const planFile = join(copy.treeDir, channelPlanPath(1, 'ch-1'));
    const text = readFileSync(planFile, 'utf8');
    writeFileSync(planFile, text.replace('"soakSeconds":600', '"soakSeconds":601'));
    const seen = builds.length;
    const refused = await waitFor(
      () => builds.slice(seen).find((b) => b.status === 'failed'),
      10_000,
      'a periodic rebuild that refuses the tampered plan',
    );
    assert.is(refused.failure?.code, 'BadSignature');
    assert.is(refused.failure?.file, 'releases/1/channels/ch-1.json');
  } finally {
    await watcher.close();
    copy.cleanup();
  }
});

test('cli: site build --json (exit 0), a tampered tree (exit 1), usage errors (exit 2)', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  const out = join(fx.dir, 'cli-site');
  const ok = run([
    'site',
    'build',
    '--tree',
    fx.treeDir,
    '--root',
    fx.rootFile,
    '--out',
    out,
    '--now',
    new Date(NOW).toISOString(),
    '--json',
  ]);
  assert.is(ok.status, 0, ok.stderr);
  const report = JSON.parse(ok.stdout) as SiteBuildResult;
  assert.is(report.status, 'verified');
  assert.is(report.hosts, 12);
  assert.is(report.outDir, out);

  const human = run([
    'site',
    'build',
    '--tree',
    fx.treeDir,
    '--root',
    fx.rootFile,
    '--out',
    out,
    '--now',
    new Date(NOW).toISOString(),
    '--no-ack-log',
  ]);
  assert.is(human.status, 0, human.stderr);
  assert.match(human.stdout, /^built: fleet "generated", release 1, 12 hosts; \d+ pages/);

  const stale = run([
    'site',
    'build',
    '--tree',
    fx.treeDir,
    '--root',
    fx.rootFile,
    '--out',
    out,
    '--now',
    '2031-01-01T00:00:00Z',
  ]);
  assert.is(stale.status, 1);

  assert.is(run(['site', 'build', '--tree', fx.treeDir, '--out', out]).status, 2);
  assert.is(
    run([
      'site',
      'build',
      '--tree',
      fx.treeDir,
      '--root',
      fx.rootFile,
      '--out',
      out,
      '--now',
      'yesterday',
    ]).status,
    2,
  );
  assert.is(
    run(['site', 'build', '--tree', fx.treeDir, '--root', fx.rootFile, '--out', out, '--bogus'])
      .status,
    2,
  );
  assert.is(
    run(['site', 'build', '--tree', join(fx.dir, 'nope'), '--root', fx.rootFile, '--out', out])
      .status,
    2,
  );
  const help = run(['site', 'watch', '--help']);
  assert.is(help.status, 0);
  assert.match(help.stdout, 'SIGTERM');
});

test('cli: site watch builds, then stops with exit 0 on SIGTERM', async () => {
  const out = join(fx.dir, 'cli-watch-site');
  const child = spawn(
    process.execPath,
    [
      BIN,
      'site',
      'watch',
      '--tree',
      fx.treeDir,
      '--root',
      fx.rootFile,
      '--out',
      out,
      '--json',
      '--interval',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(
      () => (stdout.includes('"event":"built"') ? true : undefined),
      30_000,
      `the first build (stderr: ${stderr})`,
    );
    child.kill('SIGTERM');
    assert.is(await exited, 0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { event: string; signal?: string; trigger?: string });
    assert.is(lines[0]!.event, 'built');
    assert.is(lines[0]!.trigger, 'start');
    assert.equal(lines[lines.length - 1], { event: 'stopped', signal: 'SIGTERM' });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test.run();
