// `nixfleet status --url`: the operator view read from the embedded control plane over mTLS with an
// operator certificate, verified exactly as from a directory; a host certificate is not enough.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalString } from '../../protocol/canonical.ts';
import { isoTime } from '../../protocol/schemas/common.ts';
import type { StatusReport } from '../../read-side/status.ts';
import { startControlPlane, type RunningServer } from '../../control-plane/index.ts';
import { makeTestPki, type TestPki } from '../support/pki.ts';
import {
  MIN,
  NOW,
  cleanupTempDirs,
  lifecycle,
  postAcks,
  publishedFixture,
  run,
  waiting,
  type Fixture,
} from './fixture.ts';

const NOW_ISO = isoTime(NOW);
let pki: TestPki | undefined;
let cp: RunningServer | undefined;

test.after.each(async () => {
  await cp?.close();
  cp = undefined;
  pki?.cleanup();
  pki = undefined;
  cleanupTempDirs();
});

async function served(): Promise<{ fx: Fixture; a: string; b: string }> {
  const fx = publishedFixture('remote');
  const [a] = fx.wave('ch-0', 0);
  const [b] = fx.wave('ch-0', 1);
  postAcks(fx, a!, lifecycle(NOW - 12 * MIN, NOW - MIN));
  const bAcks = postAcks(fx, b!, [
    ...waiting(NOW - 10 * MIN, NOW - 5 * MIN),
    { kind: 'started', at: NOW - MIN },
  ]);
  // b's latest ack reaches the operator through its wave's bundle only (no acks/hosts file for it).
  mkdirSync(join(fx.tree, 'acks/channels/ch-0'), { recursive: true });
  writeFileSync(
    join(fx.tree, 'acks/channels/ch-0/wave-1.json'),
    canonicalString({
      type: 'ack-bundle',
      schemaVersion: 1,
      fleet: 'generated',
      channel: 'ch-0',
      wave: 1,
      generatedAt: NOW_ISO,
      acks: [bAcks[bAcks.length - 1]!],
    }),
  );
  pki = makeTestPki({ hosts: [a!], operators: ['alice'] });
  cp = await startControlPlane({
    treeDir: fx.tree,
    tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
    host: '127.0.0.1',
    reloadIntervalMs: 60_000,
  });
  return { fx, a: a!, b: b! };
}

const tls = (p: TestPki, c: { certPath: string; keyPath: string }) => [
  '--ca',
  p.caPath,
  '--cert',
  c.certPath,
  '--key',
  c.keyPath,
];

test('status --url with an operator certificate shows what status --tree shows, from verified documents and acks', async () => {
  const { fx, a, b } = await served();
  const local = await run(
    'status',
    '--tree',
    fx.tree,
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(local.code, 0, local.err);
  const remote = await run(
    'status',
    '--url',
    cp!.url,
    ...tls(pki!, pki!.operators['alice']!),
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
    '--json',
  );
  assert.is(remote.code, 0, remote.err);
  const l = JSON.parse(local.out) as StatusReport;
  const r = JSON.parse(remote.out) as StatusReport;
  assert.is(r.source, cp!.url);
  assert.equal(r.hosts, l.hosts);
  assert.equal(r.channels, l.channels);
  assert.is(r.acks.verified, l.acks.verified);
  assert.is(r.hosts.find((h) => h.host === a)!.phase, 'soaked');
  assert.is(
    r.hosts.find((h) => h.host === b)!.phase,
    'activating',
    'the bundle ack was read and verified',
  );
  const text = await run(
    'status',
    '--url',
    cp!.url,
    ...tls(pki!, pki!.operators['alice']!),
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
  );
  assert.is(text.code, 0, text.err);
  assert.match(text.out, 'channel ch-0: IN-PROGRESS, wave 2 of 2');
});

test('status --url verifies what the control plane serves: a tampered manifest is refused (exit 1)', async () => {
  const { fx } = await served();
  const file = 'releases/1/hosts/host-005.json';
  const p = join(fx.tree, file);
  writeFileSync(p, readFileSync(p, 'utf8').replace('"fleet":"generated"', '"fleet":"generatee"'));
  const r = await run(
    'status',
    '--url',
    cp!.url,
    ...tls(pki!, pki!.operators['alice']!),
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
  );
  assert.is(r.code, 1);
  assert.match(r.err, `REFUSED: BadSignature: ${file}`);
});

test("status --url with a host certificate: the control plane refuses other hosts' manifests; exit 2 saying an operator certificate is needed", async () => {
  const { fx, a } = await served();
  const r = await run(
    'status',
    '--url',
    cp!.url,
    ...tls(pki!, pki!.hosts[a]!),
    '--root',
    fx.rootFile,
    '--now',
    NOW_ISO,
  );
  assert.is(r.code, 2);
  assert.is(r.out, '');
  assert.match(r.err, /the control plane refused releases\/1\/hosts\/host-\d+\.json/);
  assert.match(r.err, 'needs an operator certificate');
  const missing = await run(
    'status',
    '--url',
    cp!.url,
    '--ca',
    pki!.caPath,
    '--cert',
    join(fx.dir, 'nope.crt'),
    '--key',
    pki!.operators['alice']!.keyPath,
    '--root',
    fx.rootFile,
  );
  assert.is(missing.code, 2);
  assert.match(missing.err, `--cert ${join(fx.dir, 'nope.crt')}: no such file or directory`);
});

test.run();
