// The nix activator against the real Nix: each test host has its own /nix and nix.conf (private mount
// namespace, tests/support/nix-hosts.ts), the test systems come from tests/fixtures/nix-systems, the
// caches are file:// (and http:// through the real nginx) signed with `nix key generate-secret` keys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import {
  cacheKey,
  cleanupNixHosts,
  makeCache,
  NixTestHost,
  tamperedCopy,
  testSystems,
  type CacheKey,
  type DriverResult,
  type TestSystems,
} from '../support/nix-hosts.ts';
import { freePort, makeRuntimeDir, removeRuntimeDir, startNginx } from '../support/nginx.ts';
import { makeTestPki } from '../support/pki.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { AckJournal } from '../../agent/ack-journal.ts';
import { readPrivateKey } from '../../protocol/keys.ts';
import { makeLab, labFleet } from './lab-fleet.ts';
import { PendingRecord, writePending } from '../../agent/pending.ts';
import { isoTime } from '../../protocol/index.ts';
import { PENDING_GC_ROOT } from '../../agent/activators/nix.ts';

let ready = false;
let work: string;
let sys: TestSystems;
let good: CacheKey;
let evil: CacheKey;
const caches = {} as {
  good: string;
  goodDir: string;
  unsigned: string;
  evil: string;
  tampered: string;
  empty: string;
};

test.before(async () => {
  ready =
    requireTool('nix', 'nix activator against the real Nix') &&
    requireTool('unshare', 'a private /nix per test host');
  if (!ready) return;
  work = mkdtempSync(join(tmpdir(), 'nixfleet-nixact-'));
  sys = await testSystems();
  good = await cacheKey('fleet-cache-1');
  evil = await cacheKey('evil-cache-1');
  caches.goodDir = join(work, 'cache-good');
  caches.good = await makeCache(
    caches.goodDir,
    [sys.v1, sys.v2, sys.v3, sys.unhealthy, sys.v3unhealthy],
    good,
  );
  caches.unsigned = await makeCache(join(work, 'cache-unsigned'), [sys.v2], null);
  caches.evil = await makeCache(join(work, 'cache-evil'), [sys.v2], evil);
  await makeCache(join(work, 'cache-raw'), [sys.v2], good, { compression: 'none' });
  tamperedCopy(join(work, 'cache-raw'), join(work, 'cache-tampered'), sys.v2);
  caches.tampered = `file://${join(work, 'cache-tampered')}`;
  mkdirSync(join(work, 'cache-empty'));
  writeFileSync(join(work, 'cache-empty', 'nix-cache-info'), 'StoreDir: /nix/store\n');
  caches.empty = `file://${join(work, 'cache-empty')}`;
});

test.after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  cleanupNixHosts();
});

let hostCount = 0;
/** A fresh host running v1 as generation 1 (from the signed cache). */
async function hostOnV1(nixConf?: string): Promise<NixTestHost> {
  const host = new NixTestHost(join(work, `host-${++hostCount}`), nixConf);
  const [seeded] = await host.driver([
    { op: 'seed', target: sys.v1, cache: caches.good, key: good.publicKey },
  ]);
  assert.ok(seeded!.ok, JSON.stringify(seeded));
  assert.is(host.profileGeneration(), 1);
  return host;
}

function value<T>(r: DriverResult | undefined): T {
  if (!r?.ok) throw new Error(`driver op failed: ${JSON.stringify(r)}`);
  return r.value as T;
}

function refusal(r: DriverResult | undefined): {
  name: string;
  code: string | null;
  message: string;
  storePath?: string;
} {
  if (!r || r.ok) throw new Error(`expected a refusal, got ${JSON.stringify(r)}`);
  return r;
}

test('realise from a signed file:// cache, then switch: generation 2 runs the target and its switch ran', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  const [prepared, before, previous, after, valid] = await host.driver([
    { op: 'prepare', target: sys.v2, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'current' },
    { op: 'switch', target: sys.v2 },
    { op: 'current' },
    { op: 'valid', path: sys.v2 },
  ]);
  value(prepared);
  assert.equal(value(before), { number: 1, path: sys.v1 });
  assert.equal(value(previous), { number: 1, path: sys.v1 });
  assert.equal(value(after), { number: 2, path: sys.v2 });
  assert.is(value(valid), true);
  assert.equal(host.generations(), [1, 2]);
  assert.equal(host.switchLog(), [`switch ${sys.v1}`, `switch ${sys.v2}`]);
  assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v2);
  assert.is(readFileSync(join(host.dir, 'health'), 'utf8').trim(), 'ok');
});

