// A tree written by the real publisher (publishRelease from a generated fleet) goes through cp sync and
// is served by the embedded control plane, which accepts acks signed with the fleet's host keys.
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { publishRelease } from '../../publisher/publish.ts';
import { generateFleet } from '../support/fleet-gen.ts';
import { makeTestPki } from '../support/pki.ts';
import { syncTree, startControlPlane } from '../../control-plane/index.ts';
import { fixtureKeys, tempDir, removeDir, AckChain, FLEET } from './tree-fixture.ts';
import { req } from './http.ts';

const test = suite('control-plane with the real publisher');

test('publish -> cp sync -> serve -> ack', async () => {
  const work = tempDir('cp-pub');
  const keys = fixtureKeys();
  const { fleet, hostKeys } = generateFleet({
    hosts: 6,
    channels: 2,
    wavesPerChannel: 2,
    seed: 'cp',
    fleetName: FLEET,
  });
  const names = Object.keys(hostKeys).sort();
  const pki = makeTestPki({ hosts: names.slice(0, 2) });
  const ci = join(work, 'ci');
  const treeDir = join(work, 'cp');
  let cp;
  try {
    const pub = publishRelease({
      cacheCheck: 'skip',
      treeDir: ci,
      fleet,
      releaseKeys: [keys.release],
      roots: [keys.signedRoot],
      now: Date.now() - 5000,
    });
    const sync = await syncTree({ from: ci, treeDir, pinnedRoot: keys.signedRoot });
    assert.ok(sync.installed);
    assert.is(sync.releaseVersion, pub.version);
    cp = await startControlPlane({
      treeDir,
      tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key },
      reloadIntervalMs: 60_000,
    });
    assert.ok(cp.primed());
    assert.is(cp.view()?.hosts.size, 6);
    const host = names[0]!;
    const tls = pki.clientTls(pki.hosts[host]!);
    const manifest = await req(`${cp.url}/releases/${pub.version}/hosts/${host}.json`, { tls });
    assert.is(manifest.status, 200);
    const signed = JSON.parse(manifest.body).signed as { channel: string; wave: number };
    const chain = new AckChain(
      { name: host, channel: signed.channel, wave: signed.wave, key: hostKeys[host]! },
      pub.version,
    );
    const r = await req(`${cp.url}/acks`, {
      tls,
      method: 'POST',
      body: JSON.stringify(chain.next()),
    });
    assert.is(r.status, 201, r.body);
    const other = names[1]!;
    assert.is(
      (await req(`${cp.url}/releases/${pub.version}/hosts/${other}.json`, { tls })).status,
      403,
    );
  } finally {
    await cp?.close();
    pki.cleanup();
    removeDir(work);
  }
});

test.run();
