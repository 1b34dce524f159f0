// The publisher's cache check against binary caches written by the real `nix copy`: a closure signed by a
// root cache key publishes; unsigned, signed by another key, tampered, missing (the target or a path in its
// closure) are refused with the path and the reason; --no-cache-check publishes. Nix itself is asked about
// the same caches, and must agree with every verdict.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync, rmSync, writeFileSync, unlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { nixSandbox, run, type NixSandbox } from '../nix/nix-env.ts';
import {
  checkCache,
  parseNarinfo,
  describeCacheProblems,
  NARINFO_MAX_BYTES,
  type CacheCheckReport,
} from '../../publisher/cache-check.ts';
import { publishReleaseChecked } from '../../publisher/publish.ts';
import { PublishRefused } from '../../publisher/errors.ts';
import { writePrivateKey } from '../../protocol/keys.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { setupTrust, T0, type TrustSetup } from './helpers.ts';
import { runCli } from '../support/cli.ts';
import {
  nixKeyFromLabel,
  storePathFor,
  writeSyntheticCache,
} from '../../bench/support/synthetic-cache.ts';

interface World {
  sandbox: NixSandbox;
  top: string;
  dep: string;
  other: string;
  trustedPub: string;
  caches: Record<
    'signed' | 'unsigned' | 'otherKey' | 'tampered' | 'depMissing' | 'swapped',
    string
  >;
}