test('rollback restores the exact recorded generation number, runs its switch, and is idempotent', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  const r = await host.driver([
    { op: 'prepare', target: sys.v2, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'prepare', target: sys.unhealthy, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'switch', target: sys.v2 },
    { op: 'switch', target: sys.unhealthy },
    { op: 'rollback', to: { number: 2, path: sys.v2 } },
    { op: 'current' },
    { op: 'rollback', to: { number: 2, path: sys.v2 } },
    { op: 'current' },
    { op: 'rollback', to: { number: 2, path: sys.v1 } },
  ]);
  r.slice(0, 5).forEach((x) => value(x));
  assert.equal(
    value(r[5]),
    { number: 2, path: sys.v2 },
    'generation 2 again, not "one step back" to a new number',
  );
  value(r[6]);
  assert.equal(value(r[7]), { number: 2, path: sys.v2 });
  assert.match(refusal(r[8]).message, 'generation 2');
  assert.equal(host.generations(), [1, 2, 3]);
  // The second rollback did nothing: one switch of v2 after the unhealthy one, not two.
  assert.equal(host.switchLog(), [
    `switch ${sys.v1}`,
    `switch ${sys.v2}`,
    `switch ${sys.unhealthy}`,
    `switch ${sys.v2}`,
  ]);
  assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v2);
});

/** Where the pending root of the driver's activator points (null: no root). */
function pendingRoot(host: NixTestHost): string | null {
  try {
    return readlinkSync(join(host.activatorStateDir, PENDING_GC_ROOT));
  } catch {
    return null;
  }
}

/** `nix-store --gc` inside the host's own namespace (its own /nix): collects whatever is not rooted. */
async function collectGarbage(host: NixTestHost): Promise<void> {
  const r = await host.exec(['nix-store', '--gc']);
  assert.is(r.code, 0, r.stderr);
}

test('the fetched closure is a GC root until its generation exists: a garbage collection between fetch and switch does not take it', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  const [prepared] = await host.driver([
    { op: 'prepare', target: sys.v2, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
  ]);
  value(prepared);
  assert.is(pendingRoot(host), sys.v2, 'rooted by prepare');
  await collectGarbage(host);
  const r = await host.driver([
    { op: 'valid', path: sys.v2 },
    { op: 'switch', target: sys.v2 },
    { op: 'current' },
  ]);
  assert.is(value(r[0]), true, 'the collection left the fetched target');
  value(r[1]);
  assert.equal(value(r[2]), { number: 2, path: sys.v2 });
  assert.is(pendingRoot(host), null, 'the generation holds it now: the pending root is gone');
  assert.equal(host.switchLog(), [`switch ${sys.v1}`, `switch ${sys.v2}`]);
  // The agent writes the generation link itself: Nix must still see it as a root.
  await collectGarbage(host);
  const [kept] = await host.driver([{ op: 'valid', path: sys.v2 }]);
  assert.is(value(kept), true, 'generation 2 roots its closure');

  // Abandoned (rollback) -> released: the next collection takes the abandoned closure.
  const abandoned = await host.driver([
    {
      op: 'prepare',
      target: sys.unhealthy,
      cacheUrls: [caches.good],
      cacheKeys: [good.publicKey],
    },
    { op: 'rollback', to: { number: 2, path: sys.v2 } },
  ]);
  abandoned.forEach((x) => value(x));
  assert.is(pendingRoot(host), null, 'a rollback releases the pending root');
  await collectGarbage(host);
  const [gone] = await host.driver([{ op: 'valid', path: sys.unhealthy }]);
  assert.is(value(gone), false, 'the collection works here: the released closure is collected');

  // Refused -> released: a refusal leaves no root of an earlier prepare behind.
  const refused = await host.driver([
    { op: 'prepare', target: sys.v3, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'prepare', target: sys.v4, cacheUrls: [caches.unsigned], cacheKeys: [good.publicKey] },
  ]);
  value(refused[0]);
  assert.is(refusal(refused[1]).code, 'NotInCache');
  assert.is(pendingRoot(host), null, 'a refusal releases the pending root');
});

