// Closures the hosts must refuse, served by the control plane's nginx at /nix-cache/ (https, no client
// certificate) to real Nix hosts (own /nix each, `nixfleet agent --once` in its own mount namespace):
//   r1 -> v2:        its narinfo carries no signature                   -> Unsigned
//   r2 -> v4:        signed, by a key that is not in the trust root     -> UntrustedKey
//   r3 -> unhealthy: signed by the root's key, one byte of its NAR changed -> Corrupt
// Each: `failed` ack in the endpoint's signed log, the target quarantined, nothing of it in the host's
// store, the system profile untouched (generation 1 only, no switch ran).
// The release is published WITHOUT the cache check (`--no-cache-check`, lab.publish) on purpose: the
// publisher's check refuses exactly these closures (asserted first), so no checked release could send a
// host to them; the test shows the host side refuses them on its own.
// Each host is in its own channel so the three activations do not gate one another.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool } from '../support/skip.ts';
import { NixE2e } from '../support/nix-e2e.ts';
import { cacheKey, cleanupNixHosts, tamperNar } from '../support/nix-hosts.ts';
import { Quarantine } from '../../agent/quarantine.ts';
import { StateDir } from '../../agent/state-dir.ts';
import { PublishRefused } from '../../publisher/errors.ts';

test.after(() => cleanupNixHosts());

test('unsigned, key not in the root, tampered NAR on the nginx cache: each refused by the host, profile untouched', async () => {
  if (
    !requireTool('nix', 'real Nix hosts') ||
    !requireTool('unshare', 'a /nix per host') ||
    !requireTool('nginx', 'e2e through nginx') ||
    !requireTool('openssl', 'fleet PKI')
  )
    return;
  const e2e = await NixE2e.create({ hosts: ['r1', 'r2', 'r3'] });
  const { stack, sys } = e2e;
  try {
    await e2e.seed(sys.v1);
    const evil = await cacheKey('evil-cache-1');
    await e2e.push([sys.v2], null);
    await e2e.push([sys.v4], evil);
    await e2e.push([sys.unhealthy], e2e.key, { compression: 'none' });
    tamperNar(e2e.ciCacheDir, sys.unhealthy);
    const cases = [
      { host: 'r1', target: sys.v2, code: 'Unsigned', publishReason: 'not signed' },
      {
        host: 'r2',
        target: sys.v4,
        code: 'UntrustedKey',
        publishReason: 'signed only by keys not in the trust root',
      },
      { host: 'r3', target: sys.unhealthy, code: 'Corrupt', publishReason: null },
    ];
    const fleet = e2e.fleet(
      Object.fromEntries(
        cases.map((c) => [
          `ch-${c.host}`,
          { hosts: { [c.host]: c.target }, waves: [{ soakSeconds: 0 }] },
        ]),
      ),
    );

    // The publisher refuses the signature cases (it reads narinfos only, so the tampered NAR, whose
    // narinfo is intact and signed, is for the host's Nix to catch).
    const refused = await e2e.publish(fleet).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(refused, PublishRefused);
    for (const c of cases)
      if (c.publishReason)
        assert.match((refused as Error).message, `${c.target}: ${c.publishReason}`);

    await e2e.publishUnchecked(fleet);
    await stack.startControlPlane();
    await stack.waitAckEndpointPrimed('r1');
    const runs = await Promise.all(cases.map((c) => stack.runAgentOnce(c.host, {}, 90_000)));

    for (const [i, c] of cases.entries()) {
      const run = runs[i]!;
      const why = JSON.stringify(run.events.slice(-6));
      assert.is(run.code, 0, why);
      assert.equal(
        [run.outcome?.['kind'], run.outcome?.['decision'], run.outcome?.['acted']],
        ['decided', 'activate', 'failed'],
        why,
      );
      const event = run.events.find((e) => e['event'] === 'closure-refused');
      assert.is(event?.['code'], c.code, why);
      assert.is(event?.['cache'], e2e.cacheUrl);
      assert.is(event?.['storePath'], c.target);
      assert.ok(
        !run.events.some((e) => e['event'] === 'switching'),
        'no pending record, no switch',
      );

      // The signed record: one failed ack naming the reason, accepted by the endpoint behind nginx.
      const acks = stack.acksOf(c.host);
      assert.equal(
        acks.map((a) => a.kind),
        ['failed'],
        c.host,
      );
      assert.is(acks[0]!.target, c.target);
      assert.is(acks[0]!.current, sys.v1);
      assert.match(acks[0]!.reason!, `closure refused (${c.code})`);
      assert.ok(
        new Quarantine(new StateDir(stack.lab.host(c.host).stateDir)).isQuarantined(
          c.target,
          Date.now(),
        ),
        `${c.host} quarantined ${c.target}`,
      );

      // The host: generation 1 only, still running v1, nothing of the target in its store.
      const host = e2e.host(c.host);
      assert.equal(host.generations(), [1]);
      assert.is(host.profileGeneration(), 1);
      assert.equal(host.switchLog(), [`switch ${sys.v1}`]);
      assert.is(readlinkSync(join(host.dir, 'current-system')), sys.v1);
      const [valid] = await host.driver([{ op: 'valid', path: c.target }]);
      assert.equal(
        valid,
        { ok: true, value: false },
        `${c.target} must not be in ${c.host}'s store`,
      );
    }
  } catch (e) {
    throw stack.explain(e);
  } finally {
    await e2e.close();
  }
});

test.run();