async function nixOk(w: World, args: string[]): Promise<string> {
  const r = await run('nix', args, { env: w.sandbox.env, timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`nix ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

async function buildWorld(): Promise<World> {
  const sandbox = nixSandbox('nixfleet-cache-check-');
  const w = { sandbox } as World;
  const expr = (attr: string) =>
    `let sys = builtins.currentSystem; mk = name: cmd: derivation { inherit name; system = sys; builder = "/bin/sh"; args = [ "-c" cmd ]; };
     dep = mk "nixfleet-cache-check-dep" "echo dep > $out";
     dep2 = mk "nixfleet-cache-check-dep2" "echo dep2 > $out";
     top = mk "nixfleet-system-cache-check" "echo \${dep} \${dep2} > $out";
     other = mk "nixfleet-system-not-pushed" "echo other > $out";
     in ${attr}`;
  for (const attr of ['top', 'dep', 'other'] as const) {
    const r = await run('nix-build', ['--no-out-link', '-E', expr(attr)], {
      env: sandbox.env,
      timeoutMs: 120_000,
    });
    if (r.code !== 0) throw new Error(`nix-build ${attr}: ${r.stderr}`);
    w[attr] = r.stdout.trim();
  }
  const key = async (name: string) => {
    const secret = join(sandbox.dir, `${name}.sec`);
    writeFileSync(secret, await nixOk(w, ['key', 'generate-secret', '--key-name', name]));
    // convert-secret-to-public reads stdin; run() passes none, so let sh redirect the file.
    const r = await run('sh', ['-c', 'nix key convert-secret-to-public < "$1"', 'sh', secret], {
      env: sandbox.env,
    });
    return { secret, pub: r.stdout.trim() };
  };
  const trusted = await key('fleet-cache-1');
  const otherKey = await key('someone-else-1');
  w.trustedPub = trusted.pub;
  const dir = (n: string) => join(sandbox.dir, n);
  w.caches = {
    signed: dir('signed'),
    unsigned: dir('unsigned'),
    otherKey: dir('other-key'),
    tampered: dir('tampered'),
    depMissing: dir('dep-missing'),
    swapped: dir('swapped'),
  };
  await nixOk(w, ['copy', '--to', `file://${w.caches.signed}?secret-key=${trusted.secret}`, w.top]);
  await nixOk(w, ['copy', '--to', `file://${w.caches.unsigned}`, w.top]);
  await nixOk(w, [
    'copy',
    '--to',
    `file://${w.caches.otherKey}?secret-key=${otherKey.secret}`,
    w.top,
  ]);
  const narinfo = (cache: string, path: string) =>
    join(cache, `${path.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`);
  cpSync(w.caches.signed, w.caches.tampered, { recursive: true });
  const t = narinfo(w.caches.tampered, w.top);
  writeFileSync(
    t,
    readFileSync(t, 'utf8').replace(
      /^NarSize: (\d+)$/m,
      (_, n: string) => `NarSize: ${Number(n) + 1}`,
    ),
  );
  cpSync(w.caches.signed, w.caches.depMissing, { recursive: true });
  unlinkSync(narinfo(w.caches.depMissing, w.dep));
  // A cache answering the top's narinfo URL with the (validly signed) narinfo of another path.
  cpSync(w.caches.signed, w.caches.swapped, { recursive: true });
  cpSync(narinfo(w.caches.signed, w.dep), narinfo(w.caches.swapped, w.top));
  return w;
}

let world: World | undefined;
async function getWorld(): Promise<World | undefined> {
  if (!requireTool('nix', 'cache check against caches written by nix copy')) return undefined;
  world ??= await buildWorld();
  return world;
}
test.after(() => world?.sandbox.cleanup());

async function check(
  w: World,
  cache: keyof World['caches'],
  paths = [w.top],
): Promise<CacheCheckReport> {
  return checkCache({
    cacheUrl: `file://${w.caches[cache]}`,
    storePaths: paths,
    trustedKeys: [w.trustedPub],
  });
}

/** What Nix says about the same cache and path: does `nix store verify -r` accept the closure? */
async function nixAccepts(w: World, cache: keyof World['caches'], path = w.top): Promise<boolean> {
  const r = await run(
    'nix',
    [
      'store',
      'verify',
      '--store',
      `file://${w.caches[cache]}`,
      '--no-contents',
      '-r',
      '--option',
      'trusted-public-keys',
      w.trustedPub,
      path,
    ],
    { env: w.sandbox.env, timeoutMs: 120_000 },
  );
  return r.code === 0;
}

test('a closure signed by a root cache key passes, and Nix agrees', async () => {
  const w = await getWorld();
  if (!w) return;
  const r = await check(w, 'signed');
  assert.equal(r.problems, []);
  assert.is(r.targets, 1);
  assert.is(
    r.checked,
    3,
    'the target and the two paths it references (a signed fingerprint with a comma-joined list)',
  );
  assert.equal(r.keysUsed, [w.trustedPub]);
  assert.ok(await nixAccepts(w, 'signed'));
});

test('unsigned, foreign key, tampered, missing target, missing reference, swapped narinfo: each refused with its reason, and Nix refuses each too', async () => {
  const w = await getWorld();
  if (!w) return;
  const cases: [keyof World['caches'], string, string, RegExp][] = [
    ['unsigned', w.top, 'unsigned', /no signature/],
    ['otherKey', w.top, 'untrusted-key', /someone-else-1/],
    ['tampered', w.top, 'bad-signature', /fleet-cache-1.*does not verify/],
    ['depMissing', w.dep, 'missing', /\.narinfo/],
    ['swapped', w.top, 'malformed', /describes .*dep, not/],
  ];
  for (const [cache, path, reason, detail] of cases) {
    const r = await check(w, cache);
    const p = r.problems.find((x) => x.storePath === path);
    assert.ok(p, `${cache}: expected a problem for ${path}, got ${JSON.stringify(r.problems)}`);
    assert.is(p!.reason, reason, cache);
    assert.match(p!.detail, detail, cache);
    assert.is(
      await nixAccepts(w, cache),
      false,
      `nix store verify should refuse the ${cache} cache too`,
    );
  }
  const missingRef = (await check(w, 'depMissing')).problems[0]!;
  assert.is(
    missingRef.referencedBy,
    w.top,
    'a missing reference names the target whose closure needs it',
  );
  const missing = await check(w, 'signed', [w.other, w.top]);
  assert.equal(
    missing.problems.map((p) => [p.storePath, p.reason]),
    [[w.other, 'missing']],
  );
  assert.is(await nixAccepts(w, 'signed', w.other), false);
});

function fleetFor(w: World, s: TrustSetup, cache: keyof World['caches'] | null, target: string) {
  const { fleet } = generateFleet({
    hosts: 6,
    channels: 2,
    wavesPerChannel: 2,
    seed: 'cache-check',
  });
  for (const h of Object.values(fleet.hosts)) h.target = target;
  if (cache === null) delete fleet.cacheUrl;
  else fleet.cacheUrl = `file://${w.caches[cache]}`;
  return fleet;
}

test('publish: signed cache publishes; problems refuse with paths and reasons; no cacheUrl or no root cache key refused; cacheCheck skip publishes', async () => {
  const w = await getWorld();
  if (!w) return;
  const s = setupTrust('generated', { cacheKeys: [w.trustedPub] });
  try {
    const base = { treeDir: s.treeDir, releaseKeys: [s.releaseKey], trustDir: s.trustDir };
    const ok = await publishReleaseChecked({
      ...base,
      fleet: fleetFor(w, s, 'signed', w.top),
      now: T0,
    });
    assert.equal(
      ok.cacheCheck.skipped
        ? null
        : [ok.cacheCheck.targets, ok.cacheCheck.checked, ok.cacheCheck.keysUsed],
      [1, 3, [w.trustedPub]],
    );

    const refusal = async (fleet: unknown, re: RegExp) => {
      try {
        await publishReleaseChecked({ ...base, fleet, now: T0 + 60_000 });
        assert.unreachable('expected a refusal');
      } catch (e) {
        assert.instance(e, PublishRefused);
        assert.match((e as Error).message, re);
      }
    };
    await refusal(fleetFor(w, s, 'unsigned', w.top), new RegExp(`${w.top}: not signed`));
    await refusal(fleetFor(w, s, 'otherKey', w.top), /signed only by keys not in the trust root/);
    await refusal(fleetFor(w, s, 'tampered', w.top), /bad signature/);
    await refusal(fleetFor(w, s, 'signed', w.other), new RegExp(`${w.other}: not in the cache`));
    await refusal(
      fleetFor(w, s, 'depMissing', w.top),
      new RegExp(`${w.dep}: not in the cache \\(in the closure of ${w.top}\\)`),
    );
    await refusal(fleetFor(w, s, null, w.top), /no cacheUrl.*--no-cache-check/);
    assert.is(
      readdirSync(join(s.treeDir, 'releases')).length,
      1,
      'no refused publish wrote a release',
    );

    const skipped = await publishReleaseChecked({
      ...base,
      fleet: fleetFor(w, s, 'unsigned', w.top),
      now: T0 + 120_000,
      cacheCheck: 'skip',
    });
    assert.equal(skipped.cacheCheck, { skipped: true });
    assert.is(skipped.version, 2);
  } finally {
    s.cleanup();
  }
  const noKeys = setupTrust('generated');
  try {
    await publishReleaseChecked({
      treeDir: noKeys.treeDir,
      releaseKeys: [noKeys.releaseKey],
      trustDir: noKeys.trustDir,
      fleet: fleetFor(w, noKeys, 'signed', w.top),
      now: T0,
    });
    assert.unreachable('a root without cache keys must be refused');
  } catch (e) {
    assert.match((e as Error).message, /lists no cache keys/);
  } finally {
    noKeys.cleanup();
  }
});

test('nixfleet publish: checks by default, names the refused path, --no-cache-check publishes and says so', async () => {
  const w = await getWorld();
  if (!w) return;
  const s = setupTrust('generated', { cacheKeys: [w.trustedPub] });
  try {
    const keyFile = join(s.dir, 'release.key');
    writePrivateKey(keyFile, s.releaseKey);
    const file = (cache: keyof World['caches'], target: string) => {
      const f = join(s.dir, `${cache}.json`);
      writeFileSync(f, JSON.stringify(fleetFor(w, s, cache, target)));
      return f;
    };
    const args = ['--tree', s.treeDir, '--release-key', keyFile, '--trust', s.trustDir];
    const refused = await runCli(
      'publish',
      file('unsigned', w.top),
      ...args,
      '--now',
      '2026-01-01T00:00:00Z',
    );
    assert.is(refused.code, 1, refused.err);
    assert.match(refused.err, new RegExp(`${w.top}: not signed`));
    const ok = await runCli(
      'publish',
      file('signed', w.top),
      ...args,
      '--now',
      '2026-01-01T00:01:00Z',
      '--progress',
    );
    assert.is(ok.code, 0, ok.err);
    assert.match(ok.out, /binary cache: 3 paths \(1 targets and their closures\) signed/);
    assert.match(ok.err, /checking the binary cache \(narinfos\) 3\/3/);
    const skipped = await runCli(
      'publish',
      file('unsigned', w.top),
      ...args,
      '--now',
      '2026-01-01T00:02:00Z',
      '--no-cache-check',
    );
    assert.is(skipped.code, 0, skipped.err);
    assert.match(skipped.out, /binary cache: NOT checked \(--no-cache-check\)/);
    // --cache-check-at: the same check, reading the narinfos at another URL (the fleet's cacheUrl unchanged).
    const elsewhere = await runCli(
      'publish',
      file('unsigned', w.top),
      ...args,
      '--now',
      '2026-01-01T00:03:00Z',
      '--force',
      '--cache-check-at',
      `file://${w.caches.signed}`,
    );
    assert.is(elsewhere.code, 0, elsewhere.err);
    assert.match(elsewhere.out, `signed in file://${w.caches.signed} by`);
    const elsewhereBad = await runCli(
      'publish',
      file('signed', w.top),
      ...args,
      '--now',
      '2026-01-01T00:04:00Z',
      '--force',
      '--cache-check-at',
      `file://${w.caches.unsigned}`,
    );
    assert.is(elsewhereBad.code, 1, elsewhereBad.err);
    assert.match(elsewhereBad.err, new RegExp(`${w.top}: not signed`));
    const both = await runCli(
      'publish',
      file('signed', w.top),
      ...args,
      '--no-cache-check',
      '--cache-check-at',
      `file://${w.caches.signed}`,
    );
    assert.is(both.code, 2, both.err);
    const help = await runCli('publish', '--help');
    assert.match(help.out + help.err, /--no-cache-check/);
    assert.match(help.out + help.err, /--cache-check-at URL/);
  } finally {
    s.cleanup();
  }
});

test('many problems: the first 10 are named, then "and N more"; strict narinfo parsing', async () => {
  const dir = join(setupTrust().dir, 'cache');
  try {
    const key = nixKeyFromLabel('fleet-cache-1');
    const present = writeSyntheticCache(dir, 3, key);
    const absent = Array.from({ length: 15 }, (_, i) => storePathFor(`absent-${i}`));
    const r = await checkCache({
      cacheUrl: `file://${dir}`,
      storePaths: [...present, ...absent],
      trustedKeys: [key.public],
      concurrency: 4,
    });
    assert.is(r.problems.length, 15);
    assert.is(r.checked, 3 + 1 + 15);
    const text = describeCacheProblems(r);
    assert.is(text.split('\n').length, 11);
    assert.match(text, /and 5 more$/);

    const good = readFileSync(
      join(
        dir,
        readdirSync(dir).find((f) => f.endsWith('.narinfo'))!,
      ),
      'utf8',
    );
    const refuses = (text: string, re: RegExp) =>
      assert.throws(() => parseNarinfo(text, 'x.narinfo'), re);
    refuses(good + good.split('\n')[0] + '\n', /"StorePath" appears twice/);
    refuses(good + 'Evil: 1\n', /unknown field "Evil"/);
    refuses(good.replace(/^NarHash: .*$/m, 'NarHash: sha256:abc'), /NarHash is not/);
    refuses(good.replace(/^NarSize: .*$/m, 'NarSize: -1'), /NarSize is not a positive integer/);
    refuses(good.replace(/^URL: .*\n/m, ''), /missing field "URL"/);
    refuses(
      good.replace(/^References: .*$/m, 'References: ../etc'),
      /References has a malformed entry/,
    );
    refuses('StorePath /nix/store/x\n', /line 1 is not "Field: value"/);

    const big = join(dir, `${present[0]!.slice(11, 43)}.narinfo`);
    writeFileSync(big, good + `Deriver: ${'x'.repeat(NARINFO_MAX_BYTES)}\n`);
    const r2 = await checkCache({
      cacheUrl: `file://${dir}`,
      storePaths: [present[0]!],
      trustedKeys: [key.public],
    });
    assert.is(r2.problems[0]?.reason, 'malformed');
    assert.match(r2.problems[0]!.detail, /larger than/);
  } finally {
    rmSync(join(dir, '..'), { recursive: true, force: true });
  }
});

test.run();