test('unsigned closure, key not in the root, tampered NAR, a cache URL that switches the check off: each refused with a typed error, profile untouched', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  const cases = [
    { cache: caches.unsigned, code: 'Unsigned' },
    { cache: caches.evil, code: 'UntrustedKey' },
    { cache: caches.tampered, code: 'Corrupt' },
    // `?trusted=1` makes Nix substitute from that cache without checking signatures at all.
    { cache: `${caches.unsigned}?trusted=1`, code: 'TrustOverride' },
    { cache: `${caches.evil}?priority=10&trusted=true`, code: 'TrustOverride' },
  ];
  const r = await host.driver([
    ...cases.map((c) => ({
      op: 'prepare' as const,
      target: sys.v2,
      cacheUrls: [c.cache],
      cacheKeys: [good.publicKey],
    })),
    { op: 'valid', path: sys.v2 },
    { op: 'current' },
  ]);
  cases.forEach((c, i) => {
    const e = refusal(r[i]);
    assert.is(e.name, 'ClosureRefused');
    assert.is(e.code, c.code, e.message);
    assert.is(e.storePath, sys.v2);
    assert.ok(e.message.includes(sys.v2) && e.message.includes(c.cache), e.message);
  });
  assert.is(value(r[cases.length]), false, 'nothing of the target entered the store');
  assert.equal(value(r[cases.length + 1]), { number: 1, path: sys.v1 });
  assert.equal(host.generations(), [1]);
  assert.equal(host.switchLog(), [`switch ${sys.v1}`]);
});

/** The narinfo of the one store path in a file:// cache whose name ends with `name`. */
function narinfoOf(cacheDir: string, name: string): { file: string; storePath: string } {
  for (const f of readdirSync(cacheDir).filter((f) => f.endsWith('.narinfo'))) {
    const storePath = /^StorePath: (\S+)$/m.exec(readFileSync(join(cacheDir, f), 'utf8'))![1]!;
    if (storePath.endsWith(`-${name}`)) return { file: join(cacheDir, f), storePath };
  }
  throw new Error(`no narinfo of *-${name} in ${cacheDir}`);
}

test('only a dependency unsigned, or signed by a key not in the root: the target is refused naming that dependency, profile untouched', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  // v3's kernel is the one path of its closure that v1 (already on the host) does not hold.
  const depUnsigned = join(work, 'cache-dep-unsigned');
  cpSync(caches.goodDir, depUnsigned, { recursive: true });
  const kernel = narinfoOf(depUnsigned, 'linux-6.6');
  writeFileSync(
    kernel.file,
    readFileSync(kernel.file, 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('Sig: '))
      .join('\n'),
  );
  const depEvil = join(work, 'cache-dep-evil');
  cpSync(caches.goodDir, depEvil, { recursive: true });
  const evilSigned = join(work, 'cache-evil-v3');
  await makeCache(evilSigned, [sys.v3], evil);
  const evilKernel = narinfoOf(evilSigned, 'linux-6.6');
  cpSync(evilSigned, depEvil, { recursive: true, force: false, errorOnExist: false });
  cpSync(evilKernel.file, narinfoOf(depEvil, 'linux-6.6').file);
  // The top of the closure keeps the good signature in both caches.
  for (const dir of [depUnsigned, depEvil])
    assert.match(
      readFileSync(narinfoOf(dir, 'nixos-system-v3').file, 'utf8'),
      good.publicKey.split(':')[0]!,
    );

  const r = await host.driver([
    {
      op: 'prepare',
      target: sys.v3,
      cacheUrls: [`file://${depUnsigned}`],
      cacheKeys: [good.publicKey],
    },
    {
      op: 'prepare',
      target: sys.v3,
      cacheUrls: [`file://${depEvil}`],
      cacheKeys: [good.publicKey],
    },
    { op: 'valid', path: sys.v3 },
    { op: 'valid', path: kernel.storePath },
    { op: 'current' },
  ]);
  const unsigned = refusal(r[0]);
  assert.is(unsigned.code, 'Unsigned', unsigned.message);
  assert.is(
    unsigned.storePath,
    kernel.storePath,
    'the refusal names the dependency, not the target',
  );
  const untrusted = refusal(r[1]);
  assert.is(untrusted.code, 'UntrustedKey', untrusted.message);
  assert.is(untrusted.storePath, kernel.storePath);
  assert.is(value(r[2]), false, 'the target did not enter the store');
  assert.is(value(r[3]), false, 'nor did the refused dependency');
  assert.equal(value(r[4]), { number: 1, path: sys.v1 });
  assert.equal(host.generations(), [1]);
  assert.equal(host.switchLog(), [`switch ${sys.v1}`]);
});

test("the host's own nix.conf and NIX_CONFIG (extra-trusted-public-keys, substituters) do not widen trust", async () => {
  if (!ready) return;
  const conf = [
    'sandbox = false',
    `trusted-public-keys = ${evil.publicKey}`,
    `extra-trusted-public-keys = ${evil.publicKey}`,
    'require-sigs = false',
    `substituters = ${caches.good}`,
    `extra-substituters = ${caches.good}`,
    '',
  ].join('\n');
  const host = await hostOnV1(conf);
  const env = {
    NIX_CONFIG: `extra-trusted-public-keys = ${evil.publicKey}\nrequire-sigs = false\nextra-substituters = ${caches.good}`,
  };
  const r = await host.driver(
    [
      { op: 'prepare', target: sys.v2, cacheUrls: [caches.evil], cacheKeys: [good.publicKey] },
      { op: 'prepare', target: sys.v2, cacheUrls: [caches.unsigned], cacheKeys: [good.publicKey] },
      // The host's substituters hold v2 (signed by a trusted key): still not fetched from there.
      { op: 'prepare', target: sys.v2, cacheUrls: [caches.empty], cacheKeys: [good.publicKey] },
      { op: 'valid', path: sys.v2 },
      // Control: the same host accepts the evil-signed closure once the root names that key.
      { op: 'prepare', target: sys.v2, cacheUrls: [caches.evil], cacheKeys: [evil.publicKey] },
      { op: 'valid', path: sys.v2 },
    ],
    { env },
  );
  assert.is(refusal(r[0]).code, 'UntrustedKey');
  assert.is(refusal(r[1]).code, 'Unsigned');
  assert.is(refusal(r[2]).code, 'NotInCache');
  assert.is(value(r[3]), false);
  value(r[4]);
  assert.is(value(r[5]), true);
  assert.equal(host.generations(), [1]);
});

test('inhibitors from the real closures: v1 -> v2 none, v1 -> v3 names the kernel', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  const r = await host.driver([
    { op: 'prepare', target: sys.v2, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'prepare', target: sys.v3, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'inhibitors', target: sys.v2 },
    { op: 'inhibitors', target: sys.v3 },
  ]);
  assert.equal(value(r[2]), []);
  const v3 = value<string[]>(r[3]);
  assert.is(v3.length, 1, JSON.stringify(v3));
  assert.match(v3[0]!, /^kernel changes /);
});

test('an http:// cache served by nginx: realise and switch; a dead cache is Unreachable unless the target is already in the store', async () => {
  if (!ready || !requireTool('nginx', 'http binary cache')) return;
  const runtime = makeRuntimeDir();
  const port = await freePort();
  // The cache must be readable by nginx's worker user.
  const served = join(runtime, 'cache');
  (await import('node:fs')).cpSync(caches.goodDir, served, { recursive: true });
  (await import('node:child_process')).execFileSync('chmod', ['-R', 'a+rX', served]);
  const nginx = await startNginx({
    runtimeDir: runtime,
    port,
    config: `worker_processes 1; pid ${runtime}/nginx.pid; error_log ${runtime}/error.log;
events {}
http {
  access_log ${runtime}/access.log;
  client_body_temp_path ${runtime}/tmp/body; proxy_temp_path ${runtime}/tmp/proxy; fastcgi_temp_path ${runtime}/tmp/fastcgi;
  uwsgi_temp_path ${runtime}/tmp/uwsgi; scgi_temp_path ${runtime}/tmp/scgi;
  server { listen 127.0.0.1:${port}; root ${served}; }
}
`,
  });
  try {
    const host = await hostOnV1();
    const url = `http://127.0.0.1:${port}`;
    const r = await host.driver([
      { op: 'prepare', target: sys.v3, cacheUrls: [url], cacheKeys: [good.publicKey] },
      { op: 'switch', target: sys.v3 },
      { op: 'current' },
    ]);
    value(r[0]);
    assert.equal(value(r[2]), { number: 2, path: sys.v3 });
    assert.ok(
      readFileSync(join(runtime, 'access.log'), 'utf8').includes('.narinfo'),
      'fetched through nginx',
    );
    await nginx.stop();
    const dead = await host.driver([
      { op: 'prepare', target: sys.v2, cacheUrls: [url], cacheKeys: [good.publicKey] },
      // Already in the store (fetched above): a dead cache does not hold it back.
      { op: 'prepare', target: sys.v3, cacheUrls: [url], cacheKeys: [good.publicKey] },
    ]);
    assert.is(refusal(dead[0]).code, 'Unreachable');
    value(dead[1]);
  } finally {
    await nginx.stop();
    removeRuntimeDir(runtime);
  }
});

test('an https:// cache: Nix trusts the CA bundle the activator is given (sslCertFile); Unsigned is still told apart over https', async () => {
  if (!ready || !requireTool('nginx', 'https binary cache') || !requireTool('openssl', 'test PKI'))
    return;
  const pki = makeTestPki();
  const runtime = makeRuntimeDir();
  const port = await freePort();
  cpSync(caches.goodDir, join(runtime, 'good'), { recursive: true });
  cpSync(join(work, 'cache-unsigned'), join(runtime, 'unsigned'), { recursive: true });
  execFileSync('chmod', ['-R', 'a+rX', join(runtime, 'good'), join(runtime, 'unsigned')]);
  const nginx = await startNginx({
    runtimeDir: runtime,
    port,
    config: `worker_processes 1; pid ${runtime}/nginx.pid; error_log ${runtime}/error.log;
events {}
http {
  access_log ${runtime}/access.log;
  client_body_temp_path ${runtime}/tmp/body; proxy_temp_path ${runtime}/tmp/proxy; fastcgi_temp_path ${runtime}/tmp/fastcgi;
  uwsgi_temp_path ${runtime}/tmp/uwsgi; scgi_temp_path ${runtime}/tmp/scgi;
  server { listen 127.0.0.1:${port} ssl; ssl_certificate ${pki.server.certPath}; ssl_certificate_key ${pki.server.keyPath}; root ${runtime}; }
}
`,
  });
  try {
    const host = await hostOnV1();
    const url = (dir: string) => `https://127.0.0.1:${port}/${dir}`;
    // Without the fleet CA (Nix's default bundle), the handshake fails: unavailable, not an integrity refusal.
    const [noCa] = await host.driver([
      { op: 'prepare', target: sys.v2, cacheUrls: [url('good')], cacheKeys: [good.publicKey] },
    ]);
    assert.is(refusal(noCa).code, 'Unreachable');
    assert.match(refusal(noCa).message, /SSL|certificate/i);
    const config = host.activatorConfig({ sslCertFile: pki.caPath });
    const r = await host.driver(
      [
        {
          op: 'prepare',
          target: sys.v2,
          cacheUrls: [url('unsigned')],
          cacheKeys: [good.publicKey],
        },
        { op: 'prepare', target: sys.v2, cacheUrls: [url('good')], cacheKeys: [good.publicKey] },
        { op: 'valid', path: sys.v2 },
      ],
      { config },
    );
    // The narinfo's Sig lines are read over https with the same CA, so the reason is Unsigned (not "unreadable").
    assert.is(refusal(r[0]).code, 'Unsigned');
    value(r[1]);
    assert.is(value(r[2]), true);
    assert.match(readFileSync(join(runtime, 'access.log'), 'utf8'), /GET \/good\/nar\//);
  } finally {
    await nginx.stop();
    removeRuntimeDir(runtime);
    pki.cleanup();
  }
});

test('boot: a new generation and `switch-to-configuration boot`, the running system unchanged; bootId and reboot', async () => {
  if (!ready) return;
  const host = await hostOnV1();
  host.setBootId('c0ffee00-0000-4000-8000-000000000001');
  const r = await host.driver([
    { op: 'prepare', target: sys.v3, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'boot', target: sys.v3 },
    { op: 'current' },
    { op: 'bootId' },
    { op: 'reboot' },
  ]);
  assert.equal(value(r[1]), { number: 1, path: sys.v1 });
  assert.equal(value(r[2]), { number: 2, path: sys.v3 });
  assert.is(value(r[3]), 'c0ffee00-0000-4000-8000-000000000001');
  value(r[4]);
  assert.equal(host.switchLog(), [`switch ${sys.v1}`, `boot ${sys.v3}`]);
  assert.is(
    readlinkSync(join(host.dir, 'current-system')),
    sys.v1,
    'boot does not touch the running system',
  );
  assert.is(readFileSync(join(host.dir, 'reboot.log'), 'utf8').trim(), 'reboot');
});

test('through the agent cycle: an unsigned closure -> failed ack, quarantine, profile untouched', async () => {
  if (!ready || !requireTool('openssl', 'lab PKI')) return;
  const host = await hostOnV1();
  const lab = makeLab(['n1'], { activator: () => host.activatorConfig() });
  try {
    const fleet = labFleet(lab, { prod: { hosts: { n1: sys.v2 }, waves: [{ soakSeconds: 0 }] } });
    lab.publish({ ...fleet, cacheUrl: caches.unsigned });
    await lab.startControlPlane();
    const cfg = lab.agentConfig('n1');
    const [run] = await host.driver([{ op: 'agent', config: cfg }]);
    const { outcome, log } = value<{
      outcome: { kind: string; decision?: string; acted?: string };
      log: Record<string, unknown>[];
    }>(run);
    assert.equal(
      [outcome.kind, outcome.decision, outcome.acted],
      ['decided', 'activate', 'failed'],
      JSON.stringify(outcome),
    );
    const refused = log.find((x) => x['event'] === 'closure-refused');
    assert.ok(
      refused && refused['code'] === 'Unsigned' && refused['storePath'] === sys.v2,
      JSON.stringify(refused),
    );
    assert.ok(!log.some((x) => x['event'] === 'switching'), 'no pending record, no switch');
    const state = new StateDir(cfg.stateDir);
    assert.ok(new Quarantine(state).isQuarantined(sys.v2, Date.now()));
    assert.is(
      state.read('pending.json', (await import('../../agent/pending.ts')).PendingRecord),
      undefined,
    );
    const acks = new AckJournal(state, 'lab', 'n1', readPrivateKey(lab.host('n1').keyFile))
      .all()
      .map((a) => a.signed);
    assert.equal(
      acks.map((a) => a.kind),
      ['failed'],
    );
    assert.match(acks[0]!.reason!, 'Unsigned');
    assert.is(host.profileGeneration(), 1);
    assert.equal(host.generations(), [1]);
    assert.equal(host.switchLog(), [`switch ${sys.v1}`]);
    const [valid] = await host.driver([{ op: 'valid', path: sys.v2 }]);
    assert.is(value(valid), false);
  } finally {
    await lab.close();
  }
});

test('killed between staging and switching: the staged generation never becomes current silently; the recorded generation is restored, then the activation runs again', async () => {
  if (!ready || !requireTool('openssl', 'lab PKI')) return;
  const host = await hostOnV1();
  // What a run killed after `stage` leaves: the profile on a generation of the target whose switch
  // script never ran, v1 still running (and healthy), the pending record `switching` naming the staged one.
  const [prepared, staged] = await host.driver([
    { op: 'prepare', target: sys.v2, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
    { op: 'stage', target: sys.v2 },
  ]);
  value(prepared);
  assert.equal(value(staged), { number: 2, path: sys.v2 });
  assert.is(host.profileGeneration(), 2);
  assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v1);
  assert.equal(host.switchLog(), [`switch ${sys.v1}`], 'staging ran no switch script');

  const lab = makeLab(['n1'], { activator: () => host.activatorConfig() });
  try {
    const fleet = labFleet(lab, {
      prod: { hosts: { n1: sys.v2 }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds: 120 },
    });
    fleet.policies['p-prod']!.probes = [
      {
        kind: 'command',
        name: 'health',
        argv: ['grep', '-qx', 'ok', join(host.dir, 'health')],
        expectExit: 0,
        timeoutMs: 5000,
      },
    ];
    const published = lab.publish(fleet);
    await lab.startControlPlane();
    const cfg = lab.agentConfig('n1', { probeIntervalMs: 300 });
    const state = new StateDir(cfg.stateDir);
    const now = Date.now();
    writePending(state, {
      target: sys.v2,
      previous: { number: 1, path: sys.v1 },
      deadline: isoTime(now + 120_000),
      bootId: null,
      releaseVersion: published.version,
      rolloutId: published.rolloutIds['prod']!,
      startedAt: isoTime(now),
      probes: fleet.policies['p-prod']!.probes,
      healthyPassesRequired: 1,
      phase: 'switching',
      staged: { number: 2, path: sys.v2 },
    });
    const [run] = await host.driver([{ op: 'agent', config: cfg }]);
    const { outcome, log } = value<AgentRun>(run);
    const events = log.map((e) => e['event']);
    const undone = log.find((e) => e['event'] === 'interrupted-switch');
    assert.ok(
      undone && undone['restoring'] === 1 && undone['staged'] === 2,
      JSON.stringify(events),
    );
    assert.not.ok(events.includes('resuming-confirm-window'), JSON.stringify(events));
    // Then the same run activated v2 for real: a generation of its own, and v2's switch script ran.
    assert.equal(
      [outcome.kind, outcome.decision, outcome.acted],
      ['decided', 'activate', 'confirmed'],
      JSON.stringify(outcome),
    );
    const switching = log.find((e) => e['event'] === 'switching');
    assert.ok(
      events.indexOf('interrupted-switch') < events.indexOf('switching') &&
        switching?.['fromGeneration'] === 1,
      'restored to generation 1 before activating again',
    );
    // nix-env reuses the newest generation when it already runs the target: 2 again, now switched.
    assert.equal(host.generations(), [1, 2]);
    assert.is(host.profileGeneration(), 2);
    assert.equal(host.switchLog(), [`switch ${sys.v1}`, `switch ${sys.v2}`]);
    assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v2);
    assert.is(state.read('pending.json', PendingRecord), undefined);
  } finally {
    await lab.close();
  }
});

// ---- the reboot path through the agent cycle, with real Nix (issue 8) -------------------------------

type AgentRun = {
  outcome: { kind: string; decision?: string; acted?: string | null };
  log: Record<string, unknown>[];
};

/** A lab fleet whose one host n1 (this test host) gets `target` under reboot policy `allowed`, with a health probe. */
async function rebootLab(host: NixTestHost, target: string, confirmDeadlineSeconds: number) {
  // The lab's trust root lists no cache key: put the target in the host's store from the signed cache
  // first (prepare then finds it valid; the cache check itself is tested above).
  value(
    (
      await host.driver([
        { op: 'prepare', target, cacheUrls: [caches.good], cacheKeys: [good.publicKey] },
      ])
    )[0],
  );
  host.setBootId('boot-1');
  writeFileSync(join(host.dir, 'health'), 'ok\n');
  const lab = makeLab(['n1'], { activator: () => host.activatorConfig() });
  const fleet = labFleet(lab, {
    prod: { hosts: { n1: target }, waves: [{ soakSeconds: 0 }], confirmDeadlineSeconds },
  });
  fleet.channels['prod']!.reboot = 'allowed';
  fleet.policies['p-prod']!.probes = [
    {
      kind: 'command',
      name: 'health',
      argv: ['grep', '-qx', 'ok', join(host.dir, 'health')],
      expectExit: 0,
      timeoutMs: 5000,
    },
  ];
  lab.publish(fleet);
  await lab.startControlPlane();
  const cfg = lab.agentConfig('n1', { probeIntervalMs: 300 });
  const run = async () => value<AgentRun>((await host.driver([{ op: 'agent', config: cfg }]))[0]);
  const acks = () =>
    new AckJournal(new StateDir(cfg.stateDir), 'lab', 'n1', readPrivateKey(lab.host('n1').keyFile))
      .all()
      .map((a) => a.signed);
  const pending = () => new StateDir(cfg.stateDir).read('pending.json', PendingRecord);
  return { lab, cfg, run, acks, pending };
}

test('kernel change under reboot: allowed -> boot + reboot command; after the reboot (new boot id) the agent confirms', async () => {
  if (!ready || !requireTool('openssl', 'lab PKI')) return;
  const host = await hostOnV1();
  const { lab, run, acks, pending } = await rebootLab(host, sys.v3, 120);
  try {
    const r1 = await run();
    assert.equal(
      [r1.outcome.kind, r1.outcome.decision, r1.outcome.acted],
      ['decided', 'defer', 'rebooting'],
      JSON.stringify(r1.outcome),
    );
    assert.equal(
      host.switchLog(),
      [`switch ${sys.v1}`, `boot ${sys.v3}`],
      'staged with boot, never switched live',
    );
    assert.equal(host.rebootLog(), ['reboot'], 'the reboot command ran once');
    assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v1);
    assert.is(host.profileGeneration(), 2);
    const p = pending()!;
    assert.equal(
      [p.phase, p.bootId, p.previous.number, p.previous.path],
      ['booting', 'boot-1', 1, sys.v1],
    );
    assert.equal(
      acks().map((a) => a.kind),
      ['started'],
    );

    assert.is(host.reboot('boot-2'), sys.v3);
    const r2 = await run();
    assert.equal(
      [r2.outcome.kind, r2.outcome.decision],
      ['decided', 'converged'],
      JSON.stringify(r2.outcome),
    );
    const events = r2.log.map((e) => e['event']);
    assert.ok(
      events.includes('booted-into-target') && events.includes('confirmed'),
      JSON.stringify(events),
    );
    assert.equal(
      acks()
        .map((a) => a.kind)
        .slice(0, 3),
      ['started', 'activated', 'healthy'],
    );
    assert.is(pending(), undefined);
    assert.is(host.profileGeneration(), 2);
    assert.equal(host.rebootLog(), ['reboot']);
    assert.equal(host.switchLog(), [`switch ${sys.v1}`, `boot ${sys.v3}`]);
  } finally {
    await lab.close();
  }
});

test('kernel change, unhealthy after the reboot: previous generation (exact number) + boot + reboot before the deadline; rolled-back ack after that reboot', async () => {
  if (!ready || !requireTool('openssl', 'lab PKI')) return;
  const host = await hostOnV1();
  const { lab, cfg, run, acks, pending } = await rebootLab(host, sys.v3unhealthy, 15);
  try {
    const r1 = await run();
    assert.is(r1.outcome.acted, 'rebooting', JSON.stringify(r1.outcome));
    const deadline = pending()!.deadline;
    assert.is(host.reboot('boot-2'), sys.v3unhealthy);
    const r2 = await run();
    assert.is(r2.outcome.kind, 'rebooting', JSON.stringify(r2.outcome));
    assert.equal(
      host.switchLog(),
      [`switch ${sys.v1}`, `boot ${sys.v3unhealthy}`, `boot ${sys.v1}`],
      'rolled back with boot, not switch',
    );
    assert.equal(host.rebootLog(), ['reboot', 'reboot']);
    assert.is(host.profileGeneration(), 1, 'the exact previous generation number');
    const back = pending()!;
    assert.equal([back.phase, back.bootId, back.deadline], ['rebooting-back', 'boot-2', deadline]);
    assert.ok(
      Date.now() >= Date.parse(deadline) - 1000,
      'rolled back at the confirm deadline, not before',
    );
    assert.equal(
      acks().map((a) => a.kind),
      ['started', 'activated'],
    );

    assert.is(host.reboot('boot-3'), sys.v1);
    await run();
    const all = acks();
    assert.equal(
      all.map((a) => a.kind),
      ['started', 'activated', 'rolled-back'],
    );
    assert.is(all[2]!.current, sys.v1);
    assert.match(all[2]!.reason!, 'not healthy before the confirm deadline');
    assert.is(pending(), undefined);
    assert.ok(
      new Quarantine(new StateDir(cfg.stateDir)).isQuarantined(sys.v3unhealthy, Date.now()),
    );
    assert.is(host.profileGeneration(), 1);
    assert.equal(host.generations(), [1, 2]);
    assert.equal(host.rebootLog(), ['reboot', 'reboot'], 'no further reboot');
  } finally {
    await lab.close();
  }
});

test.run();
